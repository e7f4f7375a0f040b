import { fork } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Rpc } from '../../../src/edge/cluster/rpc.js';

describe('Rpc over a real IPC channel', () => {
  it('a send after the other process closed its channel is reported, never an unheard error event', async () => {
    // The child closes the channel at once, as a worker does in the instant it dies.
    const child = fork('-e', ['process.disconnect(); setTimeout(() => {}, 200)'], { execArgv: [], stdio: 'ignore' });
    const errorsOnChild: Error[] = [];
    const reported: string[] = [];
    const rpc = new Rpc(child, (err, what) => reported.push(`${what}: ${(err as NodeJS.ErrnoException).code}`));
    await once(child, 'disconnect');
    child.on('error', (err) => errorsOnChild.push(err));
    rpc.notify('disk.event', { type: 'put' });
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    // Without a callback, Node emits 'error' on the child object: in the primary, with no
    // listener, that ended the whole node.
    expect(errorsOnChild).toEqual([]);
    expect(reported).toEqual(['send note: ERR_IPC_CHANNEL_CLOSED']);
    await once(child, 'exit');
  });
});

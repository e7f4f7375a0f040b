import { connect } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomTitle, tempDir, writeMedia } from './helpers/cluster.js';
import { clusterFileForNode, startEdgeNode } from './helpers/node-cluster.js';
import { killAll } from './helpers/role-proc.js';
import { TestOrigin } from './helpers/test-origin.js';

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

describe('edge process drain', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);

  beforeAll(async () => {
    await origin.start();
  }, 120_000);
  afterAll(async () => {
    killAll();
    await origin.close();
  });

  it('finishes the in-flight response on SIGTERM, refuses new connections, and exits 0', async () => {
    const title = randomTitle();
    const data = writeMedia(root, title, 'slow.ts', 200_000);
    origin.behaviour.set(`/o/${title}/slow.ts`, { delayMs: 1500 });
    const node = await startEdgeNode(clusterFileForNode(origin.url, { diskBytes: 50_000_000, memoryBytes: 10_000_000 }), ['--workers', '1']);
    const { child, publicUrl, exited } = node;
    const port = Number(new URL(publicUrl).port);

    const inflight = request(`${publicUrl}/c/${title}/slow.ts`).then(async (res) => ({
      status: res.statusCode,
      body: Buffer.from(await res.body.arrayBuffer()),
    }));
    for (let i = 0; i < 200 && origin.countFor(`/o/${title}/slow.ts`) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(origin.countFor(`/o/${title}/slow.ts`)).toBe(1);

    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    expect(await refused(port)).toBe(true); // listening socket closed while the slow answer is still coming

    const answer = await inflight;
    expect(answer.status).toBe(200);
    expect(answer.body.equals(data)).toBe(true);
    expect(await exited).toBe(0);
    expect(node.output()).toMatch(/"msg":"drained, exiting"/);
  }, 60_000);
});

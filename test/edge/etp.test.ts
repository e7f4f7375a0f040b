import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatCmcd } from '../../src/common/cmcd.js';
import { randomTitle, tempDir, testCluster, writeMedia } from '../helpers/cluster.js';
import { type RunningEdge, startEdge } from '../helpers/edge-harness.js';
import { TestOrigin } from '../helpers/test-origin.js';

/**
 * CMSD `etp` (the edge's estimate of its throughput to a client) measured right, on a real edge
 * through both serving paths: only from answers to requests that carry CMCD, only from the part
 * of a body the client paced (after the kernel pushed back), never from an answer the client
 * aborted. Every client here is 127.0.0.1, so each test leaves no estimate behind but the last.
 */
/**
 * Large: a reader pausing its socket on loopback paces only what the kernels' buffers do not
 * hold (send buffer autotuned to 4 MB here, plus the receiver's), some 4 MB taken at once; the
 * estimate counts what the sender's kernel still held at 'finish' as delivered, so its error is
 * about 4 MB of SIZE.
 */
const SIZE = 24 * 1024 * 1024;
/** The paced reader's rate: far below loopback's, so the client, not the machine, sets the pace. */
const BYTES_PER_SEC = 12 * 1024 * 1024;

const cmcdQuery = (sid: string) => `&CMCD=${encodeURIComponent(formatCmcd({ sid, ot: 'v', br: 3000 }))}`;

describe.each([
  { path: 'hit path', hitPath: true },
  { path: 'object routes', hitPath: false },
])('etp ($path)', ({ hitPath }) => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  const title = randomTitle();
  let edge: RunningEdge;
  let url: string;

  beforeAll(async () => {
    await origin.start();
    edge = await startEdge(testCluster({ sliceBytes: 8 * 1024 * 1024 }), origin.url, { hitPath });
    writeMedia(root, title, 'big.m4s', SIZE);
    url = edge.signed(title, 'big.m4s');
    // Cached before anything is measured (a miss goes at upstream's pace).
    expect((await edge.get(title, 'big.m4s')).headers['x-cache']).toBe('MISS');
    await edge.idle();
    expect((await edge.get(title, 'big.m4s')).headers['x-cache']).toMatch(/^HIT-(MEM|DISK)$/);
  });
  afterAll(async () => {
    await edge?.close();
    await origin.close();
  });

  /** The etp a player's request (one byte of the object) is told now, if any. */
  async function etp(): Promise<number | undefined> {
    const a = await edge.get(title, 'big.m4s', { range: 'bytes=0-0', 'cmcd-session': 'sid="probe"' });
    expect(a.status).toBe(206);
    const m = /;etp=(\d+)/.exec(a.headers['cmsd-dynamic'] ?? '');
    return m ? Number(m[1]) : undefined;
  }

  it('itMeasuresNoAnswerToARequestWithoutCmcd (they are never told etp)', async () => {
    const read = await pacedGet(edge.url, url, BYTES_PER_SEC);
    expect(read.bytes).toBeGreaterThan(SIZE);
    expect(await etp()).toBeUndefined();
  });

  it('itTakesNoSampleFromAnAbortedAnswer: a slow reader that leaves says nothing', async () => {
    await abortedGet(edge.url, url + cmcdQuery('leaver'), 300);
    // Whatever the edge does once the client left, it has done it by now.
    await new Promise((r) => setTimeout(r, 200));
    expect(await etp()).toBeUndefined();
  });

  it('itEstimatesAPacedReaderAtItsPace', async () => {
    const read = await pacedGet(edge.url, url + cmcdQuery('paced'), BYTES_PER_SEC);
    expect(read.bytes).toBeGreaterThan(SIZE);
    const kbps = (read.bytes * 8) / read.ms;
    const told = await etp();
    expect(told, `client read at ${Math.round(kbps)} kbps`).toBeDefined();
    // Loose: the estimate is of the paced part alone (the kernel's buffers took the rest at once).
    expect(told!).toBeGreaterThan(kbps / 2);
    expect(told!).toBeLessThan(kbps * 1.5);
    // A request without CMCD gets the node's value, the same for every client.
    expect((await edge.get(title, 'big.m4s', { range: 'bytes=0-0' })).headers['cmsd-dynamic']).toBe('"edge-a1"');
  });
});

/** GETs on a raw connection, reading at most `bytesPerSec` (pausing the socket); resolves once the server closed it. */
function pacedGet(base: string, pathAndQuery: string, bytesPerSec: number): Promise<{ bytes: number; ms: number }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    let start = 0;
    let bytes = 0;
    const socket = connect(Number(u.port), u.hostname, () => {
      start = performance.now();
      socket.write(`GET ${pathAndQuery} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n\r\n`);
    });
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
      const ahead = (bytes / bytesPerSec) * 1000 - (performance.now() - start);
      if (ahead > 1) {
        socket.pause();
        setTimeout(() => socket.resume(), ahead);
      }
    });
    socket.on('end', () => resolve({ bytes, ms: performance.now() - start }));
    socket.on('error', reject);
  });
}

/** GETs on a raw connection, reads nothing for `afterMs`, then drops the connection with the answer unread. */
function abortedGet(base: string, pathAndQuery: string, afterMs: number): Promise<void> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(u.port), u.hostname, () => {
      socket.pause();
      socket.write(`GET ${pathAndQuery} HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`);
      setTimeout(() => {
        socket.destroy();
        resolve();
      }, afterMs);
    });
    socket.on('error', reject);
  });
}

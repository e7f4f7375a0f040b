import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomTitle, tempDir, testCluster, writeMedia } from '../helpers/cluster.js';
import { type RunningEdge, startEdge } from '../helpers/edge-harness.js';
import { TestOrigin } from '../helpers/test-origin.js';

const S = 2 * 1024 * 1024;

/**
 * Disk hits are read into pooled buffers that go back to the pool once the answer is written.
 * The pool here poisons what comes back (0xEE): a buffer given back while a socket still sends
 * it would show as wrong bytes. Answers of 8 MiB to clients that wait before reading outgrow the
 * socket buffers, so writes are still pending in the edge when a release would come too early.
 */
describe('disk hits from pooled buffers', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  const edges: RunningEdge[] = [];

  beforeAll(async () => {
    await origin.start();
  });
  afterAll(async () => {
    for (const e of edges) await e.close();
    await origin.close();
  });

  it.each([
    ['the hit path', true],
    ['the object routes', false],
  ])('never sends bytes of a buffer given back, through %s', async (_name, hitPath) => {
    // Memory holds one slice: nearly every answer is read from disk.
    const config = testCluster({ sliceBytes: S, memoryBytes: S, diskBytes: 32 * S });
    const e = await startEdge(config, origin.url, { poisonReleasedBuffers: true, hitPath });
    edges.push(e);
    const title = randomTitle();
    const files = [0, 1, 2].map((i) => ({ name: `s${i}.ts`, data: writeMedia(root, title, `s${i}.ts`, 4 * S - 1000 * i, i + 1) }));
    for (const f of files) expect((await e.get(title, f.name)).status).toBe(200);
    await e.idle();

    // Many answers at once, each over its own connection, read slowly so writes stay pending.
    const dispatcher = new Agent({ connections: 64, pipelining: 0 });
    try {
      const answers = await Promise.all(
        Array.from({ length: 12 }, async (_, i) => {
          const f = files[i % files.length]!;
          const start = i % 2 === 0 ? 0 : (i * 7919) % S;
          const end = f.data.length - 1;
          const res = await request(`${e.url}${e.signed(title, f.name)}`, { headers: { range: `bytes=${start}-${end}` }, dispatcher });
          // Not read for a while: the edge's writes wait on a full socket.
          await new Promise((r) => setTimeout(r, 300));
          const chunks: Buffer[] = [];
          for await (const c of res.body) {
            chunks.push(c as Buffer);
            if (chunks.length % 8 === 0) await new Promise((r) => setTimeout(r, 2));
          }
          return { status: res.statusCode, tier: res.headers['x-cache'], body: Buffer.concat(chunks), want: f.data.subarray(start, end + 1) };
        }),
      );
      for (const a of answers) {
        expect(a.status).toBe(206);
        expect(a.body.length).toBe(a.want.length);
        expect(a.body.equals(a.want)).toBe(true);
      }
      expect(answers.filter((a) => a.tier === 'HIT-DISK').length).toBeGreaterThan(6);
    } finally {
      await dispatcher.close();
    }
    // The pool got its buffers back, and hands them out again.
    for (const f of files) expect((await e.get(title, f.name)).body.equals(f.data)).toBe(true);
    expect(e.server.disk.poolStats().reused).toBeGreaterThan(0);
  });
});

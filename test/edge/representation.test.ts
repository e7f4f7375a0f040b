import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { objectKey } from '../../src/common/paths.js';
import { RepresentationChanged } from '../../src/edge/edge-cache.js';
import { TEST_ADMIN_TOKEN, randomTitle, tempDir, testCluster, writeMedia } from '../helpers/cluster.js';
import { startEdge, type RunningEdge } from '../helpers/edge-harness.js';
import { sliceFile } from '../helpers/slice-files.js';
import { TestOrigin } from '../helpers/test-origin.js';

/**
 * One answer, one representation (issue 8, "wrong bytes"): whatever order purges,
 * revalidations, fills and disk writes run in, an answer never carries bytes of two versions,
 * and no answer carries one version's bytes under another's ETag.
 */
const S = 64 * 1024;

describe('edge: one representation per answer', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  const edges: RunningEdge[] = [];
  beforeAll(async () => {
    await origin.start();
  });
  afterAll(async () => {
    for (const e of edges) await e.close().catch(() => {});
    await origin.close();
  });

  async function edge(): Promise<RunningEdge> {
    const e = await startEdge(testCluster({ sliceBytes: S }), origin.url);
    edges.push(e);
    return e;
  }

  /** Version `v` of title/file at the origin: its own bytes and ETag. */
  function publish(title: string, file: string, size: number, v: number, cacheControl?: string): Buffer {
    const data = writeMedia(root, title, file, size, 100 + v);
    origin.behaviour.set(`/o/${title}/${file}`, { etag: `"v${v}"`, ...(cacheControl ? { cacheControl } : {}) });
    return data;
  }

  async function purge(e: RunningEdge, title: string): Promise<void> {
    const res = await request(`${e.adminUrl}/purge`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ title }),
    });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  }

  it('a purge racing a disk write never leaves the old slices to be served under the new ETag', async () => {
    const e = await edge();
    const title = randomTitle();
    publish(title, 'a.mp4', 2 * S, 1);
    // The disk is slow: writes of the fetched slices are still in flight when the purge comes.
    const disk = e.server.disk;
    const write = disk.write.bind(disk);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    disk.write = async (...args) => {
      await gate;
      return write(...args);
    };
    const first = await e.get(title, 'a.mp4');
    expect(first.headers.etag).toBe('"v1"');

    const v2 = publish(title, 'a.mp4', 2 * S, 2);
    await purge(e, title);
    release();
    await e.idle();
    disk.write = write;

    const second = await e.get(title, 'a.mp4');
    expect(second.status).toBe(200);
    expect(second.headers.etag).toBe('"v2"');
    expect(second.body.equals(v2)).toBe(true);
  });

  it('a reader of version 1 is cut, never handed version 2 slices, when a revalidation stores version 2', async () => {
    const e = await edge();
    const title = randomTitle();
    const size = 4 * S;
    // Stale at once: every request revalidates.
    const v1 = publish(title, 'b.mp4', size, 1, 'public, max-age=0');
    expect((await e.get(title, 'b.mp4')).body.equals(v1)).toBe(true);
    await e.idle();

    const resolved = await e.server.cache.resolve(title, 'b.mp4', undefined);
    if (resolved.kind !== 'found') throw new Error('not found');
    expect(resolved.meta.etag).toBe('"v1"');
    const reader = e.server.cache.read(resolved.meta, { start: 0, end: size });
    const got: Buffer[] = [];
    const firstPiece = await reader.next();
    got.push(firstPiece.value as Buffer);

    // Another client's request revalidates, learns version 2 and stores it, mid-answer.
    const v2 = publish(title, 'b.mp4', size, 2, 'public, max-age=0');
    const other = await e.get(title, 'b.mp4');
    expect(other.headers.etag).toBe('"v2"');
    expect(other.body.equals(v2)).toBe(true);
    await e.idle();

    let cut: unknown;
    try {
      for (let n = await reader.next(); !n.done; n = await reader.next()) got.push(n.value);
    } catch (err) {
      cut = err;
    }
    const body = Buffer.concat(got);
    // Either every byte is version 1's, or the answer was cut: never a splice.
    expect(body.equals(v1.subarray(0, body.length))).toBe(true);
    expect(cut).toBeInstanceOf(RepresentationChanged);
    const metrics = await (await request(`${e.adminUrl}/metrics`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })).body.text();
    expect(metrics).toMatch(/reelcdn_edge_answers_cut_total\{[^}]*\} 1/);
  });

  it('after a fill publishes a new version, memory hits carry its bytes, not the old ones', async () => {
    const e = await edge();
    const title = randomTitle();
    const v1 = publish(title, 'c.mp4', 2 * S, 1);
    for (let i = 0; i < 3; i++) {
      expect((await e.get(title, 'c.mp4')).body.equals(v1)).toBe(true);
      await e.idle();
    }
    expect((await e.get(title, 'c.mp4')).headers['x-cache']).toBe('HIT-MEM');

    // What the fill agent does with a verified new version: stage, publish, adopt.
    const v2 = publish(title, 'c.mp4', 2 * S, 2);
    const key = objectKey(title, 'c.mp4');
    const meta = { size: 2 * S, contentType: 'video/mp4', etag: '"v2"', cacheControl: 'public, max-age=31536000, immutable', storedAt: Date.now() };
    for (let i = 0; i < 2; i++) expect(await e.server.disk.writeStaged(key, i, meta, v2.subarray(i * S, (i + 1) * S))).toBe(true);
    await e.server.disk.publish(key);
    e.server.cache.adoptFromDisk(key);

    const after = await e.get(title, 'c.mp4');
    expect(after.headers.etag).toBe('"v2"');
    expect(after.body.equals(v2)).toBe(true);
    const range = await e.get(title, 'c.mp4', { range: `bytes=10-${S + 9}` });
    expect(range.headers.etag).toBe('"v2"');
    expect(range.body.equals(v2.subarray(10, S + 10))).toBe(true);
  });

  it('an object that changed upstream under a fresh cached copy is answered in its new version, whole', async () => {
    const e = await edge();
    const title = randomTitle();
    const v1 = publish(title, 'd.mp4', 3 * S, 1);
    // Only slice 0 is cached; the copy is fresh (immutable), so nothing revalidates.
    const head = await e.get(title, 'd.mp4', { range: 'bytes=0-99' });
    expect(head.body.equals(v1.subarray(0, 100))).toBe(true);
    await e.idle();

    const v2 = publish(title, 'd.mp4', 3 * S, 2);
    // Slice 1 is fetched against the cached v1: upstream says v2. The answer must not be a
    // v1 header over v2 bytes: it is resolved again and answered as v2.
    const r = await e.get(title, 'd.mp4', { range: `bytes=${S}-${S + 99}` });
    expect(r.status).toBe(206);
    expect(r.headers.etag).toBe('"v2"');
    expect(r.body.equals(v2.subarray(S, S + 100))).toBe(true);
    await e.idle();
    const whole = await e.get(title, 'd.mp4');
    expect(whole.headers.etag).toBe('"v2"');
    expect(whole.body.equals(v2)).toBe(true);
  });
});

describe('edge: X-Cache says where the bytes came from', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  const config = testCluster({ sliceBytes: S });
  let e: RunningEdge;
  beforeAll(async () => {
    await origin.start();
    e = await startEdge(config, origin.url);
  });
  afterAll(async () => {
    await e.close();
    await origin.close();
  });

  it('a request that waited on another request’s fetch is HIT-FILL and counts as a hit', async () => {
    const title = randomTitle();
    const data = writeMedia(root, title, 'w.mp4', S, 7);
    origin.behaviour.set(`/o/${title}/w.mp4`, { delayMs: 300 });
    const [a, b] = await Promise.all([
      e.get(title, 'w.mp4'),
      new Promise((r) => setTimeout(r, 50)).then(() => e.get(title, 'w.mp4')),
    ]);
    expect(a.body.equals(data) && b.body.equals(data)).toBe(true);
    expect([a.headers['x-cache'], b.headers['x-cache']].sort()).toEqual(['HIT-FILL', 'MISS']);
    expect(origin.countFor(`/o/${title}/w.mp4`)).toBe(1);
    const h = await health<{ byTier: Record<string, { requests: number }>; hitRatio: { requests: number } }>(e);
    expect(h.byTier['HIT-FILL']!.requests).toBe(1);
    expect(h.hitRatio.requests).toBeGreaterThan(0);
  });

  it('a slice that fails its checksum and is fetched again is a MISS, not HIT-DISK', async () => {
    const title = randomTitle();
    const data = writeMedia(root, title, 'k.mp4', 2 * S, 8);
    expect((await e.get(title, 'k.mp4')).status).toBe(200);
    await e.idle();
    const file = sliceFile(config.edges[0]!.dataDir, objectKey(title, 'k.mp4'), 1);
    const bytes = readFileSync(file);
    bytes[bytes.length - 5]! ^= 0xff;
    writeFileSync(file, bytes);
    const r = await e.get(title, 'k.mp4', { range: `bytes=${S}-${S + 99}` });
    expect(r.status).toBe(206);
    expect(r.body.equals(data.subarray(S, S + 100))).toBe(true);
    expect(r.headers['x-cache']).toBe('MISS');
  });
});

/** A fresh origin and edge of their own, closed after `fn`. */
async function withEdge(fn: (e: RunningEdge, origin: TestOrigin, root: string) => Promise<void>): Promise<void> {
  const root = tempDir();
  const origin = new TestOrigin(root);
  await origin.start();
  const e = await startEdge(testCluster({ sliceBytes: S }), origin.url);
  try {
    await fn(e, origin, root);
  } finally {
    await e.close();
    await origin.close();
  }
}

async function health<T>(e: RunningEdge): Promise<T> {
  const res = await request(`${e.adminUrl}/health`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
  return (await res.body.json()) as T;
}

describe('edge: upstream down for a known object', () => {
  it('answers 502 or 504 with a reason, never 500', () =>
    withEdge(async (e, origin, root) => {
      const title = randomTitle();
      writeMedia(root, title, 'x.mp4', 3 * S, 9);
      expect((await e.get(title, 'x.mp4', { range: 'bytes=0-9' })).status).toBe(206);
      await e.idle();
      await origin.close();
      for (const range of [`bytes=${S}-${S + 9}`, undefined]) {
        const r = await e.get(title, 'x.mp4', range ? { range } : {});
        expect([502, 504]).toContain(r.status);
        expect(r.body.toString()).toMatch(/upstream/);
      }
    }));
});

describe('edge: a joined fetch that fails', () => {
  it('answers every waiter 502/504 with upstream’s reason before any header, never "internal error"', () =>
    withEdge(async (e, origin, root) => {
      const title = randomTitle();
      writeMedia(root, title, 'f.mp4', 2 * S, 4);
      expect((await e.get(title, 'f.mp4', { range: 'bytes=0-9' })).status).toBe(206);
      await e.idle();
      // The object is known; its second slice is cold and upstream now fails, slowly.
      origin.behaviour.set(`/o/${title}/f.mp4`, { delayMs: 300, status: 503 });
      const range = { range: `bytes=${S}-${S + 9}` };
      const answers = await Promise.all([
        e.get(title, 'f.mp4', range),
        new Promise((r) => setTimeout(r, 50)).then(() => e.get(title, 'f.mp4', range)),
      ]);
      for (const r of answers) {
        expect([502, 504]).toContain(r.status);
        expect(r.body.toString()).toMatch(/upstream answered 503/);
      }
    }));
});

describe('edge: answers that say nothing of its health', () => {
  it('only-if-cached misses are not errors, and /health reports the volume its error ratio covers', () =>
    withEdge(async (e, _origin, root) => {
      const title = randomTitle();
      writeMedia(root, title, 'p.mp4', S, 3);
      for (let i = 0; i < 5; i++) {
        const r = await e.get(title, 'p.mp4', { 'cache-control': 'only-if-cached' });
        expect(r.status).toBe(504);
      }
      const h = await health<{ errorRatio: number; windowRequests: number }>(e);
      expect(h.errorRatio).toBe(0);
      expect(h.windowRequests).toBe(5);
    }));
});

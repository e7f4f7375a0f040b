import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/common/clock.js';
import { TEST_ADMIN_TOKEN, randomTitle, tempDir, testCluster, writeMedia } from './helpers/cluster.js';
import { startEdge, type RunningEdge } from './helpers/edge-harness.js';
import { deadPort, metricValue } from './helpers/http-tools.js';
import { TestOrigin } from './helpers/test-origin.js';

const SLICE = 65536;
const timeouts = { connectMs: 500, headersMs: 300, bodyMs: 300 };

async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await p;
  return [v, performance.now() - t0];
}

describe('edge when upstream fails', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  let edge: RunningEdge;
  beforeAll(async () => {
    await origin.start();
    edge = await startEdge(testCluster({ sliceBytes: SLICE }), origin.url, { upstreamTimeouts: timeouts });
  });
  afterAll(async () => {
    await edge.close();
    await origin.close();
  });

  it('answers 502 fast when nothing listens upstream', async () => {
    const dead = await startEdge(testCluster({ sliceBytes: SLICE }), `http://127.0.0.1:${await deadPort()}`, { upstreamTimeouts: timeouts });
    try {
      const [a, ms] = await timed(dead.get('t', 'a.ts'));
      expect(a.status).toBe(502);
      expect(a.body.toString()).toMatch(/^bad gateway: [^\n]+\n$/);
      expect(ms).toBeLessThan(1000);
    } finally {
      await dead.close();
    }
  });

  it('answers 504 soon after headersTimeout when the origin is slow to answer', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'slow.ts', 1000);
    origin.behaviour.set(`/o/${title}/slow.ts`, { delayMs: 3000 });
    const [a, ms] = await timed(edge.get(title, 'slow.ts'));
    expect(a.status).toBe(504);
    expect(ms).toBeLessThan(2000);
  });

  it('passes 404 on and remembers it briefly', async () => {
    const title = randomTitle();
    const a = await edge.get(title, 'missing.ts');
    expect(a.status).toBe(404);
    const b = await edge.get(title, 'missing.ts');
    expect(b.status).toBe(404);
    expect(origin.countFor(`/o/${title}/missing.ts`)).toBe(1);
  });

  it.each([500, 503, 403])('turns an upstream %d into 502', async (status) => {
    const title = randomTitle();
    writeMedia(root, title, 'err.ts', 1000);
    origin.behaviour.set(`/o/${title}/err.ts`, { status });
    const a = await edge.get(title, 'err.ts');
    expect(a.status).toBe(502);
    // not remembered as missing: the next request asks again
    origin.behaviour.delete(`/o/${title}/err.ts`);
    const b = await edge.get(title, 'err.ts');
    expect(b.status).toBe(200);
  });

  it('ends the client connection when the upstream body hangs mid-slice, within the body timeout', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'hang.ts', 3 * SLICE);
    origin.behaviour.set(`/o/${title}/hang.ts`, { hangAfter: 1000 });
    const t0 = performance.now();
    let failed = false;
    let received = 0;
    try {
      const res = await request(`${edge.url}${edge.signed(title, 'hang.ts')}`);
      expect(res.statusCode).toBe(200);
      for await (const c of res.body) received += (c as Buffer).length;
    } catch {
      failed = true;
    }
    const ms = performance.now() - t0;
    expect(failed).toBe(true);
    expect(received).toBeLessThan(3 * SLICE);
    expect(ms).toBeLessThan(3000); // one retry after the first writer's body timeout, then give up
    await edge.idle();
  });

  it('ends the client connection when the origin cuts a slice short mid-object, and stores nothing of it', async () => {
    const title = randomTitle();
    const data = writeMedia(root, title, 'cut.ts', 3 * SLICE);
    const path = `/o/${title}/cut.ts`;
    expect((await edge.get(title, 'cut.ts', { range: 'bytes=0-99' })).body.equals(data.subarray(0, 100))).toBe(true);
    await edge.idle();
    origin.behaviour.set(path, { truncateAfter: 5000 });
    let received = 0;
    await expect(
      (async () => {
        const res = await request(`${edge.url}${edge.signed(title, 'cut.ts')}`);
        expect(res.statusCode).toBe(200); // headers went out before slice 1 was asked for
        for await (const c of res.body) received += (c as Buffer).length;
      })(),
    ).rejects.toThrow();
    expect(received).toBeLessThan(3 * SLICE);
    await edge.idle();
    const key = JSON.stringify([title, 'cut.ts']);
    expect(edge.server.disk.has(key, 1)).toBe(false);
    origin.behaviour.delete(path);
    const again = await edge.get(title, 'cut.ts');
    expect(again.body.equals(data)).toBe(true);
  });

  it('keeps serving cached content while the upstream is down', async () => {
    const own = new TestOrigin(root);
    await own.start();
    const e = await startEdge(testCluster({ sliceBytes: SLICE }), own.url, { upstreamTimeouts: timeouts });
    try {
      const title = randomTitle();
      const data = writeMedia(root, title, 'keep.ts', 2 * SLICE + 1);
      expect((await e.get(title, 'keep.ts')).body.equals(data)).toBe(true);
      await e.idle();
      await own.close();
      for (const h of [{}, { range: 'bytes=100-70000' }] as Record<string, string>[]) {
        const a = await e.get(title, 'keep.ts', h);
        expect(a.status).toBe('range' in h ? 206 : 200);
        expect(a.body.equals('range' in h ? data.subarray(100, 70001) : data)).toBe(true);
      }
      expect((await e.get(title, 'other.ts')).status).toBe(502);
    } finally {
      await e.close();
      await own.close();
    }
  });
});

describe('edge freshness', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  const clock = new FakeClock(Date.now());
  let edge: RunningEdge;
  beforeAll(async () => {
    await origin.start();
    edge = await startEdge(testCluster({ sliceBytes: SLICE }), origin.url, { clock, upstreamTimeouts: timeouts });
  });
  afterAll(async () => {
    await edge.close();
    await origin.close();
  });

  it.each(['no-store', 'private, max-age=600'])('never stores %j: every request reaches the origin', async (cacheControl) => {
    const title = randomTitle();
    const data = writeMedia(root, title, 'p.ts', SLICE + 10);
    const path = `/o/${title}/p.ts`;
    origin.behaviour.set(path, { cacheControl });
    for (let i = 0; i < 3; i++) {
      const a = await edge.get(title, 'p.ts');
      expect(a.headers['x-cache']).toBe('MISS');
      expect(a.body.equals(data)).toBe(true);
      await edge.idle();
    }
    expect(origin.countFor(path, (r) => r.range === `bytes=0-${SLICE - 1}`)).toBe(3);
    expect(edge.server.disk.stats().objects).toBe(0);
  });

  it('revalidates with If-None-Match after max-age and keeps serving cached bytes on 304', async () => {
    const title = randomTitle();
    const data = writeMedia(root, title, 'm.ts', SLICE + 10);
    const path = `/o/${title}/m.ts`;
    origin.behaviour.set(path, { cacheControl: 'max-age=1', etag: '"m1"' });
    expect((await edge.get(title, 'm.ts')).body.equals(data)).toBe(true);
    await edge.idle();
    const fetched = origin.countFor(path);
    expect((await edge.get(title, 'm.ts')).headers['x-cache']).toBe('HIT-DISK');
    expect(origin.countFor(path)).toBe(fetched); // fresh: nobody asked
    clock.advance(1500);
    const b = await edge.get(title, 'm.ts', { range: 'bytes=5-70000' });
    expect(b.status).toBe(206);
    expect(b.headers['x-cache']).not.toBe('MISS');
    expect(b.body.equals(data.subarray(5, 70001))).toBe(true);
    const conditional = origin.requests.filter((r) => r.path === path && r.ifNoneMatch !== undefined);
    expect(conditional.map((r) => r.ifNoneMatch)).toEqual(['"m1"']);
    expect(origin.countFor(path)).toBe(fetched + 1);
    // fresh again for another second
    await edge.get(title, 'm.ts');
    expect(origin.countFor(path)).toBe(fetched + 1);
    const m = await (await request(`${edge.adminUrl}/metrics`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })).body.text();
    expect(metricValue(m, 'reelcdn_edge_upstream_fetches_total', { result: 'not-modified' })).toBe(1);
  });

  it('serves stale within stale-if-error when the origin fails, then 502 after it', async () => {
    const title = randomTitle();
    const data = writeMedia(root, title, 's.ts', 1000);
    const path = `/o/${title}/s.ts`;
    origin.behaviour.set(path, { cacheControl: 'max-age=1, stale-if-error=60' });
    expect((await edge.get(title, 's.ts')).body.equals(data)).toBe(true);
    await edge.idle();
    origin.behaviour.set(path, { status: 500 });
    clock.advance(2000);
    const a = await edge.get(title, 's.ts');
    expect(a.status).toBe(200);
    expect(a.body.equals(data)).toBe(true);
    expect(a.headers.warning).toMatch(/^110 /);
    clock.advance(61_000);
    expect((await edge.get(title, 's.ts')).status).toBe(502);
  });

  it('does not serve stale past max-age without stale-if-error', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'n.ts', 1000);
    const path = `/o/${title}/n.ts`;
    origin.behaviour.set(path, { cacheControl: 'max-age=1' });
    expect((await edge.get(title, 'n.ts')).status).toBe(200);
    await edge.idle();
    origin.behaviour.set(path, { status: 500 });
    clock.advance(2000);
    expect((await edge.get(title, 'n.ts')).status).toBe(502);
  });

  it('serves the new bytes when the etag changed after expiry', async () => {
    const title = randomTitle();
    const oldData = writeMedia(root, title, 'c.ts', SLICE + 500, 1);
    const path = `/o/${title}/c.ts`;
    origin.behaviour.set(path, { cacheControl: 'max-age=1', etag: '"v1"' });
    expect((await edge.get(title, 'c.ts')).body.equals(oldData)).toBe(true);
    await edge.idle();
    const newData = writeMedia(root, title, 'c.ts', SLICE + 500, 2);
    origin.behaviour.set(path, { cacheControl: 'max-age=1', etag: '"v2"' });
    expect((await edge.get(title, 'c.ts')).body.equals(oldData)).toBe(true); // still fresh
    clock.advance(1500);
    const a = await edge.get(title, 'c.ts');
    expect(a.status).toBe(200);
    expect(a.headers.etag).toBe('"v2"');
    expect(a.body.equals(newData)).toBe(true);
    await edge.idle();
    const b = await edge.get(title, 'c.ts', { range: `bytes=${SLICE - 5}-${SLICE + 5}` });
    expect(b.body.equals(newData.subarray(SLICE - 5, SLICE + 6))).toBe(true);
    expect(b.headers.etag).toBe('"v2"');
  });

  it('forgets an object that is gone (404) on revalidation', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'g.ts', 1000);
    const path = `/o/${title}/g.ts`;
    origin.behaviour.set(path, { cacheControl: 'max-age=1' });
    expect((await edge.get(title, 'g.ts')).status).toBe(200);
    await edge.idle();
    writeFileSync(join(root, title, 'g.ts'), ''); // keep the dir; make the path a 404 below
    origin.behaviour.set(path, { status: 404 });
    clock.advance(2000);
    expect((await edge.get(title, 'g.ts')).status).toBe(404);
    expect(edge.server.disk.has(JSON.stringify([title, 'g.ts']), 0)).toBe(false);
  });
});

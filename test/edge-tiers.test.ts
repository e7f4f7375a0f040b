import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { objectKey } from '../src/common/paths.js';
import { TEST_ADMIN_TOKEN, randomTitle, tempDir, testCluster, writeMedia } from './helpers/cluster.js';
import { startEdge, type RunningEdge } from './helpers/edge-harness.js';
import { metricValue } from './helpers/http-tools.js';
import { TestOrigin } from './helpers/test-origin.js';
import { sliceFile } from './helpers/slice-files.js';

const SLICE = 65536;

async function metrics(edge: RunningEdge): Promise<string> {
  const res = await request(`${edge.adminUrl}/metrics`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
  expect(res.statusCode).toBe(200);
  return res.body.text();
}
const sliceRange = (i: number, size: number) => `bytes=${i * SLICE}-${Math.min(size, (i + 1) * SLICE) - 1}`;
function slicePath(dataDir: string, title: string, file: string, index: number): string {
  return sliceFile(dataDir, objectKey(title, file), index);
}

describe('edge tiers', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  beforeAll(async () => {
    await origin.start();
  });
  afterAll(async () => {
    await origin.close();
  });

  it('serves MISS, then HIT-DISK, then HIT-MEM for the same range, and HIT-DISK after a restart', async () => {
    const title = randomTitle();
    const size = 4 * SLICE + 777;
    const data = writeMedia(root, title, 'v.mp4', size, 11);
    const config = testCluster({ sliceBytes: SLICE });
    const path = `/o/${title}/v.mp4`;
    const range = { range: `bytes=${SLICE - 100}-${2 * SLICE + 100}` }; // crosses two slice boundaries
    const want = data.subarray(SLICE - 100, 2 * SLICE + 101);

    let edge = await startEdge(config, origin.url);
    try {
      const tiers: string[] = [];
      for (let i = 0; i < 3; i++) {
        const a = await edge.get(title, 'v.mp4', range);
        expect(a.status).toBe(206);
        expect(a.body.equals(want)).toBe(true);
        tiers.push(a.headers['x-cache']!);
        await edge.idle();
      }
      expect(tiers).toEqual(['MISS', 'HIT-DISK', 'HIT-MEM']);
      expect(origin.countFor(path)).toBe(3); // slices 0, 1, 2: each fetched once
      expect(origin.requests.filter((r) => r.path === path).map((r) => r.range).sort()).toEqual([0, 1, 2].map((i) => sliceRange(i, size)).sort());
    } finally {
      await edge.close();
    }

    edge = await startEdge(config, origin.url);
    try {
      const b = await edge.get(title, 'v.mp4', range);
      expect(b.headers['x-cache']).toBe('HIT-DISK');
      expect(b.body.equals(want)).toBe(true);
      expect(origin.countFor(path)).toBe(3);
      // a range ending in the last, short slice: slices 3 and 4 are new
      const tail = await edge.get(title, 'v.mp4', { range: `bytes=${3 * SLICE + 5}-${size - 1}` });
      expect(tail.status).toBe(206);
      expect(tail.headers['x-cache']).toBe('MISS');
      expect(tail.body.equals(data.subarray(3 * SLICE + 5))).toBe(true);
      await edge.idle();
      const whole = await edge.get(title, 'v.mp4');
      expect(whole.headers['x-cache']).toBe('HIT-DISK');
      expect(whole.body.equals(data)).toBe(true);
      expect(origin.countFor(path)).toBe(5);
      expect(origin.countFor(path, (r) => r.range === sliceRange(4, size))).toBe(1);
    } finally {
      await edge.close();
    }
  });

  it('coalesces 100 concurrent cold requests into one upstream fetch per slice', async () => {
    const title = randomTitle();
    const size = 3 * SLICE;
    const data = writeMedia(root, title, 'hot.m4s', size, 12);
    const path = `/o/${title}/hot.m4s`;
    origin.behaviour.set(path, { delayMs: 300 });
    const edge = await startEdge(testCluster({ sliceBytes: SLICE }), origin.url);
    try {
      const before = metricValue(await metrics(edge), 'reelcdn_edge_coalesced_waits_total');
      const answers = await Promise.all(
        Array.from({ length: 100 }, (_, i) => edge.get(title, 'hot.m4s', { range: `bytes=${i * 100}-${i * 100 + 9999}` })),
      );
      for (const [i, a] of answers.entries()) {
        expect(a.status).toBe(206);
        expect(a.body.equals(data.subarray(i * 100, i * 100 + 10000))).toBe(true);
      }
      await edge.idle();
      expect(origin.countFor(path)).toBe(1);
      expect(origin.countFor(path, (r) => r.range === sliceRange(0, size))).toBe(1);
      const waits = metricValue(await metrics(edge), 'reelcdn_edge_coalesced_waits_total') - before;
      expect(waits).toBe(99);
      // the same for whole-object requests over three cold slices: one fetch each
      const whole = await Promise.all(Array.from({ length: 100 }, () => edge.get(title, 'hot.m4s')));
      expect(whole.every((a) => a.status === 200 && a.body.equals(data))).toBe(true);
      await edge.idle();
      for (const i of [1, 2]) expect(origin.countFor(path, (r) => r.range === sliceRange(i, size))).toBe(1);
    } finally {
      await edge.close();
    }
  });

  it('stays within diskBytes and memoryBytes when written three times over, and refetches what it evicted', async () => {
    const diskBytes = 1024 * 1024;
    const memoryBytes = 256 * 1024;
    const config = testCluster({ sliceBytes: SLICE, diskBytes, memoryBytes });
    const edge = await startEdge(config, origin.url);
    try {
      const title = randomTitle();
      const objects = Array.from({ length: 6 }, (_, i) => ({ file: `o${i}.ts`, data: writeMedia(root, title, `o${i}.ts`, 8 * SLICE, 100 + i) }));
      for (const o of objects) {
        for (let pass = 0; pass < 2; pass++) {
          const a = await edge.get(title, o.file);
          expect(a.body.equals(o.data)).toBe(true);
          await edge.idle();
          const d = edge.server.disk.stats();
          expect(d.usedBytes).toBeLessThanOrEqual(diskBytes);
          expect(edge.server.cache.memoryStats().usedBytes).toBeLessThanOrEqual(memoryBytes);
        }
      }
      await new Promise((r) => setTimeout(r, 50)); // eviction unlinks in the background
      expect(await edge.server.disk.measureOnDisk()).toBeLessThanOrEqual(diskBytes);
      expect(edge.server.disk.stats().usedBytes).toBeGreaterThan(diskBytes / 2); // it did use the disk
      const m = await metrics(edge);
      expect(metricValue(m, 'reelcdn_edge_evictions_total', { tier: 'disk' })).toBeGreaterThan(0);
      expect(metricValue(m, 'reelcdn_edge_evictions_total', { tier: 'memory' })).toBeGreaterThan(0);
      expect(metricValue(m, 'reelcdn_edge_tier_bytes', { tier: 'disk' })).toBeLessThanOrEqual(diskBytes);

      // the first object was evicted from both tiers: it comes back from upstream, byte for byte
      const firstPath = `/o/${title}/o0.ts`;
      const fetchedBefore = origin.countFor(firstPath);
      const again = await edge.get(title, 'o0.ts');
      expect(again.headers['x-cache']).toBe('MISS');
      expect(again.body.equals(objects[0]!.data)).toBe(true);
      expect(origin.countFor(firstPath)).toBeGreaterThan(fetchedBefore);
      await edge.idle();
      expect(edge.server.disk.stats().usedBytes).toBeLessThanOrEqual(diskBytes);
    } finally {
      await edge.close();
    }
  });

  it('removes partial, truncated, garbage and mislabelled slice files at start and never serves them', async () => {
    const title = randomTitle();
    const size = 5 * SLICE + 99;
    const data = writeMedia(root, title, 'c.mp4', size, 13);
    const path = `/o/${title}/c.mp4`;
    const config = testCluster({ sliceBytes: SLICE });
    const dataDir = config.edges[0]!.dataDir;
    let edge = await startEdge(config, origin.url);
    await edge.get(title, 'c.mp4');
    await edge.idle();
    await edge.close();
    expect(origin.countFor(path)).toBe(6);

    const paths = [0, 1, 2, 3, 4, 5].map((i) => slicePath(dataDir, title, 'c.mp4', i));
    const p = (i: number) => paths[i]!;
    const tmp = join(p(0), '..', '.tmp-0123456789ab');
    writeFileSync(tmp, readFileSync(p(0)).subarray(0, 1000)); // a write cut short by a crash
    truncateSync(p(1), statSync(p(1)).size - 1); // one byte missing
    writeFileSync(p(2), Buffer.alloc(SLICE + 200, 0x41)); // garbage of a plausible size
    {
      // slice 3's file with a header that claims another object of the same size
      const f = readFileSync(p(3));
      const len = f.readUInt32BE(6);
      const header = JSON.parse(f.subarray(10, 10 + len).toString());
      header.key = objectKey(title, 'other.mp4');
      const hb = Buffer.from(JSON.stringify(header));
      const prefix = Buffer.from(f.subarray(0, 10));
      prefix.writeUInt32BE(hb.length, 6);
      writeFileSync(p(3), Buffer.concat([prefix, hb, f.subarray(10 + len)]));
    }

    edge = await startEdge(config, origin.url);
    try {
      expect(existsSync(tmp)).toBe(false);
      for (const i of [1, 2, 3]) expect(existsSync(p(i))).toBe(false);
      for (const i of [0, 4, 5]) expect(existsSync(p(i))).toBe(true);
      const a = await edge.get(title, 'c.mp4');
      expect(a.status).toBe(200);
      expect(a.body.equals(data)).toBe(true);
      await edge.idle();
      // exactly the three damaged slices came from upstream again
      expect(origin.countFor(path)).toBe(9);
      for (const i of [1, 2, 3]) expect(origin.countFor(path, (r) => r.range === sliceRange(i, size))).toBe(2);
      const b = await edge.get(title, 'c.mp4', { range: `bytes=${SLICE}-${4 * SLICE - 1}` });
      expect(b.body.equals(data.subarray(SLICE, 4 * SLICE))).toBe(true);
      expect(b.headers['x-cache']).not.toBe('MISS');
    } finally {
      await edge.close();
    }
  });

  it('serves correct bytes from memory when a disk write fails, and counts the failure', async () => {
    const title = randomTitle();
    const size = 2 * SLICE + 5;
    const data = writeMedia(root, title, 'full.ts', size, 14);
    const config = testCluster({ sliceBytes: SLICE });
    const dataDir = config.edges[0]!.dataDir;
    const edge = await startEdge(config, origin.url);
    try {
      // Slice files live in cache/hh/: make cache/ a file so every mkdir fails (root ignores chmod).
      const hhDir = join(dataDir, 'cache');
      rmSync(hhDir, { recursive: true, force: true });
      writeFileSync(hhDir, 'not a directory');
      const a = await edge.get(title, 'full.ts');
      expect(a.status).toBe(200);
      expect(a.body.equals(data)).toBe(true);
      await edge.idle();
      const m = await metrics(edge);
      expect(metricValue(m, 'reelcdn_edge_disk_write_errors_total')).toBe(3);
      expect(edge.server.disk.stats().slices).toBe(0);
      const b = await edge.get(title, 'full.ts', { range: `bytes=${SLICE - 3}-${SLICE + 2}` });
      expect(b.headers['x-cache']).toBe('HIT-MEM');
      expect(b.body.equals(data.subarray(SLICE - 3, SLICE + 3))).toBe(true);
      expect(origin.countFor(`/o/${title}/full.ts`)).toBe(3);
      expect(readFileSync(hhDir, 'utf8')).toBe('not a directory'); // and so no temp file was left anywhere
      const health = await request(`${edge.adminUrl}/health`);
      expect(health.statusCode).toBe(200);
      await health.body.dump();
    } finally {
      await edge.close();
    }
  });

  it('serves from memory when a slice is larger than the whole disk', async () => {
    const title = randomTitle();
    const data = writeMedia(root, title, 'big.ts', 3 * SLICE, 15);
    const edge = await startEdge(testCluster({ sliceBytes: SLICE, diskBytes: 4096 }), origin.url);
    try {
      expect((await edge.get(title, 'big.ts')).body.equals(data)).toBe(true);
      await edge.idle();
      expect(edge.server.disk.stats().usedBytes).toBe(0);
      expect(await edge.server.disk.measureOnDisk()).toBe(0);
      const b = await edge.get(title, 'big.ts');
      expect(b.headers['x-cache']).toBe('HIT-MEM');
      expect(b.body.equals(data)).toBe(true);
    } finally {
      await edge.close();
    }
  });
});

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/common/logger.js';
import { objectKey } from '../src/common/paths.js';
import { DiskTier, type StoredMeta } from '../src/edge/disk-tier.js';
import { tempDir } from './helpers/cluster.js';
import { sliceFile } from './helpers/slice-files.js';

const logger = createLogger('test', 'silent');
const S = 4096;

function tier(dir: string, capacityBytes = 10 * 1024 * 1024, sliceBytes = S, onEvict?: (b: number) => void) {
  return new DiskTier({ dir, capacityBytes, sliceBytes, logger, onEvict });
}
function meta(size: number, etag = '"v1"'): StoredMeta {
  return { size, contentType: 'video/mp4', etag, lastModified: 'Tue, 01 Oct 2024 10:00:00 GMT', cacheControl: 'max-age=60', storedAt: 1 };
}
function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 17) & 0xff;
  return b;
}
const slicePath = sliceFile;
function allFiles(dir: string): string[] {
  const root = join(dir, 'cache');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((sub) => (statSync(join(root, sub)).isDirectory() ? readdirSync(join(root, sub)).map((n) => join(root, sub, n)) : [join(root, sub)]));
}

describe('DiskTier', () => {
  it('stores whole slices, reads them back, and survives a reopen', async () => {
    const dir = tempDir();
    const size = 3 * S + 100;
    const key = objectKey('t', 'a.mp4');
    const data = bytes(size, 1);
    const a = tier(dir);
    await a.open();
    for (let i = 0; i < 4; i++) expect(await a.write(key, i, meta(size), data.subarray(i * S, Math.min(size, (i + 1) * S)))).toBe('stored');
    expect(a.stats()).toMatchObject({ objects: 1, slices: 4 });
    expect(a.stats().usedBytes).toBe(await a.measureOnDisk());
    expect(allFiles(dir).some((f) => f.includes('.tmp-'))).toBe(false);

    const b = tier(dir);
    const opened = await b.open();
    expect(opened).toMatchObject({ slices: 4, removed: 0 });
    expect(b.meta(key)).toEqual(meta(size));
    const back = Buffer.concat(await Promise.all([0, 1, 2, 3].map(async (i) => (await b.read(key, i))!)));
    expect(back.equals(data)).toBe(true);
    expect(b.stats().usedBytes).toBe(a.stats().usedBytes);
  });

  it('removes at start what a crash or a stranger left, keeps the good slices', async () => {
    const dir = tempDir();
    const size = 5 * S;
    const key = objectKey('t', 'b.mp4');
    const data = bytes(size, 2);
    const a = tier(dir);
    await a.open();
    for (let i = 0; i < 5; i++) await a.write(key, i, meta(size), data.subarray(i * S, (i + 1) * S));

    const p = (i: number) => slicePath(dir, key, i);
    const sub = join(p(0), '..');
    writeFileSync(join(sub, '.tmp-deadbeef0000'), readFileSync(p(0))); // a partial temp file (even if whole)
    truncateSync(p(1), statSync(p(1)).size - 10); // a truncated slice
    writeFileSync(p(2), Buffer.from('garbage, not a slice at all')); // garbage where a slice was
    writeFileSync(join(sub, 'stranger'), Buffer.from('RCDN1\n\0\0\0\x05{oops')); // a foreign file
    {
      // a slice whose header lies about what it is: index 3's bytes under the header of index 4
      const f = readFileSync(p(3));
      const len = f.readUInt32BE(6);
      const header = JSON.parse(f.subarray(10, 10 + len).toString());
      header.index = 4;
      const hb = Buffer.from(JSON.stringify(header));
      const prefix = Buffer.alloc(10);
      f.copy(prefix, 0, 0, 6);
      prefix.writeUInt32BE(hb.length, 6);
      writeFileSync(p(3), Buffer.concat([prefix, hb, f.subarray(10 + len)]));
    }
    mkdirSync(join(dir, 'cache', 'zz'), { recursive: true });
    writeFileSync(join(dir, 'cache', 'zz', 'x.0'), 'junk'); // junk in an unrelated subdir
    writeFileSync(join(dir, 'cache', 'not-a-dir'), 'junk'); // a file where a subdir belongs

    const b = tier(dir);
    const opened = await b.open();
    expect(opened.slices).toBe(2);
    expect(opened.removed).toBe(6);
    expect(b.sliceIndexes(key).sort()).toEqual([0, 4]);
    expect((await b.read(key, 0))!.equals(data.subarray(0, S))).toBe(true);
    expect((await b.read(key, 4))!.equals(data.subarray(4 * S, 5 * S))).toBe(true);
    for (const i of [1, 2, 3]) expect(await b.read(key, i)).toBeUndefined();
    const left = allFiles(dir).sort();
    expect(left).toEqual([p(0), p(4)].sort());
    expect(b.stats().usedBytes).toBe(await b.measureOnDisk());
  });

  it('a slice written with another slice size is not used', async () => {
    const dir = tempDir();
    const key = objectKey('t', 'c.mp4');
    const a = tier(dir, 1 << 20, S);
    await a.open();
    await a.write(key, 0, meta(S * 2), bytes(S, 3));
    const b = tier(dir, 1 << 20, S * 2);
    expect((await b.open()).slices).toBe(0);
    expect(b.has(key, 0)).toBe(false);
  });

  it('never exceeds its capacity and evicts least recently used first', async () => {
    const dir = tempDir();
    const cap = 10 * (S + 400);
    const evicted: number[] = [];
    const d = tier(dir, cap, S, (b) => evicted.push(b));
    await d.open();
    const keys = Array.from({ length: 30 }, (_, i) => objectKey('t', `o${i}.ts`));
    for (let i = 0; i < 30; i++) {
      expect(await d.write(keys[i]!, 0, meta(S), bytes(S, i))).toBe('stored');
      if (i === 5) await d.read(keys[0]!, 0); // keep o0 warm
      expect(d.stats().usedBytes).toBeLessThanOrEqual(cap);
      expect(await d.measureOnDisk()).toBeLessThanOrEqual(cap);
    }
    expect(evicted.length).toBeGreaterThan(0);
    const present = keys.filter((k) => d.has(k, 0));
    // The newest are present; the oldest cold ones are gone.
    expect(d.has(keys[29]!, 0)).toBe(true);
    expect(d.has(keys[1]!, 0)).toBe(false);
    expect(present.length).toBe(d.stats().slices);
    for (const k of present) expect((await d.read(k, 0))!.equals(bytes(S, keys.indexOf(k)))).toBe(true);
  });

  it('refuses a slice larger than the whole disk and keeps pinned content', async () => {
    const dir = tempDir();
    const d = tier(dir, 3 * (S + 400), S);
    await d.open();
    expect(await tier(tempDir(), 100, S).write(objectKey('t', 'x'), 0, meta(S), bytes(S, 0))).toBe('no-room');
    const pinned = objectKey('t', 'pinned.ts');
    d.pin(pinned);
    expect(await d.write(pinned, 0, meta(2 * S), bytes(S, 1))).toBe('stored');
    expect(await d.write(pinned, 1, meta(2 * S), bytes(S, 2))).toBe('stored');
    expect(d.stats().pinnedBytes).toBeGreaterThan(0);
    for (let i = 0; i < 5; i++) await d.write(objectKey('t', `u${i}`), 0, meta(S), bytes(S, i));
    expect(d.has(pinned, 0) && d.has(pinned, 1)).toBe(true);
    // one unpinned slot left; filling the disk with pinned content makes writes fail softly
    const p2 = objectKey('t', 'pinned2.ts');
    d.pin(p2);
    expect(await d.write(p2, 0, meta(S), bytes(S, 9))).toBe('stored');
    expect(await d.write(objectKey('t', 'late'), 0, meta(S), bytes(S, 9))).toBe('no-room');
    expect(d.stats().usedBytes).toBeLessThanOrEqual(d.capacityBytes);
  });

  it('purge removes the object, and a write racing a purge does not resurrect it', async () => {
    const dir = tempDir();
    const d = tier(dir);
    await d.open();
    const key = objectKey('t', 'p.ts');
    await d.write(key, 0, meta(2 * S), bytes(S, 1));
    const racing = d.write(key, 1, meta(2 * S), bytes(S, 2));
    expect(d.purge(key)).toBeGreaterThan(0);
    expect(await racing).toBe('superseded');
    expect(d.has(key, 0) || d.has(key, 1)).toBe(false);
    expect(d.stats().usedBytes).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    expect(await d.measureOnDisk()).toBe(0);
  });

  it('a new representation replaces the old one', async () => {
    const d = tier(tempDir());
    await d.open();
    const key = objectKey('t', 'r.ts');
    await d.write(key, 0, meta(2 * S, '"v1"'), bytes(S, 1));
    await d.write(key, 1, meta(2 * S, '"v1"'), bytes(S, 2));
    await d.write(key, 0, meta(2 * S, '"v2"'), bytes(S, 3));
    expect(d.sliceIndexes(key)).toEqual([0]);
    expect(d.meta(key)?.etag).toBe('"v2"');
    expect((await d.read(key, 0))!.equals(bytes(S, 3))).toBe(true);
  });

  it('a slice deleted underneath is dropped on read, not served', async () => {
    const dir = tempDir();
    const d = tier(dir);
    await d.open();
    const key = objectKey('t', 'gone.ts');
    await d.write(key, 0, meta(S), bytes(S, 1));
    truncateSync(slicePath(dir, key, 0), 50);
    expect(await d.read(key, 0)).toBeUndefined();
    expect(d.has(key, 0)).toBe(false);
  });

  it('a slice whose bytes rotted on disk fails its checksum and is dropped, not served', async () => {
    const dir = tempDir();
    const d = tier(dir);
    await d.open();
    const key = objectKey('t', 'rot.m4s');
    await d.write(key, 0, meta(S), bytes(S, 3));
    const path = slicePath(dir, key, 0);
    const file = readFileSync(path);
    file[file.length - 10]! ^= 0xff; // same length, same header: only the data changed
    writeFileSync(path, file);
    expect(await d.read(key, 0)).toBeUndefined();
    expect(d.has(key, 0)).toBe(false);
  });

  it('rebuilds an index of 10,000 small objects after a restart', async () => {
    const dir = tempDir();
    const small = 4096;
    const d = tier(dir, 1 << 30, small);
    await d.open();
    const n = 10_000;
    const keys = Array.from({ length: n }, (_, i) => objectKey(`title-${i % 97}`, `seg_${i}.m4s`));
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < n) {
          const i = next++;
          if ((await d.write(keys[i]!, 0, meta(100 + (i % 50)), bytes(100 + (i % 50), i))) !== 'stored') throw new Error('write refused');
        }
      }),
    );
    const used = d.stats().usedBytes;

    const again = tier(dir, 1 << 30, small);
    const t0 = performance.now();
    const opened = await again.open();
    const ms = performance.now() - t0;
    console.log(`disk.open() rebuilt ${opened.slices} slices of ${n} objects in ${ms.toFixed(0)} ms (tier says ${opened.ms.toFixed(0)} ms)`);
    expect(opened.slices).toBe(n);
    expect(opened.removed).toBe(0);
    expect(again.stats()).toMatchObject({ objects: n, slices: n, usedBytes: used });
    for (let i = 0; i < n; i++) expect(again.has(keys[i]!, 0)).toBe(true);
    for (const i of [0, 1, 4999, 9999]) expect((await again.read(keys[i]!, 0))!.equals(bytes(100 + (i % 50), i))).toBe(true);
  }, 120_000);
});

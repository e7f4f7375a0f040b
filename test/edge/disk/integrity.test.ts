import { appendFileSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/logger.js';
import { objectKey } from '../../../src/common/paths.js';
import { DiskTier, type DiskTierOptions, type StoredMeta } from '../../../src/edge/disk-tier.js';
import { tempDir } from '../../helpers/cluster.js';
import { sliceFile } from '../../helpers/slice-files.js';
import { fdsOn } from './open-fds.js';

const logger = createLogger('test', 'silent');
const S = 4096;
const key = objectKey('t', 'seg.m4s');
const meta: StoredMeta = { size: 2 * S, contentType: 'video/mp4', etag: '"v1"', storedAt: 1 };
const bytes = (seed: number) => Buffer.alloc(S, seed);

async function tierWith(dir: string, extra: Partial<DiskTierOptions> = {}): Promise<DiskTier> {
  const d = new DiskTier({ dir, capacityBytes: 1 << 20, sliceBytes: S, logger, ...extra });
  await d.open();
  return d;
}

/** Flips one data byte in place (same inode, same length, same header): bit rot. */
function rot(path: string): void {
  const f = readFileSync(path);
  f[f.length - 7]! ^= 0x5a;
  writeFileSync(path, f);
}

describe('disk tier integrity', () => {
  it('checks the CRC on the first read after a write; later reads only on a sample', async () => {
    const dir = tempDir();
    let sample = false;
    const d = await tierWith(dir, { crcSampleEvery: 64, random: () => (sample ? 0 : 0.5) });
    await d.write(key, 0, meta, bytes(1));
    expect((await d.read(key, 0))!.equals(bytes(1))).toBe(true); // first read: checked, passes
    rot(sliceFile(dir, key, 0));
    // Bit rot after the first check is not caught by a read that is not sampled: the documented miss.
    expect((await d.read(key, 0))!.equals(bytes(1))).toBe(false);
    sample = true;
    expect(await d.read(key, 0)).toBeUndefined(); // the sampled read catches it and drops the slice
    expect(d.has(key, 0)).toBe(false);
    await d.close();
  });

  it('after a restart every slice is unverified: damage done while the edge was down is caught on the first read', async () => {
    const dir = tempDir();
    const a = await tierWith(dir);
    await a.write(key, 0, meta, bytes(1));
    await a.write(key, 1, meta, bytes(2));
    await a.read(key, 0);
    await a.close();
    // What a power cut can leave of a file written without fsync: whole length, header intact, wrong bytes.
    rot(sliceFile(dir, key, 0));
    const b = await tierWith(dir, { crcSampleEvery: 0 });
    expect(b.has(key, 0)).toBe(true); // the scan checks header and length only
    expect(await b.read(key, 0)).toBeUndefined();
    expect(b.has(key, 0)).toBe(false);
    expect((await b.read(key, 1))!.equals(bytes(2))).toBe(true);
    await b.close();
  });

  it('a truncated or extended file is caught by the length check on every read, sampled or not', async () => {
    const dir = tempDir();
    const d = await tierWith(dir, { crcSampleEvery: 0 });
    await d.write(key, 0, meta, bytes(1));
    await d.write(key, 1, meta, bytes(2));
    await d.read(key, 0);
    await d.read(key, 1); // both verified, descriptors cached
    truncateSync(sliceFile(dir, key, 0), S - 1);
    appendFileSync(sliceFile(dir, key, 1), 'x');
    expect(await d.read(key, 0)).toBeUndefined();
    expect(await d.read(key, 1)).toBeUndefined();
    expect(d.stats().slices).toBe(0);
    await d.close();
  });

  it('a file whose header prefix no longer matches the index is caught on every read', async () => {
    const dir = tempDir();
    const d = await tierWith(dir, { crcSampleEvery: 0 });
    await d.write(key, 0, meta, bytes(1));
    await d.read(key, 0);
    const path = sliceFile(dir, key, 0);
    const f = readFileSync(path);
    f.writeUInt32BE(f.readUInt32BE(6) - 1, 6); // same length, data would start a byte early
    writeFileSync(path, f);
    expect(await d.read(key, 0)).toBeUndefined();
    await d.close();
  });

  it('keeps one descriptor per slice file across reads, and closes it when the slice is purged', async () => {
    const dir = tempDir();
    const d = await tierWith(dir);
    await d.write(key, 0, meta, bytes(1));
    for (let i = 0; i < 10; i++) expect((await d.read(key, 0))!.equals(bytes(1))).toBe(true);
    expect(d.fdStats()).toMatchObject({ opens: 1, open: 1 });
    const path = sliceFile(dir, key, 0);
    expect(fdsOn(path)).toBe(1);
    // A read in flight when the purge comes finishes with the right bytes; then the descriptor closes.
    const inflight = d.read(key, 0);
    d.purge(key);
    expect((await inflight)!.equals(bytes(1))).toBe(true);
    expect(d.fdStats().open).toBe(0);
    expect(fdsOn(path)).toBe(0);
    expect(await d.read(key, 0)).toBeUndefined();
  });

  it('bounds its open descriptors and closes them all on close()', async () => {
    const dir = tempDir();
    const d = await tierWith(dir, { fdCacheSize: 3 });
    const keys = Array.from({ length: 8 }, (_, i) => objectKey('t', `o${i}`));
    for (const [i, k] of keys.entries()) await d.write(k, 0, { ...meta, size: S }, bytes(i));
    for (const [i, k] of keys.entries()) expect((await d.read(k, 0))!.equals(bytes(i))).toBe(true);
    expect(d.fdStats().open).toBe(3);
    await d.close();
    expect(d.fdStats().open).toBe(0);
    for (const k of keys) expect(fdsOn(sliceFile(dir, k, 0))).toBe(0);
  });
});

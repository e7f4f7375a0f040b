import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/logger.js';
import { objectKey } from '../../../src/common/paths.js';
import { BufferPool } from '../../../src/edge/disk/buffer-pool.js';
import { DiskTier, type StoredMeta } from '../../../src/edge/disk-tier.js';
import { tempDir } from '../../helpers/cluster.js';
import { sliceFile } from '../../helpers/slice-files.js';
import { truncateSync } from 'node:fs';

const logger = createLogger('test', 'silent');
const S = 64 * 1024;
const meta = (size: number): StoredMeta => ({ size, contentType: 'video/mp4', etag: '"v1"', storedAt: 1 });

describe('BufferPool and SliceLease', () => {
  it('gives a buffer back only when its last reference is released', () => {
    const pool = new BufferPool({ bufferBytes: 1000, maxFree: 4, poison: true });
    const { buf, giveBack } = pool.take(900);
    buf.fill(7);
    const lease = pool.lease(buf, giveBack);
    lease.retain(); // a second holder (a socket write)
    lease.release();
    expect(pool.stats().free).toBe(0);
    expect(buf[0]).toBe(7); // untouched while a holder remains
    lease.release();
    expect(pool.stats().free).toBe(1);
    expect(buf[0]).toBe(0xee); // poisoned: a holder reading now would see it
    expect(() => lease.release()).toThrow(/released more often/);
    expect(() => lease.retain()).toThrow(/after the last release/);
    const again = pool.take(950);
    expect(pool.stats()).toMatchObject({ reused: 1, allocated: 1 });
    expect(again.buf.buffer).toBe(buf.buffer);
  });

  it('does not pool reads too big or too small for its buffers, and keeps at most maxFree', () => {
    const pool = new BufferPool({ bufferBytes: 1000, maxFree: 1 });
    const small = pool.take(100);
    const big = pool.take(2000);
    small.giveBack();
    big.giveBack();
    expect(pool.stats().free).toBe(0);
    const a = pool.take(900);
    const b = pool.take(900);
    a.giveBack();
    b.giveBack();
    expect(pool.stats().free).toBe(1);
  });
});

describe('DiskTier.readLease', () => {
  it('reads the same bytes as read(), reusing one buffer when each lease is released', async () => {
    const dir = tempDir();
    const d = new DiskTier({ dir, capacityBytes: 1 << 24, sliceBytes: S, logger, poisonReleasedBuffers: true });
    await d.open();
    const key = objectKey('t', 'a.mp4');
    const data = Buffer.alloc(2 * S);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
    for (const i of [0, 1]) await d.write(key, i, meta(2 * S), data.subarray(i * S, (i + 1) * S));
    for (let n = 0; n < 6; n++) {
      const lease = (await d.readLease(key, n % 2))!;
      expect(lease.data.equals(data.subarray((n % 2) * S, ((n % 2) + 1) * S))).toBe(true);
      lease.release();
    }
    expect(d.poolStats()).toMatchObject({ allocated: 1, reused: 5 });
    // A lease kept (as the memory tier keeps a disk hit) is never reused under its holder.
    const kept = (await d.readLease(key, 0))!;
    const other = (await d.readLease(key, 1))!;
    expect(other.data.buffer).not.toBe(kept.data.buffer);
    other.release();
    expect(kept.data.equals(data.subarray(0, S))).toBe(true);
    await d.close();
  });

  it('a damaged slice gives its buffer back and is dropped, as read() does', async () => {
    const dir = tempDir();
    const d = new DiskTier({ dir, capacityBytes: 1 << 24, sliceBytes: S, logger });
    await d.open();
    const key = objectKey('t', 'b.mp4');
    await d.write(key, 0, meta(S), Buffer.alloc(S, 3));
    truncateSync(sliceFile(dir, key, 0), 100);
    expect(await d.readLease(key, 0)).toBeUndefined();
    expect(d.has(key, 0)).toBe(false);
    expect(d.poolStats().free).toBe(1);
  });
});

import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { objectKey } from '../../src/common/paths.js';
import { DiskTier, type DiskEvent, type StoredMeta } from '../../src/edge/disk-tier.js';
import { tempDir } from '../helpers/cluster.js';

/**
 * A pin may cover a prefix of an object's slices (a prefix fill): those stay whatever the
 * pressure, the later ones are cache like any other. Replicas of the index (the workers of a
 * node) see the same pins, from events and from a snapshot.
 */
const logger = createLogger('test', 'silent');
const S = 4096;
const meta = (size: number, etag = '"v1"'): StoredMeta => ({ size, contentType: 'video/mp4', etag, storedAt: 1 });
const film = objectKey('t', 'film.mp4');

async function owner(capacityBytes: number, onChange?: (e: DiskEvent) => void): Promise<DiskTier> {
  const d = new DiskTier({ dir: tempDir(), capacityBytes, sliceBytes: S, logger, onChange });
  await d.open();
  return d;
}

/** A replica of an owner's index (its writes are not exercised here). */
async function replicaTier(): Promise<DiskTier> {
  const r = new DiskTier({
    dir: tempDir(),
    capacityBytes: 1 << 20,
    sliceBytes: S,
    logger,
    role: 'replica',
    remote: { commit: async () => 'stored', touchValidated: () => {}, touched: () => {}, damaged: () => {}, dropped: () => {} },
  });
  await r.open();
  return r;
}

describe('prefix pins on the disk tier', () => {
  it('keeps the pinned prefix under pressure and evicts the tail first like any cache', async () => {
    // Room for about 8 slices (each file is a slice plus its header).
    const disk = await owner(8 * (S + 512));
    for (let i = 0; i < 6; i++) await disk.write(film, i, meta(6 * S), Buffer.alloc(S, i));
    disk.pin(film, 2);
    expect(disk.pinnedBelow(film)).toBe(2);
    const pinned = disk.stats().pinnedBytes;
    for (let i = 0; i < 6; i++) await disk.write(objectKey('t', 'other.mp4'), i, meta(6 * S, '"o"'), Buffer.alloc(S, 9));
    expect(disk.sliceIndexes(film).sort()).toEqual([0, 1]);
    expect((await disk.read(film, 1))!.equals(Buffer.alloc(S, 1))).toBe(true);
    // Slices written after the pin, past the prefix, are cache too.
    await disk.write(film, 4, meta(6 * S), Buffer.alloc(S, 4));
    expect(disk.stats().pinnedBytes).toBe(pinned);
    // The pin grows to the whole object, then shrinks back: bytes move between pinned and cache.
    disk.pin(film);
    expect(disk.stats().pinnedBytes).toBeGreaterThan(pinned);
    disk.pin(film, 2);
    expect(disk.stats().pinnedBytes).toBe(pinned);
    disk.unpin(film);
    expect(disk.stats().pinnedBytes).toBe(0);
  });

  it('a replica follows prefix pins from events and from a snapshot', async () => {
    const replicas: DiskTier[] = [];
    const disk = await owner(1 << 20, (e) => replicas.forEach((r) => r.apply(structuredClone(e))));
    const live = await replicaTier();
    live.apply(structuredClone(disk.snapshot()));
    replicas.push(live);
    for (let i = 0; i < 4; i++) await disk.write(film, i, meta(4 * S), Buffer.alloc(S, i));
    disk.pin(film, 3);
    expect(live.pinnedBelow(film)).toBe(3);
    expect(live.stats().pinnedBytes).toBe(disk.stats().pinnedBytes);
    const late = await replicaTier();
    late.apply(structuredClone(disk.snapshot()));
    expect(late.pinnedBelow(film)).toBe(3);
    expect(late.stats().pinnedBytes).toBe(disk.stats().pinnedBytes);
    disk.pin(film);
    expect(live.pinnedBelow(film)).toBe(Infinity);
  });
});

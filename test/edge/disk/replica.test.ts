import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/common/logger.js';
import { objectKey } from '../../../src/common/paths.js';
import { DiskTier, type DiskEvent, type DiskRemote, type PreparedSlice, type StoredMeta, type WriteOutcome } from '../../../src/edge/disk-tier.js';
import { tempDir } from '../../helpers/cluster.js';
import { sliceFile } from '../../helpers/slice-files.js';
import { fdsOn } from './open-fds.js';

/**
 * One disk tier directory shared by processes (issue 9, item 4): an owner and two replicas in
 * one process, wired by direct calls — every message passed through structuredClone, as IPC
 * would — so what they say to each other is plain data.
 */
const logger = createLogger('test', 'silent');
const S = 4096;
const meta = (size = S, etag = '"v1"'): StoredMeta => ({ size, contentType: 'video/mp4', etag, storedAt: 1 });
const bytes = (seed: number, n = S) => Buffer.alloc(n, seed);
const key = (i: number | string) => objectKey('t', `o${i}.m4s`);
const clone = structuredClone;

interface World {
  dir: string;
  owner: DiskTier;
  replicas: DiskTier[];
  events: DiskEvent[];
  /** Holds every commit until released (for races), when set. */
  gate?: Promise<void>;
  commitsSeen: number;
}

async function world(opts: { capacityBytes?: number; replicas?: number; touchBatch?: number; forwardDrops?: boolean } = {}): Promise<World> {
  const dir = tempDir();
  const w: World = { dir, owner: undefined!, replicas: [], events: [], commitsSeen: 0 };
  w.owner = new DiskTier({
    dir,
    capacityBytes: opts.capacityBytes ?? 1 << 20,
    sliceBytes: S,
    logger,
    onChange: (e) => {
      w.events.push(e);
      expect(w.owner.stats().usedBytes).toBeLessThanOrEqual(w.owner.capacityBytes);
      for (const r of w.replicas) r.apply(clone(e));
    },
  });
  await w.owner.open();
  const remote: DiskRemote = {
    async commit(p: PreparedSlice): Promise<WriteOutcome> {
      w.commitsSeen++;
      if (w.gate) await w.gate;
      return clone(await w.owner.commit(clone(p)));
    },
    touchValidated: (k, at, cc) => w.owner.touchValidated(...clone([k, at, cc] as const)),
    touched: (paths) => w.owner.touched(clone(paths)),
    damaged: (k, i, path) => w.owner.damaged(...clone([k, i, path] as const)),
    dropped: (k, rep) => {
      if (opts.forwardDrops ?? true) w.owner.dropIfCurrent(...clone([k, rep] as const));
    },
  };
  for (let i = 0; i < (opts.replicas ?? 2); i++) {
    const r = new DiskTier({ dir, capacityBytes: w.owner.capacityBytes, sliceBytes: S, logger, role: 'replica', remote, touchBatch: opts.touchBatch });
    await r.open();
    r.apply(clone(w.owner.snapshot()));
    w.replicas.push(r);
  }
  return w;
}

/** The owner unlinks dropped files in the background: wait for it. */
async function gone(path: string): Promise<boolean> {
  for (let i = 0; i < 1000 && existsSync(path); i++) await new Promise((r) => setImmediate(r));
  return !existsSync(path);
}

function tempFiles(dir: string): string[] {
  const root = join(dir, 'cache');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((sub) => readdirSync(join(root, sub)).filter((n) => n.startsWith('.tmp-')));
}

/** What an index holds, comparably: key → representation and slice paths. */
function view(d: DiskTier): string[] {
  return [...d.keys()].sort().map((k) => `${k} ${d.meta(k)!.etag} ${d.sliceIndexes(k).sort().join(',')}`);
}

describe('disk tier shared by an owner and replicas', () => {
  it('a replica sees a slice the owner stored, and one a replica built from a snapshot later too', async () => {
    const w = await world();
    expect(await w.owner.write(key(1), 0, meta(), bytes(1))).toBe('stored');
    const [a] = w.replicas;
    expect(a!.has(key(1), 0, meta())).toBe(true);
    expect((await a!.read(key(1), 0, meta()))!.equals(bytes(1))).toBe(true);

    const late = new DiskTier({ dir: w.dir, capacityBytes: 1 << 20, sliceBytes: S, logger, role: 'replica', remote: {} as DiskRemote });
    late.apply(clone(w.owner.snapshot()));
    expect(view(late)).toEqual(view(w.owner));
    expect((await late.read(key(1), 0))!.equals(bytes(1))).toBe(true);
  });

  it('a slice a replica wrote is committed by the owner and visible in the other replica before the writer hears "stored"', async () => {
    const w = await world();
    const [a, b] = w.replicas as [DiskTier, DiskTier];
    const outcome = await a.write(key(2), 0, meta(2 * S), bytes(2));
    expect(outcome).toBe('stored');
    expect(b.has(key(2), 0)).toBe(true);
    expect(w.owner.has(key(2), 0)).toBe(true);
    expect((await b.read(key(2), 0))!.equals(bytes(2))).toBe(true);
    expect(tempFiles(w.dir)).toEqual([]);
    expect(w.owner.stats().usedBytes).toBe(await w.owner.measureOnDisk());
    // The same slice again, from the other replica: already there.
    expect(await b.write(key(2), 0, meta(2 * S), bytes(2))).toBe('stored');
    expect(tempFiles(w.dir)).toEqual([]);
    expect(view(a)).toEqual(view(w.owner));
    expect(view(b)).toEqual(view(w.owner));
  });

  it('eviction by the owner reaches the replicas: the slice is gone there and their descriptor of it is closed', async () => {
    const w = await world({ capacityBytes: 3 * (S + 300) });
    const [a] = w.replicas as [DiskTier];
    await w.owner.write(key(0), 0, meta(), bytes(0));
    const path = sliceFile(w.dir, key(0), 0);
    expect((await a.read(key(0), 0))!.equals(bytes(0))).toBe(true);
    expect(a.fdCached(path)).toBe(true);
    expect(fdsOn(path)).toBe(1);
    for (let i = 1; i <= 3; i++) expect(await a.write(key(i), 0, meta(), bytes(i))).toBe('stored');
    expect(w.owner.has(key(0), 0)).toBe(false); // the least recently used went
    expect(w.events).toContainEqual({ type: 'slice-dropped', key: key(0), index: 0 });
    expect(a.has(key(0), 0)).toBe(false);
    expect(a.fdCached(path)).toBe(false);
    expect(fdsOn(path)).toBe(0);
    expect(await gone(path)).toBe(true);
    expect(await a.read(key(0), 0)).toBeUndefined();
  });

  it('a purge that lands between a replica’s write and its commit makes the commit "superseded" and removes the temp file', async () => {
    const w = await world();
    const [a, b] = w.replicas as [DiskTier, DiskTier];
    await w.owner.write(key(3), 0, meta(2 * S), bytes(3));
    let release!: () => void;
    w.gate = new Promise((r) => (release = r));
    const writing = a.write(key(3), 1, meta(2 * S), bytes(4));
    while (w.commitsSeen === 0) await new Promise((r) => setImmediate(r)); // the commit is on its way
    expect(tempFiles(w.dir).length).toBe(1);
    w.owner.purge(key(3));
    release();
    expect(await writing).toBe('superseded');
    expect(tempFiles(w.dir)).toEqual([]);
    expect(w.owner.has(key(3), 1) || a.has(key(3), 1) || b.has(key(3), 1)).toBe(false);
    expect(w.owner.stats().usedBytes).toBe(0);
    expect(await w.owner.measureOnDisk()).toBe(0);
  });

  it('a purge the replica already heard of while it wrote is refused before the commit', async () => {
    const w = await world();
    const [a] = w.replicas as [DiskTier];
    const writing = a.write(key(5), 0, meta(), bytes(5));
    w.owner.purge(key(5)); // its generation event reaches the replica while the temp file is written
    expect(await writing).toBe('superseded');
    expect(w.commitsSeen).toBe(0);
    expect(tempFiles(w.dir)).toEqual([]);
  });

  it('another representation stored while a replica wrote wins; the one the replica saw is replaced', async () => {
    const w = await world();
    const [a, b] = w.replicas as [DiskTier, DiskTier];
    await w.owner.write(key(6), 0, meta(2 * S, '"v1"'), bytes(1));
    // a replaces v1 with v2: allowed, it saw v1.
    expect(await a.write(key(6), 0, meta(2 * S, '"v2"'), bytes(2))).toBe('stored');
    expect(b.meta(key(6))?.etag).toBe('"v2"');
    // b writes v3 while a's v4 lands first: b's bytes are older news.
    let release!: () => void;
    w.gate = new Promise((r) => (release = r));
    const v3 = b.write(key(6), 1, meta(2 * S, '"v3"'), bytes(3));
    while (w.commitsSeen < 2) await new Promise((r) => setImmediate(r));
    w.gate = undefined;
    expect(await a.write(key(6), 0, meta(2 * S, '"v4"'), bytes(4))).toBe('stored');
    release();
    expect(await v3).toBe('superseded');
    expect(view(w.owner)).toEqual([`${key(6)} "v4" 0`]);
    expect(view(a)).toEqual(view(w.owner));
    expect(view(b)).toEqual(view(w.owner));
    expect(tempFiles(w.dir)).toEqual([]);
  });

  it('the owner’s write of a new representation wins over an old one a replica committed while it wrote', async () => {
    const w = await world();
    const [a] = w.replicas as [DiskTier];
    await w.owner.write(key(10), 0, meta(2 * S, '"v1"'), bytes(1));
    // The owner's temp file is slow to write (a gate around its prepare step).
    const owner = w.owner as unknown as { prepare: (...args: unknown[]) => Promise<unknown> };
    const prepare = owner.prepare.bind(w.owner);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    owner.prepare = async (...args) => {
      const p = await prepare(...args);
      await gate;
      return p;
    };
    const v2 = w.owner.write(key(10), 1, meta(2 * S, '"v2"'), bytes(2)); // drops v1 at once
    expect(a.has(key(10), 0)).toBe(false);
    // A replica that fetched v1 before it heard of v2 stores it meanwhile.
    expect(await a.write(key(10), 0, meta(2 * S, '"v1"'), bytes(1))).toBe('stored');
    release();
    expect(await v2).toBe('stored');
    expect(view(w.owner)).toEqual([`${key(10)} "v2" 1`]);
    expect(view(a)).toEqual(view(w.owner));
  });

  it('never exceeds the capacity across two replicas committing at once, and every index ends equal', async () => {
    const cap = 10 * (S + 300);
    const w = await world({ capacityBytes: cap });
    const [a, b] = w.replicas as [DiskTier, DiskTier];
    const writes = Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).write(key(i), 0, meta(), bytes(i)));
    expect(new Set(await Promise.all(writes))).toEqual(new Set(['stored']));
    expect(w.owner.stats().usedBytes).toBeLessThanOrEqual(cap);
    expect(await w.owner.measureOnDisk()).toBeLessThanOrEqual(cap);
    expect(w.owner.stats().usedBytes).toBe(await w.owner.measureOnDisk());
    expect(w.owner.stats().slices).toBeGreaterThan(5);
    expect(view(a)).toEqual(view(w.owner));
    expect(view(b)).toEqual(view(w.owner));
    for (const k of w.owner.keys()) expect((await b.read(k, 0))!.equals(bytes(Number(/o(\d+)/.exec(k)![1])))).toBe(true);
  });

  it('a damaged slice a replica finds is dropped everywhere', async () => {
    const w = await world();
    const [a, b] = w.replicas as [DiskTier, DiskTier];
    await w.owner.write(key(7), 0, meta(), bytes(7));
    const path = sliceFile(w.dir, key(7), 0);
    const f = readFileSync(path);
    f[f.length - 1]! ^= 0xff;
    writeFileSync(path, f);
    expect(await a.read(key(7), 0)).toBeUndefined(); // a's first read checks the CRC
    expect(w.owner.has(key(7), 0)).toBe(false);
    expect(b.has(key(7), 0)).toBe(false);
    expect(await gone(path)).toBe(true);
  });

  it('reads on a replica keep a slice warm in the owner’s eviction order', async () => {
    const w = await world({ capacityBytes: 3 * (S + 300), touchBatch: 1 });
    const [a] = w.replicas as [DiskTier];
    for (let i = 0; i < 3; i++) await w.owner.write(key(i), 0, meta(), bytes(i));
    await a.read(key(0), 0); // reported at once (batch of 1)
    await w.owner.write(key(3), 0, meta(), bytes(3));
    expect(w.owner.has(key(0), 0)).toBe(true);
    expect(w.owner.has(key(1), 0)).toBe(false);
    expect(a.has(key(1), 0)).toBe(false);
  });

  it('a revalidation on a replica reaches the owner and the other replicas', async () => {
    const w = await world();
    const [a, b] = w.replicas as [DiskTier, DiskTier];
    await w.owner.write(key(8), 0, meta(), bytes(8));
    a.touchValidated(key(8), 12345, 'max-age=7');
    for (const d of [w.owner, a, b]) expect(d.meta(key(8))).toMatchObject({ storedAt: 12345, cacheControl: 'max-age=7' });
  });

  it('a replica never unlinks, renames or evicts: its purge drops only its own view', async () => {
    const w = await world({ forwardDrops: false });
    const [a, b] = w.replicas as [DiskTier, DiskTier];
    await w.owner.write(key(9), 0, meta(), bytes(9));
    const path = sliceFile(w.dir, key(9), 0);
    expect(a.purge(key(9))).toBeGreaterThan(0);
    expect(a.has(key(9), 0)).toBe(false);
    expect(existsSync(path)).toBe(true);
    expect(w.owner.has(key(9), 0) && b.has(key(9), 0)).toBe(true);
    expect(() => a.pin(key(9))).toThrow(/owner/);
    await expect(a.writeStaged(key(9), 0, meta(), bytes(9))).rejects.toThrow(/owner/);
  });

  it('an object a replica finds changed upstream is dropped by the owner too, and the new version is stored, even if an old commit brought the old one back', async () => {
    const w = await world();
    const [a, b] = w.replicas as [DiskTier, DiskTier];
    const v1 = meta(2 * S);
    const v2 = meta(2 * S, '"v2"');
    await w.owner.write(key(11), 0, v1, bytes(11));
    const oldPath = sliceFile(w.dir, key(11), 0);
    // Worker a sees v2 upstream: it drops v1, and so does the owner (and b, by its event).
    a.purge(key(11));
    expect(w.owner.has(key(11), 0)).toBe(false);
    expect(b.has(key(11), 0)).toBe(false);
    expect(await gone(oldPath)).toBe(true);
    // Worker b, still on v1, commits a slice of it meanwhile: v1 is back on the owner...
    expect(await b.write(key(11), 1, v1, bytes(12))).toBe('stored');
    expect(w.owner.meta(key(11))!.etag).toBe(v1.etag);
    // ...and a's v2 replaces it: a names the version it dropped.
    expect(await a.write(key(11), 0, v2, bytes(13))).toBe('stored');
    expect(w.owner.meta(key(11))!.etag).toBe('"v2"');
    expect(b.meta(key(11))!.etag).toBe('"v2"');
    expect(view(a)).toEqual(view(w.owner));
  });

  it('a drop for a representation the owner no longer holds leaves the newer one alone', async () => {
    const w = await world({ forwardDrops: false });
    const [a] = w.replicas as [DiskTier];
    await w.owner.write(key(12), 0, meta(), bytes(12));
    await w.owner.write(key(12), 0, meta(S, '"v2"'), bytes(13));
    expect(w.owner.dropIfCurrent(key(12), meta())).toBe(0);
    expect(w.owner.meta(key(12))!.etag).toBe('"v2"');
    expect(a.has(key(12), 0)).toBe(true);
  });
});

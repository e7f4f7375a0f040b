import { createHash } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '../common/logger.js';
import { DiskIndex, type IndexedSlice } from './disk/disk-index.js';
import { BufferPool, type SliceLease } from './disk/buffer-pool.js';
import { FdCache, type FdCacheStats } from './disk/fd-cache.js';
import { CrcPolicy } from './disk/integrity.js';
import type { DiskEvent, DiskRemote, DiskSnapshot, PreparedSlice } from './disk/replication.js';
import { MAX_HEADER, TMP_PREFIX, encodeSlice, readSliceHeader, tempDirFor, writeTempFile } from './disk/slice-file.js';
import { SliceDamaged, readSlice } from './disk/slice-reader.js';
import { type Representation, type SliceLocation, type StoredMeta, type WriteOutcome, representationOfMeta, sameRepresentation } from './disk/types.js';
import { sliceBounds } from './slice-math.js';

export type { Representation, StoredMeta, WriteOutcome } from './disk/types.js';
export type { DiskEvent, DiskRemote, DiskSnapshot, PreparedSlice } from './disk/replication.js';
export type { SliceLease } from './disk/buffer-pool.js';
export { releaseAll, releaseWhenClosed } from './disk/buffer-pool.js';
export { sameRepresentation } from './disk/types.js';

export interface DiskTierOptions {
  dir: string;
  capacityBytes: number;
  sliceBytes: number;
  logger: Logger;
  onEvict?: (bytes: number) => void;
  /**
   * `owner` (default): the one authoritative tier of a directory — index rebuilt from the
   * files, capacity, eviction, staging, purge, pins. `replica`: another process's view of the
   * same directory, built from the owner's snapshot and kept by its events (`apply`); it reads
   * slice files and writes temp files, and asks the owner (`remote`) for everything else.
   */
  role?: 'owner' | 'replica';
  /** Replica only: the owner, over IPC. */
  remote?: DiskRemote;
  /** Owner only: every index change, synchronously and in order (replicas apply them). */
  onChange?: (e: DiskEvent) => void;
  /** Replica only: called after each event or snapshot is applied (a worker adopts objects it did not know). */
  onApplied?: (e: DiskEvent | DiskSnapshot) => void;
  /** Open slice files kept (least recently used closed first). Default 1024. */
  fdCacheSize?: number;
  /** A slice whose CRC passed once is checked again on about 1 read in this many (1: always, 0: never). Default 64. */
  crcSampleEvery?: number;
  /** Replica only: reads are reported to the owner after this many (default 64)... */
  touchBatch?: number;
  /** ...or this long since the last report, whichever first (default 1000 ms). */
  touchIntervalMs?: number;
  /** Monotonic ms (for the touch interval); default performance.now. */
  monotonicNow?: () => number;
  /** Uniform [0, 1) for the CRC sampling; default Math.random. */
  random?: () => number;
  /** Free read buffers `readLease` keeps for reuse (each sliceBytes + 4 KiB). Default 16. */
  bufferPoolSize?: number;
  /** Tests: poison buffers given back to the pool (a holder reading after release sees 0xEE). */
  poisonReleasedBuffers?: boolean;
}

export interface DiskStats {
  usedBytes: number;
  capacityBytes: number;
  objects: number;
  slices: number;
  pinnedBytes: number;
  stagedBytes: number;
}

interface StagedSlice extends SliceLocation {
  verified: boolean;
}

/**
 * The disk tier: one file per slice (header + bytes) under `dir/cache/hh/`, visible only once
 * whole (temp file, rename), bounded by `capacityBytes` with least-recently-used eviction of
 * unpinned slices. The index lives in memory (`DiskIndex`) and is rebuilt from the files at
 * start; anything a crash left behind (temp files, short or foreign files) is removed then, and
 * every slice found is unverified until a read checks its CRC. See docs/architecture.md, "Disk
 * tier: integrity and durability".
 *
 * Several processes may share one directory: one owner and any number of replicas (`role`).
 */
export class DiskTier {
  private readonly root: string;
  private readonly stagingRoot: string;
  private readonly role: 'owner' | 'replica';
  private readonly index: DiskIndex;
  private readonly fds: FdCache;
  private readonly crc: CrcPolicy;
  private readonly pool: BufferPool;
  /** Slices written by fill, invisible to clients until their whole file is verified and published. */
  private readonly staged = new Map<string, { meta: StoredMeta; slices: Map<number, StagedSlice> }>();
  private stagedBytes = 0;
  /** Bytes of owner writes in flight, reserved so concurrent writers cannot overshoot the capacity. */
  private reservedBytes = 0;
  /** Replica: purges seen here (a local drop), so a write started before one is not committed. */
  private readonly localPurges = new Map<string, number>();
  /**
   * Replica: the representation a local purge dropped, by key. The owner may still hold it when
   * our next write of the key commits (another worker's commit brought it back): that write
   * names it as the one it replaces, so the new version wins. Bounded; cleared by a put.
   */
  private readonly purgedReps = new Map<string, Representation>();
  /** Replica: slice files read since the last report to the owner. */
  private readonly touchedPaths = new Set<string>();
  private lastTouchReport = 0;
  private readonly now: () => number;

  constructor(private readonly opts: DiskTierOptions) {
    this.root = join(opts.dir, 'cache');
    this.stagingRoot = join(opts.dir, 'staging');
    this.role = opts.role ?? 'owner';
    if (this.role === 'replica' && !opts.remote) throw new Error('a DiskTier replica needs a remote (its owner)');
    this.fds = new FdCache(opts.fdCacheSize ?? 1024);
    this.crc = new CrcPolicy(opts.crcSampleEvery ?? 64, opts.random);
    // Room for a whole slice file of any usual header (a bigger one reads into its own buffer).
    this.pool = new BufferPool({ bufferBytes: opts.sliceBytes + Math.min(4096, MAX_HEADER) + 1, maxFree: opts.bufferPoolSize ?? 16, poison: opts.poisonReleasedBuffers });
    this.now = opts.monotonicNow ?? (() => performance.now());
    this.lastTouchReport = this.now();
    this.index = new DiskIndex({
      changed: this.role === 'owner' ? opts.onChange : undefined,
      removed: (slice, replacedBy) => this.removed(slice, replacedBy),
      added: (slice) => this.fds.invalidate(slice.path),
    });
  }

  get capacityBytes(): number {
    return this.opts.capacityBytes;
  }

  stats(): DiskStats {
    return {
      usedBytes: this.used(),
      capacityBytes: this.opts.capacityBytes,
      objects: this.index.objects.size,
      slices: this.index.slices,
      pinnedBytes: this.index.pinnedBytes,
      stagedBytes: this.stagedBytes,
    };
  }

  /** The descriptor cache's counters (for tests and metrics). */
  fdStats(): FdCacheStats {
    return this.fds.stats();
  }

  /** Whether a descriptor of `path` is cached (for tests). */
  fdCached(path: string): boolean {
    return this.fds.has(path);
  }

  /** Bytes counted against the capacity: indexed slices, staged slices, writes in flight. */
  private used(): number {
    return this.index.usedBytes + this.stagedBytes + this.reservedBytes;
  }

  /**
   * Owner: rebuilds the index from disk, removing what is partial, foreign or over capacity.
   * Replica: nothing to scan (its index comes from the owner's snapshot).
   */
  async open(): Promise<{ slices: number; removed: number; ms: number }> {
    const started = performance.now();
    if (this.role === 'replica') return { slices: this.index.slices, removed: 0, ms: 0 };
    await mkdir(this.root, { recursive: true });
    let removed = 0;
    const found: { key: string; index: number; meta: StoredMeta; slice: SliceLocation; mtimeMs: number }[] = [];
    for (const sub of await readdir(this.root)) {
      const subDir = join(this.root, sub);
      let names: string[];
      try {
        names = await readdir(subDir);
      } catch {
        await rm(subDir, { force: true, recursive: true });
        continue;
      }
      await mapLimit(names, 32, async (name) => {
        const path = join(subDir, name);
        const parsed = name.startsWith(TMP_PREFIX) ? undefined : await this.readHeader(path, 'cache');
        if (!parsed) {
          removed++;
          await unlink(path).catch(() => {});
          return;
        }
        found.push(parsed);
      });
    }
    // Oldest first, so that insertion order is recency order.
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const f of found) {
      const obj = this.index.object(f.key);
      // Two representations of one object: the later one wins (its put drops the other).
      const meta = obj && sameRepresentation(obj.meta, f.meta) && obj.meta.storedAt > f.meta.storedAt ? obj.meta : f.meta;
      this.index.put(f.key, f.index, meta, f.slice);
    }
    await mkdir(this.stagingRoot, { recursive: true });
    const stagedNames = await readdir(this.stagingRoot);
    await mapLimit(stagedNames, 32, async (name) => {
      const path = join(this.stagingRoot, name);
      const parsed = name.startsWith(TMP_PREFIX) ? undefined : await this.readHeader(path, 'staging');
      const entry = parsed && this.staged.get(parsed.key);
      if (!parsed || (entry && !sameRepresentation(entry.meta, parsed.meta))) {
        removed++;
        await unlink(path).catch(() => {});
        return;
      }
      const e = entry ?? { meta: parsed.meta, slices: new Map<number, StagedSlice>() };
      this.staged.set(parsed.key, e);
      e.slices.set(parsed.index, { ...parsed.slice, verified: false });
      this.stagedBytes += parsed.slice.fileBytes;
    });
    removed += this.evictUntil(0);
    const ms = performance.now() - started;
    this.opts.logger.info({ slices: found.length, removed, ms: Math.round(ms) }, 'disk tier index rebuilt');
    return { slices: found.length, removed, ms };
  }

  /** A slice file's header, if the file is a whole slice of this tier's slice size at the path its header names. */
  private async readHeader(path: string, area: 'cache' | 'staging'): Promise<{ key: string; index: number; meta: StoredMeta; slice: SliceLocation; mtimeMs: number } | undefined> {
    const parsed = await readSliceHeader(path);
    if (!parsed) return undefined;
    const { header } = parsed;
    if (header.sliceBytes !== this.opts.sliceBytes) return undefined;
    const bounds = sliceBounds(header.index, this.opts.sliceBytes, header.meta.size);
    // A slice is whole or it is nothing: the length must be exactly the slice's.
    if (header.length !== bounds.end - bounds.start) return undefined;
    // Files written before slice paths named the representation are still ours.
    if (this.pathFor(header.key, header.index, header.meta, area) !== path && this.legacyPathFor(header.key, header.index, area) !== path) return undefined;
    return { key: header.key, index: header.index, meta: header.meta, slice: parsed.slice, mtimeMs: parsed.mtimeMs };
  }

  /**
   * Each representation has its own file names, so a file renamed into place for one version
   * can never be opened by a reader of another, whatever the order of unlinks and renames.
   */
  private pathFor(key: string, index: number, rep: Representation, area: 'cache' | 'staging' = 'cache'): string {
    const h = createHash('sha256')
      .update(JSON.stringify([key, rep.size, rep.etag ?? null, rep.lastModified ?? null]))
      .digest('hex')
      .slice(0, 40);
    return area === 'cache' ? join(this.root, h.slice(0, 2), `${h}.${index}`) : join(this.stagingRoot, `${h}.${index}`);
  }

  /** Where slice files lived before their names named the representation. */
  private legacyPathFor(key: string, index: number, area: 'cache' | 'staging'): string {
    const h = createHash('sha256').update(key).digest('hex').slice(0, 40);
    return area === 'cache' ? join(this.root, h.slice(0, 2), `${h}.${index}`) : join(this.stagingRoot, `${h}.${index}`);
  }

  /** A slice left the index: its cached descriptor goes, and (owner) its file unless a new one took the same path. */
  private removed(slice: IndexedSlice, replacedBy?: IndexedSlice): void {
    this.fds.invalidate(slice.path);
    if (this.role === 'owner' && replacedBy?.path !== slice.path) {
      // Readers that already opened the file keep reading it; the name goes now.
      unlink(slice.path).catch(() => {});
    }
  }

  meta(key: string): StoredMeta | undefined {
    return this.index.object(key)?.meta;
  }

  /** Whether slice `index` of `key` is on disk — of representation `rep` when given. */
  has(key: string, index: number, rep?: Representation): boolean {
    const obj = this.index.object(key);
    if (!obj || (rep && !sameRepresentation(obj.meta, rep))) return false;
    return obj.slices.has(index);
  }

  /** Keys of every object with at least one slice on disk. */
  keys(): IterableIterator<string> {
    return this.index.objects.keys();
  }

  /** Which slices of `key` are on disk. */
  sliceIndexes(key: string): number[] {
    return [...(this.index.object(key)?.slices.keys() ?? [])];
  }

  /** Marks the representation validated at `at` (a 304 from upstream). */
  touchValidated(key: string, at: number, cacheControl?: string): void {
    const obj = this.index.object(key);
    if (obj) this.index.setMeta(key, { ...obj.meta, storedAt: at, ...(cacheControl ? { cacheControl } : {}) });
    if (this.role === 'replica') this.opts.remote!.touchValidated(key, at, cacheControl);
  }

  /**
   * A slice's bytes, or undefined if it is not (or no longer) on disk — or, given `rep`, if
   * what is on disk is another representation. The file is named by its representation, its
   * length and header prefix are checked on every read and its CRC on the first read here and
   * then on a sample, so the bytes returned belong to the representation checked here even if
   * the object is replaced meanwhile. The Buffer is the caller's to keep.
   */
  async read(key: string, index: number, rep?: Representation): Promise<Buffer | undefined> {
    const slice = this.sliceToRead(key, index, rep);
    if (!slice) return undefined;
    const check = this.crc.mustCheck(slice.verified);
    try {
      const data = await readSlice(this.fds, slice, check);
      if (check) slice.verified = true;
      return data;
    } catch (err) {
      this.readFailed(key, index, slice, err as NodeJS.ErrnoException);
      return undefined;
    }
  }

  /**
   * `read`, into a buffer lent by the tier's pool: the lease holds one reference, and the
   * buffer is reused once every reference is released. Whoever may still touch the bytes must
   * hold a reference (a socket write until its callback); a holder that keeps them for good
   * (the memory tier) must `retain()` before keeping them and never release that reference:
   * that buffer is then never reused, and is left to the collector.
   */
  async readLease(key: string, index: number, rep?: Representation): Promise<SliceLease | undefined> {
    const slice = this.sliceToRead(key, index, rep);
    if (!slice) return undefined;
    const check = this.crc.mustCheck(slice.verified);
    let giveBack: (() => void) | undefined;
    const alloc = (size: number): Buffer => {
      const t = this.pool.take(size);
      giveBack = t.giveBack;
      return t.buf;
    };
    try {
      const data = await readSlice(this.fds, slice, check, alloc);
      if (check) slice.verified = true;
      return this.pool.lease(data, giveBack!);
    } catch (err) {
      giveBack?.();
      this.readFailed(key, index, slice, err as NodeJS.ErrnoException);
      return undefined;
    }
  }

  /** Pool counters (for tests and benchmarks). */
  poolStats(): { free: number; reused: number; allocated: number } {
    return this.pool.stats();
  }

  private sliceToRead(key: string, index: number, rep?: Representation): IndexedSlice | undefined {
    const obj = this.index.object(key);
    const slice = obj?.slices.get(index);
    if (!obj || !slice) return undefined;
    if (rep && !sameRepresentation(obj.meta, rep)) return undefined;
    if (this.role === 'owner') {
      if (index >= obj.pinBelow) this.index.touch(slice.path);
    } else {
      this.noteTouched(slice.path);
    }
    return slice;
  }

  private readFailed(key: string, index: number, slice: IndexedSlice, e: NodeJS.ErrnoException): void {
    // Gone or damaged underneath us: forget it, the caller refetches.
    this.opts.logger.warn({ err: e.message, path: slice.path }, 'disk slice unreadable, dropped');
    this.dropDamaged(key, index, slice.path, e instanceof SliceDamaged || e.code === 'ENOENT');
  }

  /**
   * A read failed. The owner drops the slice whatever the error, as it always did (the caller
   * refetches). A replica drops and reports only what is certainly the file's fault (damaged,
   * or gone: the owner may have evicted it already, and ignores a report about a file it no
   * longer names); an error of its own (descriptors exhausted, EIO) is just a miss here.
   */
  private dropDamaged(key: string, index: number, path: string, certain: boolean): void {
    if (this.index.slice(key, index)?.path !== path) return; // a newer copy replaced it meanwhile
    if (this.role === 'owner') {
      this.index.dropSlice(key, index);
    } else if (certain) {
      this.index.dropSlice(key, index);
      this.opts.remote!.damaged(key, index, path);
    }
  }

  // ---- writes: prepare (a temp file) and commit (rename into place, index, events) ----

  /**
   * Stores a whole slice of representation `meta`, replacing any other representation of the
   * object. Throws on I/O errors (a full disk), having cleaned up after itself.
   */
  async write(key: string, index: number, meta: StoredMeta, data: Buffer): Promise<WriteOutcome> {
    if (this.role === 'replica') return this.writeAsReplica(key, index, meta, data);
    const existing = this.index.object(key);
    // Another representation goes now; should a replica's commit bring it back while we write, ours still replaces it.
    const replaces = existing && !sameRepresentation(existing.meta, meta) ? representationOfMeta(existing.meta) : undefined;
    if (replaces) this.index.dropObject(key);
    if (this.index.slice(key, index)) return 'stored';
    const encoded = encodeSlice(key, index, meta, data, this.opts.sliceBytes);
    const fileBytes = encoded.fileBytes;
    if (fileBytes > this.opts.capacityBytes) return 'no-room';
    this.evictUntil(fileBytes);
    if (this.used() + fileBytes > this.opts.capacityBytes) return 'no-room';
    const generation = this.index.generation(key);
    this.reservedBytes += fileBytes;
    let prepared: PreparedSlice;
    try {
      prepared = await this.prepare(key, index, meta, encoded, generation, replaces);
    } catch (err) {
      this.reservedBytes -= fileBytes;
      throw err;
    }
    return this.commitPrepared(prepared, fileBytes);
  }

  /**
   * Owner: commits a slice a replica prepared — what `write` does once its temp file is
   * written. The `put` event is emitted before this resolves. On refusal the temp file is removed.
   */
  async commit(prepared: PreparedSlice): Promise<WriteOutcome> {
    if (this.role !== 'owner') throw new Error('only the owner commits slices');
    return this.commitPrepared(prepared, 0);
  }

  private async prepare(
    key: string,
    index: number,
    meta: StoredMeta,
    encoded: ReturnType<typeof encodeSlice>,
    generation: number,
    replaces?: Representation,
  ): Promise<PreparedSlice> {
    const path = this.pathFor(key, index, meta);
    const tmpPath = await writeTempFile(tempDirFor(path), encoded.parts);
    return {
      key,
      index,
      meta,
      tmpPath,
      slice: { path, dataOffset: encoded.dataOffset, length: encoded.fileBytes - encoded.dataOffset, crc32: encoded.crc32, fileBytes: encoded.fileBytes },
      generation,
      ...(replaces ? { replaces } : {}),
    };
  }

  /**
   * The decision and the rename happen in one turn of the event loop (a synchronous rename):
   * no purge, publish or other commit can come between the checks and the slice joining the
   * index, so what is checked is what is stored.
   */
  private commitPrepared(p: PreparedSlice, reserved: number): WriteOutcome {
    const { key, index, meta, slice } = p;
    this.reservedBytes -= reserved;
    const refuse = (outcome: WriteOutcome): WriteOutcome => {
      // Synchronously, so that a refused temp file is gone when the writer hears the answer.
      try {
        unlinkSync(p.tmpPath);
      } catch {
        // already gone
      }
      return outcome;
    };
    // Purged, or published by fill, since the write started: these bytes must not join it.
    if (this.index.generation(key) !== p.generation) return refuse('superseded');
    const now = this.index.object(key);
    if (now && !sameRepresentation(now.meta, meta)) {
      // Another representation: replace it only if it is the one the writer saw and meant to
      // replace; one that arrived while we wrote is newer than our bytes.
      if (p.replaces && sameRepresentation(now.meta, p.replaces)) this.index.dropObject(key);
      else return refuse('superseded');
    }
    const have = this.index.slice(key, index);
    if (have) {
      // Another writer of the same slice got there first. Said again, so a replica that
      // dropped its view of it (a local purge) learns where it is.
      this.index.put(key, index, this.index.object(key)!.meta, have);
      return refuse('stored');
    }
    if (reserved === 0) {
      if (slice.fileBytes > this.opts.capacityBytes) return refuse('no-room');
      this.evictUntil(slice.fileBytes);
      if (this.used() + slice.fileBytes > this.opts.capacityBytes) return refuse('no-room');
    }
    try {
      // No fsync of the file nor of the folder: a crash loses at most a rename (a refetch),
      // never a check — no test shows a directory fsync is needed for what we promise.
      renameSync(p.tmpPath, slice.path);
    } catch (err) {
      unlink(p.tmpPath).catch(() => {});
      throw err;
    }
    const obj = this.index.object(key);
    this.index.put(key, index, obj && sameRepresentation(obj.meta, meta) ? obj.meta : meta, slice);
    return 'stored';
  }

  private async writeAsReplica(key: string, index: number, meta: StoredMeta, data: Buffer): Promise<WriteOutcome> {
    const existing = this.index.object(key);
    const other = existing && !sameRepresentation(existing.meta, meta);
    if (!other && existing?.slices.has(index)) return 'stored';
    const encoded = encodeSlice(key, index, meta, data, this.opts.sliceBytes);
    if (encoded.fileBytes > this.opts.capacityBytes) return 'no-room';
    const generation = this.index.generation(key);
    const purges = this.localPurges.get(key) ?? 0;
    const purged = this.purgedReps.get(key);
    const replaces = other ? representationOfMeta(existing.meta) : purged && !sameRepresentation(purged, meta) ? purged : undefined;
    const prepared = await this.prepare(key, index, meta, encoded, generation, replaces);
    if (this.index.generation(key) !== generation || (this.localPurges.get(key) ?? 0) !== purges) {
      // We already know it was purged while we wrote.
      await unlink(prepared.tmpPath).catch(() => {});
      return 'superseded';
    }
    try {
      return await this.opts.remote!.commit(prepared);
    } catch (err) {
      unlink(prepared.tmpPath).catch(() => {});
      throw err;
    }
  }

  // ---- replication ----

  /** Owner: the whole index, for a new replica. */
  snapshot(): DiskSnapshot {
    return this.index.snapshot();
  }

  /** Replica: applies one of the owner's changes, or a snapshot (which replaces everything). */
  apply(e: DiskEvent | DiskSnapshot): void {
    if (this.role !== 'replica') throw new Error('only a replica applies the owner’s changes');
    this.index.apply(e);
    if (e.type === 'put') this.purgedReps.delete(e.key);
    this.opts.onApplied?.(e);
  }

  /**
   * Owner: a replica found `key` no longer current upstream and dropped it: drop it here too if
   * it is still that representation (a newer one another replica stored stays).
   */
  dropIfCurrent(key: string, rep: Representation): number {
    if (this.role !== 'owner') throw new Error('only the owner drops for replicas');
    const obj = this.index.object(key);
    if (!obj || !sameRepresentation(obj.meta, rep)) return 0;
    const before = this.index.usedBytes;
    this.index.dropObject(key);
    return before - this.index.usedBytes;
  }

  /** Owner: slices replicas read, moved to the recent end of the eviction order. */
  touched(paths: string[]): void {
    for (const path of paths) this.index.touch(path);
  }

  /** Owner: a replica found a slice file damaged or gone; drop it if the index still names that file. */
  damaged(key: string, index: number, path: string): void {
    if (this.index.slice(key, index)?.path !== path) return;
    this.opts.logger.warn({ key, index, path }, 'disk slice reported damaged by a replica, dropped');
    this.index.dropSlice(key, index);
  }

  private noteTouched(path: string): void {
    this.touchedPaths.add(path);
    const now = this.now();
    if (this.touchedPaths.size >= (this.opts.touchBatch ?? 64) || now - this.lastTouchReport >= (this.opts.touchIntervalMs ?? 1000)) this.reportTouched(now);
  }

  private reportTouched(now: number): void {
    this.lastTouchReport = now;
    if (this.touchedPaths.size === 0) return;
    const paths = [...this.touchedPaths];
    this.touchedPaths.clear();
    this.opts.remote!.touched(paths);
  }

  /** Closes every cached descriptor (after reads in flight) and reports pending touches. */
  async close(): Promise<void> {
    if (this.role === 'replica') this.reportTouched(this.now());
    this.fds.closeAll();
  }

  // ---- staging (fill, owner only): whole slices kept across restarts, published when the file verifies ----

  private ownerOnly(what: string): void {
    if (this.role !== 'owner') throw new Error(`DiskTier replica: ${what} is the owner's`);
  }

  /** Staged slice indexes of `key` whose representation matches `meta` (others are dropped). */
  stagedSlices(key: string, meta?: Representation): number[] {
    const e = this.staged.get(key);
    if (!e) return [];
    if (meta && !sameRepresentation(e.meta, meta)) {
      this.dropStaged(key);
      return [];
    }
    return [...e.slices.keys()];
  }

  /** The representation the staged slices of `key` belong to. */
  stagedMeta(key: string): StoredMeta | undefined {
    return this.staged.get(key)?.meta;
  }

  async writeStaged(key: string, index: number, meta: StoredMeta, data: Buffer): Promise<boolean> {
    this.ownerOnly('staging');
    const existing = this.staged.get(key);
    if (existing && !sameRepresentation(existing.meta, meta)) this.dropStaged(key);
    const encoded = encodeSlice(key, index, meta, data, this.opts.sliceBytes);
    const fileBytes = encoded.fileBytes;
    this.evictUntil(fileBytes);
    if (this.used() + fileBytes > this.opts.capacityBytes) return false;
    this.reservedBytes += fileBytes;
    const path = this.pathFor(key, index, meta, 'staging');
    try {
      const tmp = await writeTempFile(this.stagingRoot, encoded.parts);
      try {
        await rename(tmp, path);
      } catch (err) {
        await unlink(tmp).catch(() => {});
        throw err;
      }
    } finally {
      this.reservedBytes -= fileBytes;
    }
    const e = this.staged.get(key) ?? { meta, slices: new Map<number, StagedSlice>() };
    this.staged.set(key, e);
    const old = e.slices.get(index);
    if (old) this.stagedBytes -= old.fileBytes;
    e.slices.set(index, { path, dataOffset: encoded.dataOffset, length: data.length, crc32: encoded.crc32, fileBytes, verified: false });
    this.stagedBytes += fileBytes;
    return true;
  }

  /** A staged slice's bytes, its CRC always checked (fill hashes them before publishing). */
  async readStaged(key: string, index: number): Promise<Buffer | undefined> {
    const slice = this.staged.get(key)?.slices.get(index);
    if (!slice) return undefined;
    try {
      const data = await readSliceOnce(slice);
      slice.verified = true;
      return data;
    } catch {
      this.dropStagedSlice(key, index);
      return undefined;
    }
  }

  private dropStagedSlice(key: string, index: number): void {
    const e = this.staged.get(key);
    const slice = e?.slices.get(index);
    if (!e || !slice) return;
    e.slices.delete(index);
    this.stagedBytes -= slice.fileBytes;
    unlink(slice.path).catch(() => {});
    if (e.slices.size === 0) this.staged.delete(key);
  }

  dropStaged(key: string): void {
    for (const index of [...(this.staged.get(key)?.slices.keys() ?? [])]) this.dropStagedSlice(key, index);
  }

  /**
   * Makes a verified file visible: its staged slices move into the cache (a rename each),
   * pinned, replacing any cached copy of another representation. The renames and the index
   * changes happen in one turn of the event loop, so no write or purge interleaves with them.
   */
  async publish(key: string, pinBelow = Infinity): Promise<void> {
    this.ownerOnly('publish');
    const e = this.staged.get(key);
    if (!e) return;
    const targets = [...e.slices].map(([index, slice]) => ({ index, slice, path: this.pathFor(key, index, e.meta) }));
    for (const dir of new Set(targets.map((t) => tempDirFor(t.path)))) await mkdir(dir, { recursive: true });
    if (this.staged.get(key) !== e) return; // dropped while the folders were made
    const existing = this.index.object(key);
    if (existing && !sameRepresentation(existing.meta, e.meta)) this.index.dropObject(key);
    this.index.pin(key, pinBelow);
    this.index.bumpGeneration(key);
    for (const { index, slice, path } of targets) {
      e.slices.delete(index);
      this.stagedBytes -= slice.fileBytes;
      try {
        renameSync(slice.path, path);
      } catch (err) {
        for (const [, s] of e.slices) unlink(s.path).catch(() => {});
        for (const [, s] of e.slices) this.stagedBytes -= s.fileBytes;
        this.staged.delete(key);
        throw err;
      }
      // The verified staged slice wins over a cached copy of it: the rename replaced the file.
      const obj = this.index.object(key);
      const put = this.index.put(key, index, obj ? obj.meta : e.meta, { path, dataOffset: slice.dataOffset, length: slice.length, crc32: slice.crc32, fileBytes: slice.fileBytes });
      put.verified = slice.verified;
    }
    this.staged.delete(key);
  }

  // ---- capacity, purge, pins (owner) ----

  /** Evicts unpinned slices, least recently used first, until `need` more bytes fit. */
  private evictUntil(need: number): number {
    let evicted = 0;
    for (const [, { key, index }] of this.index.lru) {
      if (this.used() + need <= this.opts.capacityBytes) break;
      const slice = this.index.slice(key, index);
      if (!slice) continue;
      this.index.dropSlice(key, index);
      evicted++;
      this.opts.onEvict?.(slice.fileBytes);
    }
    return evicted;
  }

  /**
   * Removes an object; returns the bytes freed. On a replica only its own view drops (the
   * owner purges, and its events reach every replica), and a write of it in flight here is
   * not committed.
   */
  purge(key: string): number {
    const before = this.index.usedBytes;
    if (this.role === 'replica') {
      this.localPurges.set(key, (this.localPurges.get(key) ?? 0) + 1);
      const obj = this.index.object(key);
      if (obj) {
        const rep = representationOfMeta(obj.meta);
        if (this.purgedReps.size >= 10_000) this.purgedReps.delete(this.purgedReps.keys().next().value!);
        this.purgedReps.set(key, rep);
        this.opts.remote!.dropped(key, rep);
      }
      this.index.dropObject(key);
      return before - this.index.usedBytes;
    }
    this.index.bumpGeneration(key);
    this.index.dropObject(key);
    return before - this.index.usedBytes;
  }

  /**
   * Pinned content is never evicted (fill manifests pin what the node must hold): the whole
   * object, or only its slices below `below` — a prefix, whose later slices stay cache.
   */
  pin(key: string, below = Infinity): void {
    this.ownerOnly('pin');
    this.index.pin(key, below);
  }

  /** Slices of `key` below this index are pinned: 0 none, Infinity all. */
  pinnedBelow(key: string): number {
    return this.index.pinnedBelow(key);
  }

  /** Unpinned content stays as cache until space is needed. */
  unpin(key: string): void {
    this.ownerOnly('unpin');
    this.index.unpin(key);
  }

  isPinned(key: string): boolean {
    return this.index.isPinned(key);
  }

  /** Bytes of files under the cache directory, measured on disk (for tests and checks). */
  async measureOnDisk(): Promise<number> {
    let total = 0;
    for (const sub of await readdir(this.root).catch(() => [] as string[])) {
      for (const name of await readdir(join(this.root, sub)).catch(() => [] as string[])) {
        total += (await stat(join(this.root, sub, name)).catch(() => ({ size: 0 }))).size;
      }
    }
    return total;
  }
}

/** Reads a slice without the descriptor cache (staged files: read once, by fill), CRC checked. */
async function readSliceOnce(slice: SliceLocation): Promise<Buffer> {
  const fh = await open(slice.path, 'r');
  try {
    const buf = Buffer.allocUnsafe(slice.length);
    const { bytesRead } = await fh.read(buf, 0, slice.length, slice.dataOffset);
    if (bytesRead !== slice.length) throw new SliceDamaged('short read');
    if (crc32(buf) !== slice.crc32) throw new SliceDamaged('checksum mismatch');
    return buf;
  } finally {
    await fh.close().catch(() => {});
  }
}

async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(workers);
}

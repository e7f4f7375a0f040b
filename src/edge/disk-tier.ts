import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '../common/logger.js';
import { sliceBounds } from './slice-math.js';

/** What names one version of an object's bytes: a slice of one representation is never served as another's. */
export type Representation = Pick<StoredMeta, 'size' | 'etag' | 'lastModified'>;

/** Why a slice write did not store the slice. */
export type WriteOutcome =
  /** The slice is on disk (or already was). */
  | 'stored'
  /** It does not fit: everything left is pinned. The caller may keep it in memory. */
  | 'no-room'
  /** The object was purged, or another representation replaced it, while we wrote: the bytes are stale. */
  | 'superseded';

/** What the disk keeps of an object's representation, in every slice file's header. */
export interface StoredMeta {
  size: number;
  contentType: string;
  etag?: string;
  lastModified?: string;
  cacheControl?: string;
  /** Epoch ms the representation was fetched or last validated. */
  storedAt: number;
}

interface SliceHeader {
  key: string;
  index: number;
  length: number;
  /** CRC-32 of the slice bytes: checked on every read, so a damaged file is never served. */
  crc32: number;
  sliceBytes: number;
  meta: StoredMeta;
}

interface DiskSlice {
  path: string;
  dataOffset: number;
  length: number;
  crc32: number;
  /** Bytes on disk, header included. */
  fileBytes: number;
}

interface DiskObject {
  key: string;
  meta: StoredMeta;
  slices: Map<number, DiskSlice>;
  pinned: boolean;
}

const MAGIC = Buffer.from('RCDN1\n');
const HEADER_PREFIX = MAGIC.length + 4;
const MAX_HEADER = 64 * 1024;
const TMP_PREFIX = '.tmp-';

export interface DiskTierOptions {
  dir: string;
  capacityBytes: number;
  sliceBytes: number;
  logger: Logger;
  onEvict?: (bytes: number) => void;
}

export interface DiskStats {
  usedBytes: number;
  capacityBytes: number;
  objects: number;
  slices: number;
  pinnedBytes: number;
  stagedBytes: number;
}

/**
 * The disk tier: one file per slice (header + bytes) under `dir/cache/hh/`, visible only once
 * whole (temp file, fsync, rename), bounded by `capacityBytes` with least-recently-used eviction
 * of unpinned slices. The index lives in memory and is rebuilt from the files at start;
 * anything a crash left behind (temp files, short or foreign files) is removed then.
 */
export class DiskTier {
  private readonly root: string;
  private readonly stagingRoot: string;
  private readonly objects = new Map<string, DiskObject>();
  /** Slices written by fill, invisible to clients until their whole file is verified and published. */
  private readonly staged = new Map<string, { meta: StoredMeta; slices: Map<number, DiskSlice> }>();
  /** Unpinned slices, least recently used first (Map keeps insertion order). */
  private readonly lru = new Map<string, { obj: DiskObject; index: number }>();
  private used = 0;
  private pinnedBytesTotal = 0;
  private readonly pinnedKeys = new Set<string>();
  /** Bumped on purge so a write that started before it does not resurrect the object. */
  private readonly generation = new Map<string, number>();

  constructor(private readonly opts: DiskTierOptions) {
    this.root = join(opts.dir, 'cache');
    this.stagingRoot = join(opts.dir, 'staging');
  }

  get capacityBytes(): number {
    return this.opts.capacityBytes;
  }

  stats(): DiskStats {
    let slices = 0;
    for (const o of this.objects.values()) slices += o.slices.size;
    return {
      usedBytes: this.used,
      capacityBytes: this.opts.capacityBytes,
      objects: this.objects.size,
      slices,
      pinnedBytes: this.pinnedBytesTotal,
      stagedBytes: [...this.staged.values()].reduce((sum, e) => sum + [...e.slices.values()].reduce((a, sl) => a + sl.fileBytes, 0), 0),
    };
  }

  /** Rebuilds the index from disk, removing what is partial, foreign or over capacity. */
  async open(): Promise<{ slices: number; removed: number; ms: number }> {
    const started = performance.now();
    await mkdir(this.root, { recursive: true });
    let removed = 0;
    const found: { header: SliceHeader; slice: DiskSlice; mtimeMs: number }[] = [];
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
        const parsed = name.startsWith(TMP_PREFIX) ? undefined : await this.readHeader(path);
        if (!parsed) {
          removed++;
          await unlink(path).catch(() => {});
          return;
        }
        found.push({ ...parsed, slice: { ...parsed.slice, path } });
      });
    }
    // Oldest first, so that insertion order is recency order.
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const { header, slice } of found) {
      const obj = this.objects.get(header.key);
      if (obj && !sameRepresentation(obj.meta, header.meta)) {
        // Two representations of one object: the later one wins.
        this.dropObject(obj);
      }
      const target = this.objects.get(header.key) ?? this.newObject(header.key, header.meta);
      if (header.meta.storedAt > target.meta.storedAt) target.meta = header.meta;
      target.slices.set(header.index, slice);
      this.used += slice.fileBytes;
      this.lru.set(slice.path, { obj: target, index: header.index });
    }
    await mkdir(this.stagingRoot, { recursive: true });
    const stagedNames = await readdir(this.stagingRoot);
    await mapLimit(stagedNames, 32, async (name) => {
      const path = join(this.stagingRoot, name);
      const parsed = name.startsWith(TMP_PREFIX) ? undefined : await this.readHeader(path, 'staging');
      if (!parsed) {
        removed++;
        await unlink(path).catch(() => {});
        return;
      }
      const entry = this.staged.get(parsed.header.key);
      if (entry && !sameRepresentation(entry.meta, parsed.header.meta)) {
        removed++;
        await unlink(path).catch(() => {});
        return;
      }
      const e = entry ?? { meta: parsed.header.meta, slices: new Map<number, DiskSlice>() };
      this.staged.set(parsed.header.key, e);
      e.slices.set(parsed.header.index, parsed.slice);
      this.used += parsed.slice.fileBytes;
    });
    removed += this.evictUntil(0);
    const ms = performance.now() - started;
    this.opts.logger.info({ slices: found.length, removed, ms: Math.round(ms) }, 'disk tier index rebuilt');
    return { slices: found.length, removed, ms };
  }

  private async readHeader(path: string, area: 'cache' | 'staging' = 'cache'): Promise<{ header: SliceHeader; slice: DiskSlice; mtimeMs: number } | undefined> {
    let fh;
    try {
      fh = await open(path, 'r');
      const st = await fh.stat();
      if (!st.isFile() || st.size < HEADER_PREFIX) return undefined;
      const prefix = Buffer.alloc(HEADER_PREFIX);
      await fh.read(prefix, 0, HEADER_PREFIX, 0);
      if (!prefix.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
      const headerLen = prefix.readUInt32BE(MAGIC.length);
      if (headerLen > MAX_HEADER || HEADER_PREFIX + headerLen > st.size) return undefined;
      const json = Buffer.alloc(headerLen);
      await fh.read(json, 0, headerLen, HEADER_PREFIX);
      const header = JSON.parse(json.toString('utf8')) as SliceHeader;
      const dataOffset = HEADER_PREFIX + headerLen;
      if (
        typeof header.key !== 'string' ||
        typeof header.crc32 !== 'number' ||
        header.sliceBytes !== this.opts.sliceBytes ||
        !header.meta ||
        typeof header.meta.size !== 'number'
      ) {
        return undefined;
      }
      const bounds = sliceBounds(header.index, this.opts.sliceBytes, header.meta.size);
      // A slice is whole or it is nothing: the length must be exactly the slice's.
      if (header.length !== bounds.end - bounds.start || st.size !== dataOffset + header.length) return undefined;
      // Files written before slice paths named the representation are still ours.
      if (this.pathFor(header.key, header.index, header.meta, area) !== path && this.legacyPathFor(header.key, header.index, area) !== path) {
        return undefined;
      }
      return { header, slice: { path, dataOffset, length: header.length, crc32: header.crc32, fileBytes: st.size }, mtimeMs: st.mtimeMs };
    } catch {
      return undefined;
    } finally {
      await fh?.close().catch(() => {});
    }
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

  private newObject(key: string, meta: StoredMeta): DiskObject {
    const obj: DiskObject = { key, meta, slices: new Map(), pinned: this.pinnedKeys.has(key) };
    this.objects.set(key, obj);
    return obj;
  }

  meta(key: string): StoredMeta | undefined {
    return this.objects.get(key)?.meta;
  }

  /** Whether slice `index` of `key` is on disk — of representation `rep` when given. */
  has(key: string, index: number, rep?: Representation): boolean {
    const obj = this.objects.get(key);
    if (!obj || (rep && !sameRepresentation(obj.meta, rep))) return false;
    return obj.slices.has(index);
  }

  /** Keys of every object with at least one slice on disk. */
  keys(): IterableIterator<string> {
    return this.objects.keys();
  }

  /** Which slices of `key` are on disk. */
  sliceIndexes(key: string): number[] {
    return [...(this.objects.get(key)?.slices.keys() ?? [])];
  }

  /** Marks the representation validated at `at` (a 304 from upstream). */
  touchValidated(key: string, at: number, cacheControl?: string): void {
    const obj = this.objects.get(key);
    if (!obj) return;
    obj.meta = { ...obj.meta, storedAt: at, ...(cacheControl ? { cacheControl } : {}) };
  }

  /**
   * A slice's bytes, or undefined if it is not (or no longer) on disk — or, given `rep`, if
   * what is on disk is another representation. The file is named by its representation and
   * its bytes are checked against the CRC recorded when it was indexed, so the bytes returned
   * belong to the representation checked here even if the object is replaced meanwhile.
   */
  async read(key: string, index: number, rep?: Representation): Promise<Buffer | undefined> {
    const obj = this.objects.get(key);
    const slice = obj?.slices.get(index);
    if (!obj || !slice) return undefined;
    if (rep && !sameRepresentation(obj.meta, rep)) return undefined;
    if (!obj.pinned) {
      this.lru.delete(slice.path);
      this.lru.set(slice.path, { obj, index });
    }
    try {
      return await readSlice(slice);
    } catch (err) {
      // Gone or damaged underneath us: forget it, the caller refetches.
      this.opts.logger.warn({ err: (err as Error).message, path: slice.path }, 'disk slice unreadable, dropped');
      this.dropSlice(obj, index);
      return undefined;
    }
  }

  /**
   * Stores a whole slice of representation `meta`, replacing any other representation of the
   * object. Throws on I/O errors (a full disk), having cleaned up after itself.
   */
  async write(key: string, index: number, meta: StoredMeta, data: Buffer): Promise<WriteOutcome> {
    const existing = this.objects.get(key);
    if (existing && !sameRepresentation(existing.meta, meta)) this.dropObject(existing);
    if (this.objects.get(key)?.slices.has(index)) return 'stored';

    const { prefix, header, crc } = this.encodeHeader(key, index, meta, data);
    const fileBytes = HEADER_PREFIX + header.length + data.length;
    if (fileBytes > this.opts.capacityBytes) return 'no-room';
    this.evictUntil(fileBytes);
    if (this.used + fileBytes > this.opts.capacityBytes) return 'no-room';

    const gen = this.generation.get(key) ?? 0;
    this.used += fileBytes; // reserved now so concurrent writers cannot overshoot
    const path = this.pathFor(key, index, meta);
    try {
      await writeWhole(path, [prefix, header, data]);
    } catch (err) {
      this.used -= fileBytes;
      throw err;
    }
    const now = this.objects.get(key);
    if ((this.generation.get(key) ?? 0) !== gen || (now && !sameRepresentation(now.meta, meta))) {
      // Purged, or another representation stored, while we wrote: these bytes must not join it.
      this.used -= fileBytes;
      // Unless a writer of this same representation already put its (identical) file at this path.
      if (!now || !sameRepresentation(now.meta, meta) || !now.slices.has(index)) await unlink(path).catch(() => {});
      return 'superseded';
    }
    const obj = now ?? this.newObject(key, meta);
    const old = obj.slices.get(index);
    if (old) this.used -= old.fileBytes;
    obj.slices.set(index, { path, dataOffset: HEADER_PREFIX + header.length, length: data.length, crc32: crc, fileBytes });
    if (obj.pinned) this.pinnedBytesTotal += fileBytes;
    else this.lru.set(path, { obj, index });
    return 'stored';
  }

  private encodeHeader(key: string, index: number, meta: StoredMeta, data: Buffer): { prefix: Buffer; header: Buffer; crc: number } {
    const crc = crc32(data);
    const header = Buffer.from(
      JSON.stringify({ key, index, length: data.length, crc32: crc, sliceBytes: this.opts.sliceBytes, meta } satisfies SliceHeader),
    );
    const prefix = Buffer.alloc(HEADER_PREFIX);
    MAGIC.copy(prefix);
    prefix.writeUInt32BE(header.length, MAGIC.length);
    return { prefix, header, crc };
  }

  // ---- staging (fill): whole slices kept across restarts, published when the file verifies ----

  /** Staged slice indexes of `key` whose representation matches `meta` (others are dropped). */
  stagedSlices(key: string, meta?: Pick<StoredMeta, 'size' | 'etag' | 'lastModified'>): number[] {
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
    const existing = this.staged.get(key);
    if (existing && !sameRepresentation(existing.meta, meta)) this.dropStaged(key);
    const { prefix, header, crc } = this.encodeHeader(key, index, meta, data);
    const fileBytes = HEADER_PREFIX + header.length + data.length;
    this.evictUntil(fileBytes);
    if (this.used + fileBytes > this.opts.capacityBytes) return false;
    this.used += fileBytes;
    const path = this.pathFor(key, index, meta, 'staging');
    try {
      await writeWhole(path, [prefix, header, data]);
    } catch (err) {
      this.used -= fileBytes;
      throw err;
    }
    const e = this.staged.get(key) ?? { meta, slices: new Map<number, DiskSlice>() };
    this.staged.set(key, e);
    const old = e.slices.get(index);
    if (old) this.used -= old.fileBytes;
    e.slices.set(index, { path, dataOffset: HEADER_PREFIX + header.length, length: data.length, crc32: crc, fileBytes });
    return true;
  }

  async readStaged(key: string, index: number): Promise<Buffer | undefined> {
    const slice = this.staged.get(key)?.slices.get(index);
    if (!slice) return undefined;
    return readSlice(slice).catch(() => {
      this.dropStagedSlice(key, index);
      return undefined;
    });
  }

  private dropStagedSlice(key: string, index: number): void {
    const e = this.staged.get(key);
    const slice = e?.slices.get(index);
    if (!e || !slice) return;
    e.slices.delete(index);
    this.used -= slice.fileBytes;
    unlink(slice.path).catch(() => {});
    if (e.slices.size === 0) this.staged.delete(key);
  }

  dropStaged(key: string): void {
    for (const index of [...(this.staged.get(key)?.slices.keys() ?? [])]) this.dropStagedSlice(key, index);
  }

  /**
   * Makes a verified file visible: its staged slices move into the cache (a rename each),
   * pinned, replacing any cached copy of another representation.
   */
  async publish(key: string): Promise<void> {
    const e = this.staged.get(key);
    if (!e) return;
    const existing = this.objects.get(key);
    if (existing && !sameRepresentation(existing.meta, e.meta)) this.dropObject(existing);
    this.pin(key);
    this.generation.set(key, (this.generation.get(key) ?? 0) + 1);
    for (const [index, slice] of [...e.slices]) {
      const obj = this.objects.get(key) ?? this.newObject(key, e.meta);
      e.slices.delete(index);
      const cached = obj.slices.get(index);
      if (cached) {
        // The verified staged slice wins over a cached copy of it; the rename below replaces the file.
        this.used -= cached.fileBytes;
        this.lru.delete(cached.path);
        if (obj.pinned) this.pinnedBytesTotal -= cached.fileBytes;
        obj.slices.delete(index);
      }
      const path = this.pathFor(key, index, e.meta);
      await mkdir(join(path, '..'), { recursive: true });
      await rename(slice.path, path);
      obj.slices.set(index, { ...slice, path });
      this.pinnedBytesTotal += slice.fileBytes;
    }
    this.staged.delete(key);
  }

  /** Evicts unpinned slices, least recently used first, until `need` more bytes fit. */
  private evictUntil(need: number): number {
    let evicted = 0;
    for (const [path, { obj, index }] of this.lru) {
      if (this.used + need <= this.opts.capacityBytes) break;
      this.lru.delete(path);
      const slice = obj.slices.get(index);
      if (!slice) continue;
      this.dropSlice(obj, index);
      evicted++;
      this.opts.onEvict?.(slice.fileBytes);
    }
    return evicted;
  }

  private dropSlice(obj: DiskObject, index: number): void {
    const slice = obj.slices.get(index);
    if (!slice) return;
    obj.slices.delete(index);
    this.lru.delete(slice.path);
    this.used -= slice.fileBytes;
    if (obj.pinned) this.pinnedBytesTotal -= slice.fileBytes;
    // Readers that already opened the file keep reading it; the name goes now.
    unlink(slice.path).catch(() => {});
    if (obj.slices.size === 0) this.objects.delete(obj.key);
  }

  private dropObject(obj: DiskObject): void {
    for (const index of [...obj.slices.keys()]) this.dropSlice(obj, index);
    this.objects.delete(obj.key);
  }

  /** Removes an object; returns the bytes freed. */
  purge(key: string): number {
    this.generation.set(key, (this.generation.get(key) ?? 0) + 1);
    const obj = this.objects.get(key);
    if (!obj) return 0;
    const before = this.used;
    this.dropObject(obj);
    return before - this.used;
  }

  /** Pinned content is never evicted (fill manifests pin what the node must hold). */
  pin(key: string): void {
    this.pinnedKeys.add(key);
    const obj = this.objects.get(key);
    if (!obj || obj.pinned) return;
    obj.pinned = true;
    for (const s of obj.slices.values()) {
      this.lru.delete(s.path);
      this.pinnedBytesTotal += s.fileBytes;
    }
  }

  /** Unpinned content stays as cache until space is needed. */
  unpin(key: string): void {
    this.pinnedKeys.delete(key);
    const obj = this.objects.get(key);
    if (!obj || !obj.pinned) return;
    obj.pinned = false;
    for (const [index, s] of obj.slices) {
      this.pinnedBytesTotal -= s.fileBytes;
      this.lru.set(s.path, { obj, index });
    }
  }

  isPinned(key: string): boolean {
    return this.pinnedKeys.has(key);
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

async function readSlice(slice: DiskSlice): Promise<Buffer> {
  const fh = await open(slice.path, 'r');
  try {
    const buf = Buffer.allocUnsafe(slice.length);
    const { bytesRead } = await fh.read(buf, 0, slice.length, slice.dataOffset);
    if (bytesRead !== slice.length) throw new Error('short read');
    if (crc32(buf) !== slice.crc32) throw new Error('checksum mismatch');
    return buf;
  } finally {
    await fh.close().catch(() => {});
  }
}

/** Writes a file so that it exists whole or not at all: temp file, fsync, rename. */
async function writeWhole(path: string, parts: Buffer[]): Promise<void> {
  const dir = join(path, '..');
  const tmp = join(dir, `${TMP_PREFIX}${randomBytes(6).toString('hex')}`);
  try {
    await mkdir(dir, { recursive: true });
    const fh = await open(tmp, 'wx');
    try {
      await fh.writev(parts);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

export function sameRepresentation(a: Representation, b: Representation): boolean {
  return a.size === b.size && a.etag === b.etag && a.lastModified === b.lastModified;
}

async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(workers);
}

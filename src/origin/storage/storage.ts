import type { Readable } from 'node:stream';

/**
 * Where the origin keeps what it serves and what it remembers: the catalog, the titles' files,
 * the play counts. Two kinds: a local folder (dir-storage.ts, the default) and an S3-compatible
 * bucket (s3-storage.ts), which several origin replicas can share.
 *
 * Everything is named by a key, a relative path with '/' separators: `catalog.json`,
 * `plays.json`, `titles/{title}/{version}/{file}`. A key never starts with '/' and never climbs
 * ('..'); callers build keys only from validated titles, versions and file paths.
 */
export interface OriginStorage {
  /** What this storage is, for log lines and errors: a folder, or `s3://bucket/prefix/`. */
  readonly location: string;
  /** Where `key` is, for messages naming a file: a path, or `s3://bucket/prefix/key`. */
  describe(key: string): string;

  /** Size and tag of the object, or undefined if there is none. Cheap (a stat, a HEAD). */
  stat(key: string): Promise<ObjectStat | undefined>;
  /** A small document (JSON state) and its tag, or undefined if there is none. */
  readDocument(key: string): Promise<StoredDocument | undefined>;
  /**
   * Replaces a small document whole: a reader sees the old bytes or the new, never half.
   * `ifTag`: only if the document is still the one with that tag (`null`: only if there is
   * none) — a compare-and-swap between writers, which resolves to `{ ok: false }` when someone
   * else wrote first. Resolves to the new tag.
   */
  writeDocument(key: string, data: string, ifTag?: string | null): Promise<WriteResult>;
  /** Removes one document (a lock); nothing if absent. `ifTag`: only if it is still that one. */
  removeDocument(key: string, ifTag?: string): Promise<void>;

  /**
   * Opens an object for ranged reads if it exists with exactly `size` bytes; undefined
   * otherwise (gone, or not what the catalog lists). `first` is the range that will be read
   * first: a store may start fetching it now, so that a missing object is known before an
   * answer's status is sent rather than as a cut body. A store that cannot answer at all rejects
   * with StoreUnavailable.
   */
  openObject(key: string, size: number, first?: ByteRange): Promise<ObjectReader | undefined>;

  /** Names directly under the folder `prefix` (which ends in '/'): files and sub-folders, without the prefix or a trailing '/'. */
  list(prefix: string): Promise<string[]>;
  /** Removes `key` and, if it is a folder, everything under it. */
  removeTree(key: string): Promise<void>;

  /**
   * Starts writing the files of a new title version (ingest). The files become readable under
   * `titles/{title}/{version}/` no later than `publish()`; until the catalog names the version,
   * nothing reads them.
   */
  stageVersion(title: string, version: string): Promise<VersionWriter>;

  /**
   * Takes the exclusive lock `key` between every process writing this storage (ingest). A lock
   * left by a process that died is taken over; a live one is an OriginInputError naming `what`.
   * Resolves to its release.
   */
  lock(key: string, what: string): Promise<() => Promise<void>>;
}

/** Why a store failed a read (a bounded metric label). */
export type StoreFailure = 'throttled' | 'server-error' | 'unreachable' | 'refused';
export const STORE_FAILURES: readonly StoreFailure[] = ['throttled', 'server-error', 'unreachable', 'refused'];

/**
 * The store could not answer (throttling, a 5xx, no connection, credentials refused): unlike an
 * object that is gone or not the size listed (`openObject` resolves to undefined), nothing says
 * the catalog is wrong — the same read may work in a moment.
 */
export class StoreUnavailable extends Error {
  constructor(
    readonly where: string,
    readonly reason: StoreFailure,
    detail: string,
  ) {
    super(`${where}: the store failed (${reason}): ${detail}`);
    this.name = 'StoreUnavailable';
  }
}

export interface ObjectStat {
  size: number;
  /** Changes whenever the bytes are replaced (an S3 ETag; inode, size and time on disk). */
  tag: string;
}

export interface StoredDocument {
  text: string;
  tag: string;
}

export type WriteResult = { ok: true; tag: string } | { ok: false };

/** Half-open byte range [start, end). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface ObjectReader {
  /** The bytes [start, end) of the object, as a stream of Buffers. */
  read(range: ByteRange): Readable;
  /** Releases the object (a file handle, a pending first response). */
  close(): Promise<void>;
}

export interface VersionWriter {
  /** Writes one file of the version (title-relative path) from `source`; the caller counts and hashes the bytes. */
  put(path: string, source: Readable): Promise<void>;
  /** Makes the version visible at its final place (a folder rename; nothing on S3). */
  publish(): Promise<void>;
  /** Removes what was written, published or not: the catalog never named it. Best effort. */
  discard(): Promise<void>;
}

/** Names that are housekeeping, never titles: staging folders of ingests on a local disk. */
export function isStagingName(name: string): boolean {
  return name.startsWith('.staging-') || name.startsWith('.old-');
}

/** The key of a title's folder, `titles/{title}/`. */
export function titleKey(title: string): string {
  return `titles/${title}/`;
}

/** The key of one file of a catalog entry: in its version's folder, or loose in the title folder for an unversioned entry. */
export function entryFileKey(entry: { title: string; version?: string }, path: string): string {
  return entry.version === undefined ? `titles/${entry.title}/${path}` : `titles/${entry.title}/${entry.version}/${path}`;
}

/**
 * Streams [start, end) of an object the catalog lists with `size` bytes, the end clamped to the
 * size; an object gone or of another size is an error naming it.
 */
export function rangeSource(storage: OriginStorage, key: string, size: number): { read(start: number, end: number): AsyncIterable<Buffer> } {
  return {
    async *read(start: number, end: number): AsyncIterable<Buffer> {
      const range = { start: Math.min(start, size), end: Math.min(end, size) };
      if (range.end <= range.start) return;
      const r = await storage.openObject(key, size, range);
      if (!r) throw new Error(`${storage.describe(key)}: missing, or not the ${size} bytes the catalog lists`);
      try {
        for await (const c of r.read(range)) yield c as Buffer;
      } finally {
        await r.close();
      }
    },
  };
}

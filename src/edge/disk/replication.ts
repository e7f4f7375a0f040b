import type { Representation, SliceLocation, StoredMeta, WriteOutcome } from './types.js';

/**
 * One change to the owner's disk index, as plain data (it survives structuredClone, so IPC).
 * The owner emits them synchronously and in order for every change; a replica that applies
 * them in that order, after a snapshot, holds the owner's index.
 */
export type DiskEvent =
  /** Slice `index` of `key` is on disk at `slice`; `meta` is the object's representation now (a put of another representation replaces the object). */
  | { type: 'put'; key: string; index: number; meta: StoredMeta; slice: SliceLocation }
  /** One slice left (evicted, damaged, replaced). */
  | { type: 'slice-dropped'; key: string; index: number }
  /** Every slice of the object left (purged, or replaced by another representation). */
  | { type: 'object-dropped'; key: string }
  /** The object's stored meta changed (revalidated: `storedAt`, Cache-Control). */
  | { type: 'meta'; key: string; meta: StoredMeta }
  /** Pinned: every slice, or (`below`) only those with a lower index — a prefix fill. */
  | { type: 'pinned'; key: string; below?: number }
  | { type: 'unpinned'; key: string }
  /**
   * The key's write generation moved (a purge, or fill publishing the object): a slice whose
   * write started under an older generation is refused as `superseded` when committed.
   */
  | { type: 'generation'; key: string; generation: number };

/** The owner's whole index at one moment: what a replica starts from. */
export interface DiskSnapshot {
  type: 'snapshot';
  objects: { key: string; meta: StoredMeta; slices: ({ index: number } & SliceLocation)[] }[];
  pinned: string[];
  /** Keys pinned only below a slice index (prefix fills). */
  pinnedBelow?: [string, number][];
  generations: [string, number][];
}

/** A slice a replica wrote to a temp file, for the owner to commit (rename into place) or refuse. */
export interface PreparedSlice {
  key: string;
  index: number;
  meta: StoredMeta;
  /** The temp file, beside `slice.path`. */
  tmpPath: string;
  /** Where the slice will be once committed. */
  slice: SliceLocation;
  /** The key's generation when the write started, as the writer knew it. */
  generation: number;
  /** The representation the writer saw on disk when it started and means to replace, if any. */
  replaces?: Representation;
}

/**
 * What a replica asks of the owner (implemented over IPC by the node's cluster code; in one
 * process, by direct calls).
 */
export interface DiskRemote {
  /** Commit a prepared slice. The owner emits its `put` before this resolves. */
  commit(prepared: PreparedSlice): Promise<WriteOutcome>;
  /** A 304 refreshed the object's stored meta. */
  touchValidated(key: string, at: number, cacheControl?: string): void;
  /** Slices read since the last report, for the owner's least-recently-used order. */
  touched(paths: string[]): void;
  /** A replica found this slice's file damaged or gone: the owner drops it (if it is still that file). */
  damaged(key: string, index: number, path: string): void;
  /**
   * A replica dropped the object because it is no longer current upstream (changed or gone):
   * the owner drops it too, if it still holds that representation.
   */
  dropped(key: string, rep: Representation): void;
}

/** The disk tier's vocabulary, shared by the tier, its index, its files and its replicas. */

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

/** Where one slice's bytes are: a file, and where in it. Plain data (it crosses process boundaries). */
export interface SliceLocation {
  path: string;
  /** Offset of the slice bytes in the file (after the magic, the header length and the header). */
  dataOffset: number;
  length: number;
  /** CRC-32 of the slice bytes, recorded when they were written. */
  crc32: number;
  /** Bytes on disk, header included. */
  fileBytes: number;
}

export function sameRepresentation(a: Representation, b: Representation): boolean {
  return a.size === b.size && a.etag === b.etag && a.lastModified === b.lastModified;
}

export function representationOfMeta(m: Representation): Representation {
  return { size: m.size, etag: m.etag, lastModified: m.lastModified };
}

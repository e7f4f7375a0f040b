/**
 * A node's fill manifest (origin admin `GET /v1/manifests/{edgeId}`): the files it should
 * hold after tonight's fill, most popular first, each with where to fetch it from.
 */
export interface FillSource {
  /** `peer`: another edge of the ISP expected to hold the file; `origin`: the last resort. */
  kind: 'peer' | 'origin';
  /** Edge id, or "origin". */
  id: string;
  /** Base URL of the source's public port. */
  url: string;
}

export interface FillFile {
  title: string;
  file: string;
  /** The whole file's size, also when only a range of it is placed (it names the representation). */
  size: number;
  /** The whole file's SHA-256 (lowercase hex). */
  sha256: string;
  /** 0 = most popular; the agent fills in this order. */
  rank: number;
  sources: FillSource[];
  /**
   * Only this part of the file is placed: bytes [0, end) — a prefix, for single-file byte-range
   * titles whose later bytes few plays reach. `end` is a multiple of the node's `sliceBytes` or
   * the file's size. Absent: the whole file. The rest of the file fills on demand (LRU).
   */
  range?: FillRange;
}

/** A placed prefix of a file and the digests its slices verify against. */
export interface FillRange {
  /** Exclusive end, bytes; 0 < end <= size. */
  end: number;
  /** The slice size the digests are of: the receiving node's `sliceBytes`. */
  sliceBytes: number;
  /**
   * SHA-256 (lowercase hex) of each slice in [0, end), in order; the last may be short (the
   * file's end). Filled in by the origin when it serves the manifest (the planner leaves it
   * empty: it does not read files); the agent pins no slice it cannot verify.
   */
  sliceSha256: string[];
}

/** Bytes a manifest file places on the node. */
export function placedBytes(f: Pick<FillFile, 'size' | 'range'>): number {
  return f.range ? f.range.end : f.size;
}

export interface FillManifest {
  edgeId: string;
  isp: string;
  /** Changes whenever the file list or sources change (it is the ETag). */
  version: string;
  generatedAt: string;
  /** Titles this node holds when the fill is done. */
  titles: string[];
  /** Σ placedBytes of the files. */
  bytes: number;
  files: FillFile[];
}

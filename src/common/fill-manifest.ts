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
  size: number;
  sha256: string;
  /** 0 = most popular; the agent fills in this order. */
  rank: number;
  sources: FillSource[];
}

export interface FillManifest {
  edgeId: string;
  isp: string;
  /** Changes whenever the file list or sources change (it is the ETag). */
  version: string;
  generatedAt: string;
  /** Titles this node holds when the fill is done. */
  titles: string[];
  bytes: number;
  files: FillFile[];
}

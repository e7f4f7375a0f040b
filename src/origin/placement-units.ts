/**
 * The pieces the fill planner places (pure): a whole title, one file, or one slice range of a
 * file. A unit is worth `score` (predicted plays, or plays × the share of plays that read it)
 * and costs `bytes` on every node that holds its title.
 */

/** A file the planner may place. */
export interface PlanFile {
  path: string;
  size: number;
  sha256: string;
  /**
   * Share of the title's plays expected to read the file (0-1): from what edges served
   * (file-weights.ts), or the rendition's share × the share of sessions still watching where
   * the file starts. Absent: 1 (every play reads it).
   */
  weight?: number;
  /**
   * Per slice of `PlanInput.weightSliceBytes`: share of the title's plays expected to read
   * slice i. Given for single-file byte-range titles: the planner may then place a prefix range
   * of the file (the slices beyond the array's end weigh 0).
   */
  sliceWeights?: number[];
  /**
   * The file's rendition (any name; files of one rendition share it) and its place in it
   * (0-1). Given, a rendition's segments are placed in runs — at most MAX_RUNS_PER_RENDITION
   * of them — so that a title of ten renditions of 4-second segments is a few hundred units,
   * not tens of thousands.
   */
  rendition?: string;
  position?: number;
}

/** A unit's part of one file: the whole file, or its prefix up to `end` (exclusive). */
export interface UnitFile {
  file: PlanFile;
  /** For a slice range: where it starts (the previous range's end). */
  start?: number;
  /** Prefix end in bytes; absent: the whole file. */
  end?: number;
}

export interface Unit {
  title: string;
  /** Order within the title: a title's units are placed in this order (a prefix grows). */
  index: number;
  /** What placing the unit adds: files, or a file's prefix growing to `end`. */
  files: UnitFile[];
  /** Bytes the unit adds on each node. */
  bytes: number;
  /** Predicted plays × the share of plays that read the unit; Infinity for pinned titles. */
  score: number;
  /** The unit (its `index`) that must be placed before this one: the run or range it continues. */
  after?: number;
}

/** Slice ranges finer than this share of a file are merged: ~64 units per file at most. */
const MAX_RANGES_PER_FILE = 64;
/** A rendition's segments are placed in at most this many runs of consecutive segments. */
export const MAX_RUNS_PER_RENDITION = 48;

/**
 * Units of one title. Unweighted titles are one unit (placed whole or not at all). Weighted
 * titles give one unit per file — per run of consecutive segments where a rendition has more
 * than MAX_RUNS_PER_RENDITION — and a file with slice weights one unit per slice range. Along
 * a rendition (or a file's slices) the score is made non-increasing (a part is worth at most
 * the one before it) so that ranking by score places prefixes, never a hole.
 */
export function titleUnits(title: string, files: readonly PlanFile[], plays: number, weighted: boolean, sliceBytes: number): Unit[] {
  if (!weighted) {
    return [{ title, index: 0, files: files.map((file) => ({ file })), bytes: files.reduce((s, f) => s + f.size, 0), score: plays }];
  }
  const out: Unit[] = [];
  const renditions = new Map<string, PlanFile[]>();
  for (const file of files) {
    if (file.rendition !== undefined && !file.sliceWeights && Number.isFinite(plays)) {
      (renditions.get(file.rendition) ?? renditions.set(file.rendition, []).get(file.rendition)!).push(file);
      continue;
    }
    const sw = file.sliceWeights;
    if (!sw || !Number.isFinite(plays) || file.size <= sliceBytes) {
      out.push({ title, index: out.length, files: [{ file }], bytes: file.size, score: Number.isFinite(plays) ? plays * (file.weight ?? 1) : plays });
      continue;
    }
    const slices = Math.ceil(file.size / sliceBytes);
    const per = Math.max(1, Math.ceil(slices / MAX_RANGES_PER_FILE));
    let envelope = Infinity;
    for (let s = 0; s < slices; s += per) {
      const last = Math.min(slices, s + per);
      let sum = 0;
      for (let i = s; i < last; i++) sum += sw[i] ?? 0;
      envelope = Math.min(envelope, sum / (last - s));
      const start = s * sliceBytes;
      const end = Math.min(file.size, last * sliceBytes);
      out.push({ title, index: out.length, files: [{ file, start, ...(end < file.size ? { end } : {}) }], bytes: end - start, score: plays * envelope });
    }
  }
  for (const list of renditions.values()) {
    list.sort((a, b) => (a.position ?? 0) - (b.position ?? 0));
    const per = Math.ceil(list.length / MAX_RUNS_PER_RENDITION);
    let envelope = Infinity;
    for (let i = 0; i < list.length; i += per) {
      const run = list.slice(i, i + per);
      const bytes = run.reduce((x, f) => x + f.size, 0);
      const read = run.reduce((x, f) => x + (f.weight ?? 1) * f.size, 0);
      envelope = Math.min(envelope, bytes > 0 ? read / bytes : 0);
      const prev = i === 0 ? undefined : out.length - 1;
      out.push({ title, index: out.length, files: run.map((file) => ({ file })), bytes, score: plays * envelope, ...(prev === undefined ? {} : { after: prev }) });
    }
  }
  return out;
}

/** Bytes one play is expected to read of a title: Σ weight × size (per slice where given), or the whole title. */
export function readBytes(files: readonly PlanFile[], weighted: boolean, sliceBytes: number): number {
  if (!weighted) return files.reduce((s, f) => s + f.size, 0);
  let sum = 0;
  for (const f of files) {
    if (!f.sliceWeights) {
      sum += (f.weight ?? 1) * f.size;
      continue;
    }
    f.sliceWeights.forEach((w, i) => (sum += w * Math.max(0, Math.min(sliceBytes, f.size - i * sliceBytes))));
  }
  return sum;
}

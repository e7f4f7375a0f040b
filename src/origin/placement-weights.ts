/**
 * The planner's file weights from what edges served (pure): FileWeights (file-weights.ts) in,
 * PlanTitle files with `weight` / `sliceWeights` out.
 *
 * Most titles have too few plays for weights of their own, yet viewing has a shape every title
 * shares: the top renditions are read most, and each rendition's first minutes more than its
 * last (a share of sessions stops early). So the weights of the titles with data are pooled,
 * play by play, by the file's place in its title — its rendition, ranked by size (bitrate),
 * and its position in it — and the pool is the prior of every file:
 *
 * - a title without data gets the prior of each of its files (and when its files have no shape
 *   to pool by, the catalog's mean read share: it is placed whole at an average title's value
 *   per byte — weight 1 would put an unknown title's every byte above the known titles' starts);
 * - a title with data gets its own weights, drawn towards the prior by PRIOR_PLAYS pseudo-plays
 *   (five plays are not enough to say that a rendition nobody chose is worth nothing).
 *
 * The place comes from the path alone: segments are numbered (`720p/seg_00012.m4s`,
 * `video_3_41.m4s`), so the path with its last number hidden names the rendition and the number
 * orders it. With no data at all nothing is weighted: the planner ranks whole titles, as before.
 */
import type { FileWeights } from './file-weights.js';
import type { PlanFile } from './placement-units.js';

export interface CatalogTitleFiles {
  title: string;
  bytes: number;
  files: readonly { path: string; size: number; sha256: string }[];
}

export interface WeightedTitle {
  title: string;
  bytes: number;
  files: PlanFile[];
}

/** Pseudo-plays of the prior in a title's own weights. */
export const PRIOR_PLAYS = 10;
/** Position bins of a rendition. */
const BINS = 20;
/** Renditions ranked past this pool together. */
const MAX_RANK = 15;

/** Where a file sits in its title: its rendition's rank by mean file size (0 = largest) and its position in it (0-1). */
export interface FileShape {
  /** The rendition: the path with its last number hidden. */
  group: string;
  rank: number;
  pos: number;
}

/** The last number of a path's stem (its extension — `.m4s`, `.mp4` — has digits too). */
const LAST_NUMBER = /(\d+)(?=\D*$)/;
const EXTENSION = /\.[A-Za-z0-9]+$/;

/** Every file's rendition rank and position, from the paths' numbering and the sizes. */
export function fileShapes(files: readonly { path: string; size: number }[]): Map<string, FileShape> {
  const groups = new Map<string, { path: string; n: number; size: number }[]>();
  for (const f of files) {
    const stem = f.path.replace(EXTENSION, '');
    const m = LAST_NUMBER.exec(stem);
    const key = m ? stem.slice(0, m.index) + '#' + f.path.slice(m.index + m[0].length) : f.path;
    const list = groups.get(key) ?? groups.set(key, []).get(key)!;
    list.push({ path: f.path, n: m ? Number(m[1]) : 0, size: f.size });
  }
  const ranked = [...groups]
    .map(([key, list]) => ({ key, list, mean: list.reduce((s, f) => s + f.size, 0) / list.length }))
    .sort((a, b) => b.mean - a.mean || (a.list[0]!.path < b.list[0]!.path ? -1 : 1));
  const out = new Map<string, FileShape>();
  ranked.forEach(({ key, list }, rank) => {
    list.sort((a, b) => a.n - b.n || (a.path < b.path ? -1 : 1));
    list.forEach((f, i) => out.set(f.path, { group: key, rank: Math.min(rank, MAX_RANK), pos: i / list.length }));
  });
  return out;
}

const cell = (s: FileShape) => s.rank * BINS + Math.min(BINS - 1, Math.floor(s.pos * BINS));

/** Shapes kept between plans (a title's files rarely change): title → its files' signature and shapes. */
export type ShapeCache = Map<string, { sig: string; shapes: Map<string, FileShape> }>;

export function weighTitles(titles: readonly CatalogTitleFiles[], weights: FileWeights, cache: ShapeCache = new Map()): WeightedTitle[] {
  const known = new Set(weights.titles());
  if (known.size === 0) return titles.map((t) => ({ title: t.title, bytes: t.bytes, files: t.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })) }));

  // The pool: read share per byte by (rendition rank, position bin), over the titles with data.
  const shapeOf = (t: CatalogTitleFiles) => {
    const sig = JSON.stringify([t.files.length, t.bytes, t.files[0]?.path, t.files.at(-1)?.path]);
    const hit = cache.get(t.title);
    if (hit?.sig === sig) return hit.shapes;
    const shapes = fileShapes(t.files);
    cache.set(t.title, { sig, shapes });
    return shapes;
  };
  const poolRead = new Float64Array((MAX_RANK + 1) * BINS);
  const poolBytes = new Float64Array((MAX_RANK + 1) * BINS);
  let read = 0;
  let bytes = 0;
  for (const t of titles) {
    if (!known.has(t.title)) continue;
    const shape = shapeOf(t);
    // Each title counts as many times as it was played: the pool is the shape of the plays.
    const n = weights.playsOf?.(t.title) ?? 1;
    for (const f of t.files) {
      const w = clamp(weights.weightOf(t.title, f.path) ?? 0);
      const c = cell(shape.get(f.path)!);
      poolRead[c]! += n * w * f.size;
      poolBytes[c]! += n * f.size;
      read += n * w * f.size;
      bytes += n * f.size;
    }
  }
  const mean = bytes > 0 ? read / bytes : 1;
  const prior = (s: FileShape) => {
    const c = cell(s);
    return poolBytes[c]! > 0 ? poolRead[c]! / poolBytes[c]! : mean;
  };

  return titles.map((t) => {
    const shape = shapeOf(t);
    if (!known.has(t.title)) {
      return { title: t.title, bytes: t.bytes, files: t.files.map((f) => ({ ...placeOf(shape.get(f.path)!), path: f.path, size: f.size, sha256: f.sha256, weight: prior(shape.get(f.path)!) })) };
    }
    const plays = weights.playsOf?.(t.title);
    const files = t.files.map((f): PlanFile => {
      const own = clamp(weights.weightOf(t.title, f.path) ?? 0);
      const weight = plays === undefined ? own : (plays * own + PRIOR_PLAYS * prior(shape.get(f.path)!)) / (plays + PRIOR_PLAYS);
      const slices = f.size > weights.sliceBytes ? weights.sliceWeights(t.title, f.path) : undefined;
      return { ...placeOf(shape.get(f.path)!), path: f.path, size: f.size, sha256: f.sha256, weight, ...(slices ? { sliceWeights: slices.map(clamp) } : {}) };
    });
    return { title: t.title, bytes: t.bytes, files };
  });
}

const clamp = (w: number) => Math.min(1, Math.max(0, w));
/** A file's rendition and place in it, for the planner's runs of segments. */
const placeOf = (s: FileShape) => ({ rendition: s.group, position: s.pos });

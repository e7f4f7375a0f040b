/**
 * The planner's file weights from what edges served (pure): FileWeights (file-weights.ts) in,
 * PlanTitle files with `weight` / `sliceWeights` out.
 *
 * A title with data gets its own weights (0 for a file nobody read). A title without data is
 * placed whole: every file weighs the catalog's mean read share (Σ weight × size / Σ size over
 * the titles with data), so it competes at the value per byte an average title has — weight 1
 * would rank an unknown title's every byte above the known titles' starts. With no data at all
 * nothing is weighted and the planner ranks whole titles by plays, as before.
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

export function weighTitles(titles: readonly CatalogTitleFiles[], weights: FileWeights): WeightedTitle[] {
  const known = new Set(weights.titles());
  const plain = (t: CatalogTitleFiles): WeightedTitle => ({ title: t.title, bytes: t.bytes, files: t.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })) });
  if (known.size === 0) return titles.map(plain);
  let read = 0;
  let bytes = 0;
  const out = new Map<string, WeightedTitle>();
  for (const t of titles) {
    if (!known.has(t.title)) continue;
    const files = t.files.map((f): PlanFile => {
      const weight = Math.min(1, Math.max(0, weights.weightOf(t.title, f.path) ?? 0));
      const slices = f.size > weights.sliceBytes ? weights.sliceWeights(t.title, f.path) : undefined;
      read += weight * f.size;
      bytes += f.size;
      return { path: f.path, size: f.size, sha256: f.sha256, weight, ...(slices ? { sliceWeights: slices.map((w) => Math.min(1, Math.max(0, w))) } : {}) };
    });
    out.set(t.title, { title: t.title, bytes: t.bytes, files });
  }
  const mean = bytes > 0 ? read / bytes : 1;
  return titles.map((t) => out.get(t.title) ?? { title: t.title, bytes: t.bytes, files: t.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256, weight: mean })) });
}

import { describe, expect, it } from 'vitest';
import { placedBytes } from '../src/common/fill-manifest.js';
import { type FileWeights, NO_FILE_WEIGHTS } from '../src/origin/file-weights.js';
import { type PlanNode, planFill } from '../src/origin/fill-planner.js';
import { type CatalogTitleFiles, PRIOR_PLAYS, fileShapes, weighTitles } from '../src/origin/placement-weights.js';

const MB = 1e6;

/** A title packaged as renditions of numbered segments: 1080p (4 MB), 480p (1 MB), 240p (0.25 MB), 20 each. */
function ladderTitle(title: string): CatalogTitleFiles {
  const files = [{ path: 'master.m3u8', size: 2_000, sha256: `${title}-m` }];
  for (const [name, size] of [['1080p', 4 * MB], ['480p', 1 * MB], ['240p', 0.25 * MB]] as const) {
    files.push({ path: `${name}/index.m3u8`, size: 3_000, sha256: `${title}-${name}-i` });
    for (let i = 1; i <= 20; i++) files.push({ path: `${name}/seg_${String(i).padStart(5, '0')}.m4s`, size, sha256: `${title}-${name}-${i}` });
  }
  return { title, bytes: files.reduce((s, f) => s + f.size, 0), files };
}

/** What a real viewing pattern reads: 1080p by 70 % of plays, 480p by 25 %, 240p by 5 %; half the sessions stop by segment 4. */
function trueWeight(path: string): number {
  const m = /^(\d+)p\/seg_(\d+)/.exec(path);
  if (!m) return 1;
  const share = m[1] === '1080' ? 0.7 : m[1] === '480' ? 0.25 : 0.05;
  const seg = Number(m[2]);
  return share * (seg <= 4 ? 1 : 0.5);
}

function fakeWeights(data: Record<string, { plays: number; weight: (path: string) => number }>, sliceData: Record<string, number[]> = {}): FileWeights {
  return {
    sliceBytes: 1 * MB,
    titles: () => Object.keys(data),
    weightOf: (t, f) => data[t]?.weight(f),
    sliceWeights: (t, f) => (data[t] ? sliceData[`${t}/${f}`] : undefined),
    playsOf: (t) => data[t]?.plays,
  };
}

describe('file weights for the planner', () => {
  it('readsEachFilesRenditionAndPositionFromItsPath', () => {
    const s = fileShapes(ladderTitle('x').files);
    expect(s.get('1080p/seg_00001.m4s')).toEqual({ group: '1080p/seg_#.m4s', rank: 0, pos: 0 });
    expect(s.get('1080p/seg_00011.m4s')).toEqual({ group: '1080p/seg_#.m4s', rank: 0, pos: 0.5 });
    expect(s.get('480p/seg_00001.m4s')).toEqual({ group: '480p/seg_#.m4s', rank: 1, pos: 0 });
    expect(s.get('240p/seg_00020.m4s')!.rank).toBe(2);
    expect(s.get('240p/seg_00020.m4s')!.pos).toBeCloseTo(0.95);
    // A segment's number, not the digits of .m4s or .mp4; numbers compared as numbers.
    const flat = fileShapes([{ path: 'v_2.m4s', size: 1 }, { path: 'v_10.m4s', size: 1 }, { path: 'v_1.m4s', size: 1 }, { path: 'init.mp4', size: 5 }]);
    expect([flat.get('v_1.m4s')!.pos, flat.get('v_2.m4s')!.pos, flat.get('v_10.m4s')!.pos]).toEqual([0, 1 / 3, 2 / 3]);
    expect(flat.get('init.mp4')).toEqual({ group: 'init.mp4', rank: 0, pos: 0 });
  });

  it('weighsNothingWithoutData', () => {
    const out = weighTitles([ladderTitle('a')], NO_FILE_WEIGHTS);
    for (const f of out[0]!.files) expect(f.weight).toBeUndefined();
  });

  it('givesATitleWithoutDataThePooledShapeOfTheTitlesWithData', () => {
    const known = ['k1', 'k2', 'k3'].map(ladderTitle);
    const data = Object.fromEntries(known.map((t) => [t.title, { plays: 500, weight: trueWeight }]));
    const unknown = ladderTitle('new');
    const out = new Map(weighTitles([...known, unknown], fakeWeights(data)).map((t) => [t.title, t]));
    const w = new Map(out.get('new')!.files.map((f) => [f.path, f.weight!]));
    // The prior is the pool: per rendition and position, the known titles' own weights.
    expect(w.get('1080p/seg_00001.m4s')).toBeCloseTo(0.7, 5);
    expect(w.get('1080p/seg_00020.m4s')).toBeCloseTo(0.35, 5);
    expect(w.get('480p/seg_00002.m4s')).toBeCloseTo(0.25, 5);
    expect(w.get('240p/seg_00019.m4s')).toBeCloseTo(0.025, 5);
    // A title with many plays keeps (almost) its own weights.
    const k1 = new Map(out.get('k1')!.files.map((f) => [f.path, f.weight!]));
    expect(k1.get('1080p/seg_00001.m4s')).toBeCloseTo(0.7, 5);
  });

  it('drawsATitleWithFewPlaysTowardsThePool', () => {
    const known = ['k1', 'k2', 'k3'].map(ladderTitle);
    const data: Record<string, { plays: number; weight: (p: string) => number }> = Object.fromEntries(known.map((t) => [t.title, { plays: 500, weight: trueWeight }]));
    // Five plays, all at 240p: by itself it would put its 1080p at nothing.
    data.odd = { plays: 5, weight: (p) => (p.startsWith('240p/') ? 1 : p.endsWith('.m3u8') ? 1 : 0) };
    const out = weighTitles([...known, ladderTitle('odd')], fakeWeights(data)).find((t) => t.title === 'odd')!;
    const w = new Map(out.files.map((f) => [f.path, f.weight!]));
    const pooled1080 = (500 * 3 * 0.7 + 5 * 0) / (500 * 3 + 5); // the pool includes the odd title's own zeros
    expect(w.get('1080p/seg_00001.m4s')).toBeCloseTo((PRIOR_PLAYS * pooled1080) / (5 + PRIOR_PLAYS), 2);
    expect(w.get('240p/seg_00001.m4s')).toBeGreaterThan(w.get('1080p/seg_00001.m4s')! * 0.5);
  });

  it('placesAnUnknownTitlesStartsAndTopRenditionBeforeItsTail', () => {
    const known = ['k1', 'k2', 'k3'].map(ladderTitle);
    const data = Object.fromEntries(known.map((t) => [t.title, { plays: 500, weight: trueWeight }]));
    const titles = weighTitles([...known, ladderTitle('new')], fakeWeights(data));
    const nodes: PlanNode[] = [{ id: 'e1', isp: 'isp-a', url: 'http://e1.test', diskBytes: 60 * MB }];
    // Only 'new' is predicted to be played: 54 MB of room for its 105 MB.
    const plan = planFill({ nodes, titles, prediction: new Map([['isp-a', new Map([['new', 10]])]]), pinned: new Map(), headroomRatio: 0.1, originUrl: 'http://o.test', generatedAt: 'x' });
    const placed = new Set(plan.manifests.get('e1')!.files.map((f) => f.file));
    expect(placed.has('1080p/seg_00001.m4s')).toBe(true);
    expect(placed.has('1080p/seg_00004.m4s')).toBe(true);
    expect(placed.has('480p/seg_00001.m4s')).toBe(true);
    expect(placed.has('240p/seg_00020.m4s')).toBe(false);
    expect(plan.manifests.get('e1')!.bytes).toBeLessThanOrEqual(54 * MB);
  });

  it('placesAPrefixRangeOfASingleFileTitleFromItsSliceWeights', () => {
    const single: CatalogTitleFiles = { title: 'film', bytes: 100 * MB, files: [{ path: 'film.mp4', size: 100 * MB, sha256: 'f'.repeat(64) }] };
    // Every play reads the first 10 MB, a fifth of them the rest.
    const slices = Array.from({ length: 100 }, (_, i) => (i < 10 ? 1 : 0.2));
    const weights = fakeWeights({ film: { plays: 50, weight: () => 0.28 } }, { 'film/film.mp4': slices });
    const titles = weighTitles([single], weights);
    expect(titles[0]!.files[0]!.sliceWeights).toHaveLength(100);
    const nodes: PlanNode[] = [{ id: 'e1', isp: 'isp-a', url: 'http://e1.test', diskBytes: 40 * MB, sliceBytes: 4 * MB }];
    const plan = planFill({ nodes, titles, weightSliceBytes: weights.sliceBytes, prediction: new Map([['isp-a', new Map([['film', 10]])]]), pinned: new Map(), headroomRatio: 0.1, originUrl: 'http://o.test', generatedAt: 'x' });
    const f = plan.manifests.get('e1')!.files[0]!;
    expect(f.file).toBe('film.mp4');
    expect(f.size).toBe(100 * MB);
    // A prefix on the node's slices, no more than the room (36 MB), at least the part every play reads.
    expect(f.range!.sliceBytes).toBe(4 * MB);
    expect(f.range!.end % (4 * MB)).toBe(0);
    expect(f.range!.end).toBeGreaterThanOrEqual(10 * MB);
    expect(f.range!.end).toBeLessThanOrEqual(36 * MB);
    expect(f.range!.sliceSha256).toEqual([]);
    expect(plan.manifests.get('e1')!.bytes).toBe(placedBytes(f));
    // With room for all of it, the whole file (no range).
    const big = planFill({ nodes: [{ ...nodes[0]!, diskBytes: 200 * MB }], titles, weightSliceBytes: weights.sliceBytes, prediction: new Map([['isp-a', new Map([['film', 10]])]]), pinned: new Map(), headroomRatio: 0.1, originUrl: 'http://o.test', generatedAt: 'x' });
    expect(big.manifests.get('e1')!.files[0]!.range).toBeUndefined();
  });

  it('placesLongRenditionsInBoundedRunsOfSegmentsStartFirst', () => {
    // Ten renditions of 1,800 4-second segments (two hours): 18,000 files.
    const files = [];
    for (let r = 0; r < 10; r++) for (let i = 0; i < 1800; i++) files.push({ path: `r${r}/seg${i}.m4s`, size: (r + 1) * 100_000, sha256: `${r}-${i}` });
    const long: CatalogTitleFiles = { title: 'long', bytes: files.reduce((s, f) => s + f.size, 0), files };
    const data = { long: { plays: 1000, weight: (p: string) => (p.startsWith('r9/') ? 0.5 : 0.05) * (Number(/seg(\d+)/.exec(p)![1]) < 300 ? 1 : 0.4) } };
    const titles = weighTitles([long], fakeWeights(data));
    const nodes: PlanNode[] = [{ id: 'e1', isp: 'isp-a', url: 'http://e1.test', diskBytes: 500 * MB }];
    const t0 = performance.now();
    const plan = planFill({ nodes, titles, prediction: new Map([['isp-a', new Map([['long', 10]])]]), pinned: new Map(), headroomRatio: 0.1, originUrl: 'http://o.test', generatedAt: 'x' });
    const ms = performance.now() - t0;
    expect(ms).toBeLessThan(2000);
    const placed = plan.manifests.get('e1')!.files.map((f) => f.file);
    // The top rendition's start first, as runs: seg0 onwards without a hole.
    const top = placed.filter((f) => f.startsWith('r9/')).map((f) => Number(/seg(\d+)/.exec(f)![1])).sort((a, b) => a - b);
    expect(top.length).toBeGreaterThan(300);
    expect(top).toEqual(top.map((_x, i) => i));
    expect(plan.manifests.get('e1')!.bytes).toBeLessThanOrEqual(450 * MB);
  });
});

import { describe, expect, it } from 'vitest';
import { type PlanInput, type PlanNode, type PlanTitle, planFill } from '../src/origin/fill-planner.js';
import type { Prediction } from '../src/origin/popularity.js';

const MB = 1e6;

/** Titles of `segments` equal one-file segments; weight = the share of plays still watching at the segment's start. */
function titles(n: number, segments: number, weighted: boolean): PlanTitle[] {
  // Half the sessions stop in the first tenth, a third finish, the rest stop evenly in between.
  const survival = (x: number) => (x < 0.1 ? 1 - 5 * x : 0.5 - ((x - 0.1) / 0.9) * (0.5 - 1 / 3));
  return Array.from({ length: n }, (_, i) => {
    const title = `title-${i}`;
    const files = Array.from({ length: segments }, (_, j) => ({
      path: `seg${j}.m4s`,
      size: 10 * MB,
      sha256: `${title}-${j}`.padEnd(64, '0'),
      ...(weighted ? { weight: survival(j / segments) } : {}),
    }));
    return { title, bytes: segments * 10 * MB, files };
  });
}

function nodes(n: number, diskBytes: number): PlanNode[] {
  return Array.from({ length: n }, (_, i) => ({ id: `e${i + 1}`, isp: 'isp-a', url: `http://e${i + 1}.test`, diskBytes }));
}

function input(over: Partial<PlanInput> & Pick<PlanInput, 'nodes' | 'titles' | 'prediction'>): PlanInput {
  return { pinned: new Map(), headroomRatio: 0.1, originUrl: 'http://origin.test', generatedAt: '2024-06-01T00:00:00Z', ...over };
}

describe('file-weighted (prefix) placement', () => {
  const n = 300;
  const weighted = titles(n, 20, true);
  const whole = titles(n, 20, false);
  const plays = new Map(weighted.map((t, i) => [t.title, 1000 / Math.pow(i + 1, 0.8)]));
  const prediction: Prediction = new Map([['isp-a', plays]]);
  const edges = nodes(3, 2000 * MB); // 3 × 1.8 GB usable for a 60 GB catalog
  const pw = planFill(input({ nodes: edges, titles: weighted, prediction }));
  const pu = planFill(input({ nodes: edges, titles: whole, prediction }));
  const weightOf = new Map(weighted.flatMap((t) => t.files.map((f) => [`${t.title}/${f.path}`, f.weight!])));
  // Expected bytes a day's plays read from what is placed (one copy counted per title).
  const expectedHits = (plan: ReturnType<typeof planFill>) =>
    plan.placements.reduce((s, p) => s + (p.files ?? weighted[0]!.files.map((f) => f.path)).reduce((x, f) => x + plays.get(p.title)! * weightOf.get(`${p.title}/${f}`)! * 10 * MB, 0), 0);

  it('placesTheStartsOfMoreTitlesAndExpectsMoreBytesServed', () => {
    expect(pw.placements.length).toBeGreaterThan(pu.placements.length * 1.5);
    // Modest with this curve (a third of sessions finish): a tail is worth a third of a head.
    expect(expectedHits(pw)).toBeGreaterThan(expectedHits(pu) * 1.01);
    console.log(`prefix placement: ${pw.placements.length} titles vs ${pu.placements.length} whole; expected hit bytes +${((expectedHits(pw) / expectedHits(pu) - 1) * 100).toFixed(1)}%`);
  });

  it('respectsDisksAndGivesEveryHolderOfATitleTheSameFiles', () => {
    for (const e of edges) expect(pw.manifests.get(e.id)!.bytes).toBeLessThanOrEqual(e.diskBytes * 0.9);
    for (const p of pw.placements) {
      const sets = p.nodes.map((id) => pw.manifests.get(id)!.files.filter((f) => f.title === p.title).map((f) => f.file).sort());
      for (const s of sets) expect(s).toEqual([...p.files!].sort());
    }
  });

  it('placesPrefixesInOrder', () => {
    for (const p of pw.placements) {
      const idx = p.files!.map((f) => Number(/seg(\d+)/.exec(f)![1])).sort((a, b) => a - b);
      expect(idx).toEqual(idx.map((_x, i) => i)); // seg0..segK, no gaps (equal file sizes)
    }
    // The most popular title is placed whole, on every node (its share of demand is large).
    const top = pw.placements.find((p) => p.title === 'title-0')!;
    expect(top.files!.length).toBe(20);
  });

  it('pinsConfiguredTitlesWholeOnEveryNodeFirst', () => {
    const p = planFill(input({ nodes: edges, titles: weighted, prediction, pinned: new Map([['isp-a', ['title-299']]]) }));
    for (const e of edges) {
      const m = p.manifests.get(e.id)!;
      expect(m.files.slice(0, 20).map((f) => f.title)).toEqual(Array(20).fill('title-299'));
      expect(m.files.slice(0, 20).map((f) => f.file)).toEqual(weighted[299]!.files.map((f) => f.path));
    }
  });

  it('keepsPeersBeforeTheOriginPerFile', () => {
    for (const p of pw.placements) {
      p.nodes.forEach((id, replica) => {
        for (const f of pw.manifests.get(id)!.files.filter((x) => x.title === p.title)) expect(f.sources.map((s) => s.id)).toEqual([...p.nodes.slice(0, replica), 'origin']);
      });
    }
  });

  it('leavesUnweightedPlansAsTheyWere', () => {
    for (const p of pu.placements) expect(p.files).toBeUndefined();
  });
});

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/common/config.js';
import { type Plan, type PlanInput, type PlanNode, type PlanTitle, type StabilityOptions, planChurn, planFill } from '../src/origin/fill-planner.js';
import type { Prediction } from '../src/origin/popularity.js';
import { seededRandom as rng } from '../bench/seeded-random.js';
import { testCluster } from './helpers/cluster.js';

const GB = 1e9;
const STABLE: StabilityOptions = { stayRatio: 0.8, enterRatio: 1, maxChurnRatio: 0.05 };

function titles(n: number, seed = 7): PlanTitle[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const title = `title-${i}`;
    const sizes = [Math.round((0.5 + 3.5 * r()) * GB), Math.round(0.001 * GB)];
    const files = sizes.map((size, j) => ({ path: j === 0 ? 'video.mp4' : 'index.m3u8', size, sha256: createHash('sha256').update(`${title}/${j}`).digest('hex') }));
    return { title, bytes: sizes[0]! + sizes[1]!, files };
  });
}

function zipf(list: PlanTitle[], s = 1, total = 100_000, shuffleSeed = 3): Map<string, number> {
  const r = rng(shuffleSeed);
  const order = list.map((t) => t.title).sort(() => r() - 0.5);
  const h = order.reduce((sum, _t, i) => sum + 1 / Math.pow(i + 1, s), 0);
  return new Map(order.map((t, i) => [t, total / Math.pow(i + 1, s) / h]));
}

function nodes(isp: string, n: number, diskBytes: number): PlanNode[] {
  return Array.from({ length: n }, (_, i) => ({ id: `${isp}-e${i + 1}`, isp, url: `http://${isp}-e${i + 1}.test`, diskBytes }));
}

function input(over: Partial<PlanInput> & Pick<PlanInput, 'nodes' | 'titles' | 'prediction'>): PlanInput {
  return { pinned: new Map(), headroomRatio: 0.1, originUrl: 'http://origin.test', generatedAt: '2024-06-01T00:00:00Z', ...over };
}

const wobble = (p: Prediction, seed: number): Prediction => {
  const r = rng(seed);
  return new Map([...p].map(([isp, m]) => [isp, new Map([...m].map(([t, v]) => [t, v * (0.9 + 0.2 * r())]))]));
};
const plannedBytes = (p: Plan) => [...p.manifests.values()].reduce((s, m) => s + m.bytes, 0);
const placedOn = (p: Plan, isp: string) => new Set(p.placements.filter((x) => x.isp === isp).map((x) => x.title));
/** Bytes each node is asked to fetch that it did not hold. */
const churnByNode = (before: Plan, after: Plan) =>
  new Map([...after.manifests.keys()].map((id) => [id, planChurn({ manifests: new Map([[id, before.manifests.get(id)!]]) }, { manifests: new Map([[id, after.manifests.get(id)!]]) }).bytes]));

describe('stable placement', () => {
  const catalog = titles(400);
  const ispA = nodes('isp-a', 3, 200 * GB);
  const ispB = nodes('isp-b', 2, 150 * GB);
  const all = [...ispA, ...ispB];
  const base: Prediction = new Map([['isp-a', zipf(catalog, 1, 100_000, 3)], ['isp-b', zipf(catalog, 0.9, 50_000, 11)]]);
  const night0 = planFill(input({ nodes: all, titles: catalog, prediction: base }));
  /** The lowest score placed in isp-a: the cut. */
  const cutA = Math.min(...night0.placements.filter((p) => p.isp === 'isp-a').map((p) => p.score));

  it('keepsNightlyChurnUnderOnePercentOfPlannedBytesUnderTenPercentNoise', () => {
    let stable = night0;
    let fresh = night0;
    const ratios: number[] = [];
    const without: number[] = [];
    for (let night = 1; night <= 7; night++) {
      const prediction = wobble(base, 100 + night);
      const next = planFill(input({ nodes: all, titles: catalog, prediction, previous: stable, stability: STABLE }));
      ratios.push(planChurn(stable, next).bytes / plannedBytes(stable));
      stable = next;
      const f = planFill(input({ nodes: all, titles: catalog, prediction }));
      without.push(planChurn(fresh, f).bytes / plannedBytes(fresh));
      fresh = f;
    }
    console.log(`churn a night under ±10% noise, 7 nights: with hysteresis max ${(Math.max(...ratios) * 100).toFixed(2)}%, planned from scratch max ${(Math.max(...without) * 100).toFixed(2)}%`);
    for (const x of ratios) expect(x).toBeLessThanOrEqual(0.01);
    expect(Math.max(...without)).toBeGreaterThan(0.01); // the noise is enough to move a plan made from scratch
    // Still a full plan: the disks stay packed.
    for (const n of all) expect(stable.manifests.get(n.id)!.bytes).toBeGreaterThan(n.diskBytes * 0.9 - 4.1 * GB);
  });

  it('keepsATitleInsideTheBandAndKeepsOutANewOneBelowTheCut', () => {
    const placed = night0.placements.filter((p) => p.isp === 'isp-a');
    const inside = placed[placed.length - 5]!.title;
    const outside = [...base.get('isp-a')!].sort((a, b) => b[1] - a[1]).find(([t]) => !placeSet(night0).has(t))![0];
    const a = new Map(base.get('isp-a')!);
    a.set(inside, cutA * 0.85);
    a.set(outside, cutA * 0.95);
    const next = planFill(input({ nodes: all, titles: catalog, prediction: new Map([...base, ['isp-a', a]]), previous: night0, stability: STABLE }));
    expect(placedOn(next, 'isp-a').has(inside)).toBe(true);
    expect(placedOn(next, 'isp-a').has(outside)).toBe(false);
    // On the same nodes: nothing moved.
    expect(next.placements.find((p) => p.isp === 'isp-a' && p.title === inside)!.nodes).toEqual(night0.placements.find((p) => p.isp === 'isp-a' && p.title === inside)!.nodes);
    function placeSet(p: Plan) {
      return placedOn(p, 'isp-a');
    }
  });

  it('letsATitleFarBelowTheCutGoWhenABetterOneNeedsItsRoom', () => {
    const placed = night0.placements.filter((p) => p.isp === 'isp-a' && p.nodes.length === 1);
    const falling = placed[Math.floor(placed.length / 2)]!;
    const a = new Map(base.get('isp-a')!);
    a.set(falling.title, cutA * 0.01);
    // Titles nobody placed become hits: more than the falling title's room, inside one night's budget.
    const risers = catalog.filter((t) => !placedOn(night0, 'isp-a').has(t.title)).slice(0, 12);
    const top = Math.max(...a.values());
    risers.forEach((t, i) => a.set(t.title, top * (1 - i / 100)));
    const next = planFill(input({ nodes: all, titles: catalog, prediction: new Map([...base, ['isp-a', a]]), previous: night0, stability: STABLE }));
    expect(placedOn(next, 'isp-a').has(falling.title)).toBe(false);
    const entered = risers.filter((t) => placedOn(next, 'isp-a').has(t.title));
    expect(entered.length).toBeGreaterThan(0);
    // Best first: the risers that entered are the highest-scored ones.
    expect(entered.map((t) => t.title)).toEqual(risers.slice(0, entered.length).map((t) => t.title));
    // Each node fetched at most its budget: the room last night's plan left free + 5 % of its disk.
    for (const [id, bytes] of churnByNode(night0, next)) {
      const disk = all.find((n) => n.id === id)!.diskBytes;
      expect(bytes).toBeLessThanOrEqual(disk * 0.9 - night0.manifests.get(id)!.bytes + 0.05 * disk);
    }
    // A title nobody plays any more leaves at once, entrants or not.
    const gone = new Map(base.get('isp-a')!);
    gone.delete(falling.title);
    const quiet = planFill(input({ nodes: all, titles: catalog, prediction: new Map([...base, ['isp-a', gone]]), previous: night0, stability: STABLE }));
    expect(placedOn(quiet, 'isp-a').has(falling.title)).toBe(false);
  });

  it('capsEveryNodesChurnAtMaxChurnRatioOfItsDiskWhateverPopularityDoes', () => {
    // A different world overnight: a new random order of the whole catalog.
    const upside: Prediction = new Map([['isp-a', zipf(catalog, 1, 100_000, 77)], ['isp-b', zipf(catalog, 0.9, 50_000, 78)]]);
    const next = planFill(input({ nodes: all, titles: catalog, prediction: upside, previous: night0, stability: STABLE }));
    for (const [id, bytes] of churnByNode(night0, next)) {
      const disk = all.find((n) => n.id === id)!.diskBytes;
      // The budget: the room last night's plan left free (under a title's size) + 5 % of the disk.
      const free = disk * 0.9 - night0.manifests.get(id)!.bytes;
      expect(bytes).toBeLessThanOrEqual(free + 0.05 * disk);
      expect(bytes).toBeGreaterThan(0.02 * disk); // and it is spent
    }
    // The best newcomer of each ISP is among what got in.
    for (const isp of ['isp-a', 'isp-b']) {
      const best = [...upside.get(isp)!].sort((x, y) => y[1] - x[1]).find(([t]) => !placedOn(night0, isp).has(t))![0];
      expect(placedOn(next, isp).has(best)).toBe(true);
    }
    // Without a standing plan the same night moves far more.
    const fresh = planFill(input({ nodes: all, titles: catalog, prediction: upside }));
    expect(planChurn(night0, fresh).bytes).toBeGreaterThan(5 * planChurn(night0, next).bytes);
  });

  it('refillsOnlyTheFilesWhoseContentChanged', () => {
    const title = night0.placements.find((p) => p.isp === 'isp-a' && p.nodes.length === 1)!.title;
    const changed = catalog.map((t) => (t.title === title ? { ...t, files: t.files.map((f) => (f.path === 'video.mp4' ? { ...f, sha256: 'ff'.repeat(32) } : f)) } : t));
    const next = planFill(input({ nodes: all, titles: changed, prediction: base, previous: night0, stability: STABLE }));
    const video = catalog.find((t) => t.title === title)!.files[0]!;
    const copies = next.placements.filter((p) => p.title === title).reduce((s, p) => s + p.nodes.length, 0);
    expect(planChurn(night0, next)).toEqual({ bytes: video.size * copies, files: copies });
  });

  it('plansAsBeforeWithoutAStandingPlan', () => {
    const again = planFill(input({ nodes: all, titles: catalog, prediction: base, stability: STABLE }));
    expect(placedOn(again, 'isp-a')).toEqual(placedOn(night0, 'isp-a'));
    expect(planChurn(night0, again).bytes).toBe(0);
  });
});

describe('spare replicas', () => {
  const catalog = titles(40, 5);
  const three = nodes('isp-s', 3, 100 * GB); // 270 GB usable for ~90 GB of titles
  const plays = zipf(catalog, 1, 10_000, 9);
  const prediction: Prediction = new Map([['isp-s', plays]]);
  const plain = planFill(input({ nodes: three, titles: catalog, prediction }));
  const spare = planFill(input({ nodes: three, titles: catalog, prediction, spareReplicas: true }));
  const copies = (p: Plan) => new Map(p.placements.map((x) => [x.title, x.nodes.length]));

  it('goToTheMostDemandedTitlesAfterEveryRankedTitleIsPlacedOnce', () => {
    const before = copies(plain);
    const after = copies(spare);
    expect(new Set(after.keys())).toEqual(new Set(before.keys()));
    let extra = 0;
    for (const [t, n] of after) {
      expect(n).toBeGreaterThanOrEqual(before.get(t)!);
      extra += n - before.get(t)!;
    }
    expect(extra).toBeGreaterThan(10);
    // More copies never go to a less demanded title.
    const ranked = [...after].sort((a, b) => plays.get(b[0])! - plays.get(a[0])!);
    for (let i = 1; i < ranked.length; i++) expect(ranked[i]![1]).toBeLessThanOrEqual(ranked[i - 1]![1]);
    expect(ranked[0]![1]).toBe(3);
    for (const n of three) expect(spare.manifests.get(n.id)!.bytes).toBeLessThanOrEqual(n.diskBytes * 0.9);
    // A spare copy fetches from the copies before it, the origin last.
    for (const p of spare.placements) {
      for (const id of p.spare ?? []) {
        const f = spare.manifests.get(id)!.files.find((x) => x.title === p.title)!;
        expect(f.sources.map((s) => s.id)).toEqual([...p.nodes.slice(0, p.nodes.indexOf(id)), 'origin']);
      }
    }
  });

  it('neverPushOutARankedTitlesFirstCopy', () => {
    // Same first copies with and without spares.
    for (const p of plain.placements) expect(spare.placements.find((x) => x.title === p.title)!.nodes.slice(0, p.nodes.length)).toEqual(p.nodes);
    // Tomorrow the disks are tight (room for the ranked titles once, and a little more) and new titles arrive:
    // every ranked title still gets a first copy, spares give way.
    const more = [...catalog, ...titles(30, 6).map((t) => ({ ...t, title: `new-${t.title}` }))];
    const morePlays = new Map([...plays, ...more.slice(40).map((t, i) => [t.title, 50 - i] as [string, number])]);
    const small = nodes('isp-s', 3, 60 * GB);
    const tight = planFill(input({ nodes: small, titles: more, prediction: new Map([['isp-s', morePlays]]), previous: spare, stability: { ...STABLE, maxChurnRatio: 1 }, spareReplicas: true }));
    const need = more.reduce((s, t) => s + t.bytes, 0);
    expect(need).toBeLessThan(3 * 54 * GB);
    for (const t of more) expect(tight.placements.some((p) => p.title === t.title)).toBe(true);
    for (const n of small) expect(tight.manifests.get(n.id)!.bytes).toBeLessThanOrEqual(n.diskBytes * 0.9);
    const spares = (p: Plan) => p.placements.reduce((s, x) => s + (x.spare?.length ?? 0), 0);
    expect(spares(tight)).toBeLessThan(spares(spare));
  });

  it('giveTheirRoomAndTheirBudgetToNewRankedTitles', () => {
    // Disks the spare copies fill up (~90 GB of titles, 162 GB of room), then no churn allowance at
    // all: what the spare copies hold is the only room — and budget — there is.
    const mid = nodes('isp-s', 3, 60 * GB);
    const full = planFill(input({ nodes: mid, titles: catalog, prediction, spareReplicas: true }));
    for (const n of mid) expect(full.manifests.get(n.id)!.bytes).toBeGreaterThan(54 * GB - 4 * GB);
    const more = [...catalog, ...titles(10, 8).map((t) => ({ ...t, title: `new-${t.title}` }))];
    const morePlays = new Map([...plays, ...more.slice(40).map((t) => [t.title, 1] as [string, number])]);
    const next = planFill(input({ nodes: mid, titles: more, prediction: new Map([['isp-s', morePlays]]), previous: full, stability: { ...STABLE, maxChurnRatio: 0 }, spareReplicas: true }));
    for (const t of more.slice(40)) expect(next.placements.some((p) => p.title === t.title)).toBe(true);
    // The ranked titles' copies did not move.
    for (const p of full.placements) {
      const primary = p.nodes.filter((n) => !(p.spare ?? []).includes(n));
      expect(next.placements.find((x) => x.title === p.title)!.nodes.slice(0, primary.length)).toEqual(primary);
    }
  });
});

describe('origin.fill settings', () => {
  const fill = (f: Record<string, unknown>) => () => testCluster({}, { origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'origin', fill: f } });

  it('defaultsToAStableBandACapAndSpareReplicas', () => {
    expect(fill({})().origin.fill).toMatchObject({ stayRatio: 0.8, enterRatio: 1, maxChurnRatio: 0.02, spareReplicas: true });
    expect(fill({ stayRatio: 0.7, enterRatio: 1.1, maxChurnRatio: 0.02, spareReplicas: false })().origin.fill).toMatchObject({ stayRatio: 0.7, enterRatio: 1.1, maxChurnRatio: 0.02, spareReplicas: false });
  });

  it('refusesABandUpsideDownOrOutOfRangeNamingTheField', () => {
    expect(fill({ stayRatio: 0 })).toThrow(ConfigError);
    expect(fill({ stayRatio: 1.2 })).toThrow(/origin\.fill\.stayRatio/);
    expect(fill({ stayRatio: 0.9, enterRatio: 0.8 })).toThrow(/origin\.fill\.enterRatio/);
    expect(fill({ maxChurnRatio: -0.1 })).toThrow(/origin\.fill\.maxChurnRatio/);
    expect(fill({ spareReplicas: 'yes' })).toThrow(/origin\.fill\.spareReplicas/);
  });
});

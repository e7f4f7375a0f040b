/**
 * `npm run bench:steering-balance` (and the balance rows of `npm run bench:steering`): where
 * steering's ranking puts new sessions, simulated. One ISP of 8 edges; 10,000 sessions over a
 * Zipf(1.0) catalog of 2,000 titles, arriving as a Poisson process over 3 hours and lasting a
 * drawn length (log-normal, mean 30 min); each plays one rung of a 4-rung ladder.
 *
 * The placement is steering's real code (src/steering/ranking.ts rankWithRules, bounded-load.ts
 * LoadTracker + computeBounds, the holders from the real fill planner, origin/fill-planner.ts
 * planFill, given the Zipf popularity), under four policies:
 *   plain ring       the title's ring order alone
 *   ring + holders   before issue 11: titles the fill placed first, clients spread over holders
 *   bounded loads    issue 11: ring + holders, an edge at or over 1.25 × the ISP mean skipped
 *   random           a uniformly random edge (no affinity at all: the balance reference)
 * Loads are what each edge would report in /health — open sessions (connections) and bytes/s —
 * observed every 500 ms (steering.healthIntervalMs) through the same smoothing steering uses;
 * a session is placed on the snapshot of the last poll, as a live steering does.
 *
 * Measured:
 *   max/mean   the busiest edge's sessions over the mean, sampled every poll once the ISP has
 *              reached steady state (20 min in, until arrivals stop): the mean over samples and
 *              the worst sample
 *   affinity   the share of sessions that land on an edge already holding the title: its disk
 *              (tonight's fill, then titles cached on demand, LRU, as many titles as the disk holds)
 * Goal (issue 11): bounded loads max/mean ≤ 1.25 with affinity ≥ 0.9 × plain ring's.
 * Sessions already placed stay where they are (steering moves a player only on its own hints).
 * Knobs: SEED (default 11).
 */
import { LRUCache } from 'lru-cache';
import { Ring } from '../src/common/ring.js';
import { type PlanNode, type PlanTitle, planFill } from '../src/origin/fill-planner.js';
import { LoadTracker, computeBounds } from '../src/steering/bounded-load.js';
import { rankWithRules } from '../src/steering/ranking.js';
import { seededRandom } from './seeded-random.js';

export interface BalanceSpec {
  seed: number;
  edges: number;
  sessions: number;
  titles: number;
  zipf: number;
  /** Arrivals spread over this many seconds. */
  arrivalSeconds: number;
  /** Mean session length, seconds (log-normal, σ = 0.8). */
  meanSessionSeconds: number;
  /** Titles one edge's disk holds. */
  titlesPerDisk: number;
  balanceFactor: number;
  pollMs: number;
}

export const DEFAULT_BALANCE_SPEC: BalanceSpec = {
  seed: 11,
  edges: 8,
  sessions: 10_000,
  titles: 2_000,
  zipf: 1.0,
  arrivalSeconds: 3 * 3600,
  meanSessionSeconds: 30 * 60,
  // 8 edges × 100 titles: the ISP's disks hold 40% of the catalog (the popular part, by fill).
  titlesPerDisk: 100,
  balanceFactor: 1.25,
  pollMs: 500,
};

/** Bit rates of the ladder a session plays one of (bits/s). */
const LADDER_BPS = [1_500_000, 3_000_000, 5_000_000, 8_000_000];
const TITLE_BYTES = 1_000_000_000;

export type Policy = 'plain ring' | 'ring + holders' | 'bounded loads' | 'random';
export const POLICIES: readonly Policy[] = ['plain ring', 'ring + holders', 'bounded loads', 'random'];

export interface BalanceRow {
  policy: Policy;
  /** Mean over steady-state samples of max/mean sessions per edge. */
  maxOverMean: number;
  /** The worst steady-state sample. */
  worstMaxOverMean: number;
  /** Share of sessions placed on an edge already holding the title. */
  affinity: number;
  /** Mean concurrent sessions per edge in steady state. */
  meanSessions: number;
}

interface Session {
  at: number;
  end: number;
  title: string;
  spreadKey: number;
  bps: number;
}

/** The same sessions for every policy. */
function drawSessions(spec: BalanceSpec): { sessions: Session[]; weights: number[]; titles: string[] } {
  const r = seededRandom(spec.seed);
  const titles = Array.from({ length: spec.titles }, (_, i) => `title-${String(i).padStart(4, '0')}`);
  const weights = titles.map((_, i) => 1 / (i + 1) ** spec.zipf);
  const total = weights.reduce((a, b) => a + b, 0);
  const cdf: number[] = [];
  let acc = 0;
  for (const w of weights) cdf.push((acc += w / total));
  const pick = (u: number) => {
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return titles[lo]!;
  };
  const sigma = 0.8;
  const mu = Math.log(spec.meanSessionSeconds) - (sigma * sigma) / 2;
  const rate = spec.sessions / spec.arrivalSeconds;
  const sessions: Session[] = [];
  let t = 0;
  for (let i = 0; i < spec.sessions; i++) {
    t += -Math.log(1 - r()) / rate;
    const gauss = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
    const length = Math.exp(mu + sigma * gauss);
    sessions.push({ at: t * 1000, end: (t + length) * 1000, title: pick(r()), spreadKey: (r() * 2 ** 32) >>> 0, bps: LADDER_BPS[Math.floor(r() * LADDER_BPS.length)]! });
  }
  return { sessions, weights, titles };
}

/** Tonight's fill for the ISP: the real planner, given the popularity the sessions follow. */
function fillHolders(spec: BalanceSpec, edgeIds: string[], titles: string[], weights: number[]): Map<string, Set<string>> {
  const nodes: PlanNode[] = edgeIds.map((id) => ({ id, isp: 'isp', url: `http://${id}`, diskBytes: (spec.titlesPerDisk * TITLE_BYTES) / 0.9 }));
  const planTitles: PlanTitle[] = titles.map((title) => ({ title, bytes: TITLE_BYTES, files: [{ path: 'all', size: TITLE_BYTES, sha256: '0'.repeat(64) }] }));
  const predicted = new Map(titles.map((t, i) => [t, weights[i]! * spec.sessions]));
  const plan = planFill({
    nodes,
    titles: planTitles,
    prediction: new Map([['isp', predicted]]),
    pinned: new Map(),
    headroomRatio: 0.1,
    originUrl: 'http://origin',
    generatedAt: new Date(0).toISOString(),
  });
  const holders = new Map<string, Set<string>>();
  for (const p of plan.placements) holders.set(p.title, new Set(p.nodes));
  return holders;
}

/** Runs every policy over the same sessions. Deterministic for a seed. */
export function runBalanceBench(spec: BalanceSpec = DEFAULT_BALANCE_SPEC): BalanceRow[] {
  const { sessions, weights, titles } = drawSessions(spec);
  const edges = Array.from({ length: spec.edges }, (_, i) => ({ id: `edge-${i + 1}`, isp: 'isp' }));
  const edgeIds = edges.map((e) => e.id);
  const edgesById = new Map(edges.map((e) => [e.id, e]));
  const ring = new Ring(edgeIds);
  const eligible = new Set(edgeIds);
  const holders = fillHolders(spec, edgeIds, titles, weights);
  const steadyFrom = 20 * 60 * 1000;
  const steadyTo = spec.arrivalSeconds * 1000;

  return POLICIES.map((policy) => {
    const r = seededRandom(spec.seed ^ 0x5bd1e995);
    // Each edge's disk: tonight's fill first, then what it caches on demand (LRU of titles).
    const disks = new Map(edgeIds.map((id) => [id, new LRUCache<string, true>({ max: spec.titlesPerDisk })]));
    for (const [title, on] of holders) for (const id of on) disks.get(id)!.set(title, true);
    const active = new Map(edgeIds.map((id) => [id, { sessions: 0, bps: 0 }]));
    const ends: { end: number; edge: string; bps: number }[] = [];
    const loads = new LoadTracker();
    let bounds = computeBounds(edges, loads.all(), eligible, spec.balanceFactor);
    let nextPoll = 0;
    let hits = 0;
    const samples: number[] = [];
    let sessionSum = 0;

    const closeUntil = (t: number) => {
      // `ends` is kept sorted by end time (insertion below).
      while (ends.length > 0 && ends[0]!.end <= t) {
        const e = ends.shift()!;
        const a = active.get(e.edge)!;
        a.sessions--;
        a.bps -= e.bps;
      }
    };
    const pollUntil = (t: number) => {
      while (nextPoll <= t) {
        closeUntil(nextPoll);
        for (const id of edgeIds) {
          const a = active.get(id)!;
          loads.observe(id, { connections: a.sessions, bytesPerSec: a.bps / 8 });
        }
        bounds = computeBounds(edges, loads.all(), eligible, spec.balanceFactor);
        if (nextPoll >= steadyFrom && nextPoll <= steadyTo) {
          const counts = edgeIds.map((id) => active.get(id)!.sessions);
          const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
          if (mean > 0) samples.push(Math.max(...counts) / mean);
          sessionSum += mean;
        }
        nextPoll += spec.pollMs;
      }
    };

    for (const s of sessions) {
      pollUntil(s.at);
      closeUntil(s.at);
      let edge: string;
      if (policy === 'random') edge = edgeIds[Math.floor(r() * edgeIds.length)]!;
      else {
        const input = { title: s.title, isp: 'isp', edgesById, ring, eligible, spreadKey: s.spreadKey };
        const ranked =
          policy === 'plain ring'
            ? rankWithRules(input)
            : policy === 'ring + holders'
              ? rankWithRules({ ...input, holders: holders.get(s.title) })
              : rankWithRules({ ...input, holders: holders.get(s.title), bounds });
        edge = ranked[0]!.edge.id;
      }
      const disk = disks.get(edge)!;
      if (disk.get(s.title)) hits++;
      else disk.set(s.title, true);
      const a = active.get(edge)!;
      a.sessions++;
      a.bps += s.bps;
      const item = { end: s.end, edge, bps: s.bps };
      let lo = 0;
      let hi = ends.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (ends[mid]!.end <= s.end) lo = mid + 1;
        else hi = mid;
      }
      ends.splice(lo, 0, item);
    }
    pollUntil(steadyTo);
    return {
      policy,
      maxOverMean: samples.reduce((a, b) => a + b, 0) / samples.length,
      worstMaxOverMean: Math.max(...samples),
      affinity: hits / sessions.length,
      meanSessions: sessionSum / samples.length,
    };
  });
}

/** The rows as bench:steering prints them, with the verdict on issue 11's goal. */
export function formatBalanceRows(rows: BalanceRow[], spec: BalanceSpec = DEFAULT_BALANCE_SPEC): string {
  const plain = rows.find((r) => r.policy === 'plain ring')!;
  const bounded = rows.find((r) => r.policy === 'bounded loads')!;
  const lines = [
    `balance: ${spec.edges} edges in one ISP, ${spec.sessions.toLocaleString('en')} sessions over Zipf(${spec.zipf}) of ${spec.titles.toLocaleString('en')} titles ` +
      `in ${spec.arrivalSeconds / 3600} h, mean ${spec.meanSessionSeconds / 60} min each; disks hold ${spec.titlesPerDisk} titles; seed ${spec.seed} (steady state: ${Math.round(rows[0]!.meanSessions)} sessions per edge)`,
    'policy           max/mean  worst max/mean  affinity  affinity vs plain ring',
  ];
  for (const r of rows) {
    lines.push(
      `${r.policy.padEnd(16)} ${r.maxOverMean.toFixed(3).padStart(8)}  ${r.worstMaxOverMean.toFixed(3).padStart(14)}  ${r.affinity.toFixed(3).padStart(8)}  ${(r.affinity / plain.affinity).toFixed(3).padStart(22)}`,
    );
  }
  const ok = bounded.maxOverMean <= spec.balanceFactor && bounded.affinity >= 0.9 * plain.affinity;
  lines.push(
    `goal: bounded loads max/mean ≤ ${spec.balanceFactor} (${bounded.maxOverMean.toFixed(3)}) with affinity ≥ 0.9 × plain ring's (${(bounded.affinity / plain.affinity).toFixed(3)}×): ${ok ? 'met' : 'MISSED'}`,
  );
  return `${lines.join('\n')}\n`;
}

// `node dist/bench/steering-balance.js`: this bench alone.
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const spec = { ...DEFAULT_BALANCE_SPEC, seed: Number(process.env.SEED ?? DEFAULT_BALANCE_SPEC.seed) };
  const t0 = performance.now();
  const rows = runBalanceBench(spec);
  process.stdout.write(formatBalanceRows(rows, spec));
  process.stdout.write(`(simulated in ${Math.round(performance.now() - t0)} ms)\n`);
}

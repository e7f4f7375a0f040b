/**
 * `npm run bench:offload [-- --real]`: a simulated week of demand run through the real fill
 * planner (planFill + predictPopularity) and a model of the edges' disks, comparing nightly
 * proactive fill + on-demand caching against on-demand LRU alone on the same disks.
 * `--real` also runs a small version through real processes (a real origin, real edge
 * processes, clients making range requests to the edge steering would pick) next to the model
 * of the same small cluster. Method and results: docs/fill.md.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Pool } from 'undici';
import { systemClock } from '../src/common/clock.js';
import { Ring } from '../src/common/ring.js';
import { signQuery } from '../src/common/signing.js';
import { ingestTitle } from '../src/origin/ingest.js';
import { type PlanNode, type PlanTitle, planFill } from '../src/origin/fill-planner.js';
import type { DayCounts } from '../src/origin/plays.js';
import { predictPopularity } from '../src/origin/popularity.js';
import { CLUSTER_ADMIN_TOKEN, makeCluster, startOrigin, writeHlsTitle } from './offload-cluster.js';

const DAY = 86_400_000;
const DAY0 = Date.parse('2024-06-01T12:00:00Z');

// ---------- the simulated world ----------

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}
function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

export interface WorldSpec {
  seed: number;
  isps: { id: string; edges: number }[];
  /** Catalog titles at the start. */
  titles: number;
  /** Title sizes: lognormal, clamped to [0.5, 4] × `unit` bytes (median 1.3 units). */
  unit: number;
  /** Bytes per file (segment) of a title. */
  fileBytes: number;
  /** Cache granularity (the edges' slice). */
  sliceBytes: number;
  /** Catalog bytes / all edges' disk bytes. */
  catalogOverDisk: number;
  zipf: number;
  /** Day-to-day log-normal drift of each title's popularity. */
  drift: number;
  releasesPerDay: number;
  playsPerIspPerDay: number;
  warmupDays: number;
  days: number;
  headroomRatio: number;
  halfLifeDays: number;
}

const envNum = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d);

export const BIG: WorldSpec = {
  seed: 42,
  isps: [{ id: 'isp-a', edges: 3 }, { id: 'isp-b', edges: 3 }],
  titles: 3000,
  unit: 1e9,
  fileBytes: 200e6,
  sliceBytes: 16 * 1024 * 1024,
  catalogOverDisk: 5,
  zipf: envNum('ZIPF', 1.1),
  drift: envNum('DRIFT', 0.15),
  releasesPerDay: 4,
  playsPerIspPerDay: envNum('PLAYS', 8000),
  warmupDays: 3,
  days: 7,
  headroomRatio: 0.1,
  halfLifeDays: 2,
};

export const SMALL: WorldSpec = {
  ...BIG,
  isps: [{ id: 'isp-a', edges: 3 }],
  titles: 60,
  unit: 1e6,
  fileBytes: 256 * 1024,
  sliceBytes: 64 * 1024,
  releasesPerDay: 1,
  playsPerIspPerDay: 150,
  warmupDays: 2,
  days: 5,
};

interface SimTitle {
  title: string;
  files: number[];
  bytes: number;
  releaseDay: number;
}

interface Play {
  isp: string;
  title: string;
  /** Bytes watched from the start of the title. */
  watched: number;
}

export interface World {
  spec: WorldSpec;
  titles: SimTitle[];
  diskBytes: number;
  /** Plays of each simulated day (warm-up included). */
  plays: Play[][];
}

export function makeWorld(spec: WorldSpec): World {
  const r = rng(spec.seed);
  const totalDays = spec.warmupDays + spec.days;
  const sizeOf = () => Math.min(4, Math.max(0.5, 1.3 * Math.exp(0.6 * gauss(r)))) * spec.unit;
  const mk = (name: string, releaseDay: number): SimTitle => {
    const bytes = Math.round(sizeOf());
    const files: number[] = [];
    for (let left = bytes; left > 0; left -= spec.fileBytes) files.push(Math.min(spec.fileBytes, left));
    return { title: name, files, bytes, releaseDay };
  };
  const titles: SimTitle[] = Array.from({ length: spec.titles }, (_, i) => mk(`t${i}`, -1_000));
  for (let d = 0; d < totalDays; d++) for (let k = 0; k < spec.releasesPerDay; k++) titles.push(mk(`new-d${d}-${k}`, d));
  const base = titles.filter((t) => t.releaseDay < 0);
  const catalogBytes = base.reduce((s, t) => s + t.bytes, 0);
  // The catalog is `catalogOverDisk` × all the edges' disks together.
  const edges = spec.isps.reduce((s, i) => s + i.edges, 0);
  const diskBytes = Math.floor(catalogBytes / spec.catalogOverDisk / edges);

  // Per ISP: a Zipf weight from its own random rank order, drifting day to day.
  const logw = new Map<string, Map<string, number>>();
  for (const isp of spec.isps) {
    const order = base.map((t) => t.title).sort(() => r() - 0.5);
    logw.set(isp.id, new Map(order.map((t, i) => [t, -spec.zipf * Math.log(i + 1)])));
  }
  const plays: Play[][] = [];
  for (let d = 0; d < totalDays; d++) {
    const day: Play[] = [];
    for (const isp of spec.isps) {
      const w = logw.get(isp.id)!;
      for (const [t, v] of w) w.set(t, v + spec.drift * gauss(r));
      // Releases enter near the top (a new hit: rank 1-20 weight) and fade by a third each day.
      for (const t of titles.filter((x) => x.releaseDay === d)) w.set(t.title, -spec.zipf * Math.log(1 + 20 * r()));
      for (const t of titles.filter((x) => x.releaseDay >= 0 && x.releaseDay < d)) w.set(t.title, w.get(t.title)! + Math.log(0.67));
      const list = [...w];
      const cum: number[] = [];
      let sum = 0;
      for (const [, v] of list) cum.push((sum += Math.exp(v)));
      const byName = new Map(titles.map((t) => [t.title, t]));
      for (let k = 0; k < spec.playsPerIspPerDay; k++) {
        const x = r() * sum;
        let lo = 0;
        let hi = cum.length - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (cum[mid]! < x) lo = mid + 1;
          else hi = mid;
        }
        const t = byName.get(list[lo]![0])!;
        // Most plays watch most of a title; some stop early.
        const frac = r() < 0.3 ? 0.05 + 0.45 * r() : 0.5 + 0.5 * r();
        day.push({ isp: isp.id, title: t.title, watched: Math.max(1, Math.floor(frac * t.bytes)) });
      }
    }
    plays.push(day);
  }
  return { spec, titles, diskBytes, plays };
}

/** The slices a play reads: [file index, slice index, bytes of the slice]. */
function* slicesOf(t: SimTitle, watched: number, sliceBytes: number): Generator<[number, number, number]> {
  let left = watched;
  for (let f = 0; f < t.files.length && left > 0; f++) {
    const size = t.files[f]!;
    for (let s = 0; s * sliceBytes < size && left > 0; s++) {
      const b = Math.min(sliceBytes, size - s * sliceBytes);
      yield [f, s, b];
      left -= b;
    }
  }
}

export function planTitles(world: World, day: number): PlanTitle[] {
  return world.titles
    .filter((t) => t.releaseDay <= day)
    .map((t) => ({ title: t.title, bytes: t.bytes, files: t.files.map((size, i) => ({ path: `seg${i}.m4s`, size, sha256: `${t.title}-${i}` })) }));
}

/** Titles pinned by config the night before `day`: that day's and yesterday's releases. */
export function pinnedFor(world: World, day: number): Map<string, string[]> {
  const list = world.titles.filter((t) => t.releaseDay === day || t.releaseDay === day - 1).map((t) => t.title);
  return new Map(world.spec.isps.map((i) => [i.id, list]));
}

// ---------- the model of an edge: pinned fill set + byte LRU of slices, one disk ----------

class EdgeModel {
  pinned = new Set<string>();
  pinnedBytes = 0;
  private lru = new Map<string, number>();
  private lruBytes = 0;
  constructor(readonly disk: number) {}

  setPinned(titles: Set<string>, bytesOf: (t: string) => number): void {
    this.pinned = titles;
    this.pinnedBytes = [...titles].reduce((s, t) => s + bytesOf(t), 0);
    this.evict();
  }

  private evict(): void {
    for (const [k, b] of this.lru) {
      if (this.lruBytes + this.pinnedBytes <= this.disk) break;
      this.lru.delete(k);
      this.lruBytes -= b;
    }
  }

  /** True if served from the disk; a miss is cached (if it fits next to the pinned set). */
  read(title: string, key: string, bytes: number): boolean {
    if (this.pinned.has(title)) return true;
    const had = this.lru.get(key);
    if (had !== undefined) {
      this.lru.delete(key);
      this.lru.set(key, had);
      return true;
    }
    this.lru.set(key, bytes);
    this.lruBytes += bytes;
    this.evict();
    return false;
  }
}

export interface DayResult {
  day: number;
  clientBytes: number;
  edgeBytes: number;
  fillBytes: number;
  fillFromOrigin: number;
  missBytes: number;
}

export const offload = (d: DayResult) => d.edgeBytes / d.clientBytes;
export const originBytes = (d: DayResult) => d.missBytes + d.fillFromOrigin;

/** Runs the world through the model; `fill` false is on-demand LRU alone. */
export function simulate(world: World, fill: boolean): DayResult[] {
  const { spec } = world;
  const byName = new Map(world.titles.map((t) => [t.title, t]));
  const nodes: PlanNode[] = spec.isps.flatMap((isp) => Array.from({ length: isp.edges }, (_, i) => ({ id: `${isp.id}-e${i + 1}`, isp: isp.id, url: 'http://edge', diskBytes: world.diskBytes })));
  const edges = new Map(nodes.map((n) => [n.id, new EdgeModel(n.diskBytes)]));
  const rings = new Map(spec.isps.map((i) => [i.id, new Ring(nodes.filter((n) => n.isp === i.id).map((n) => n.id))]));
  const history: [string, DayCounts][] = [];
  const out: DayResult[] = [];
  for (let d = 0; d < world.plays.length; d++) {
    const r: DayResult = { day: d, clientBytes: 0, edgeBytes: 0, fillBytes: 0, fillFromOrigin: 0, missBytes: 0 };
    if (fill) {
      const today = new Date(DAY0 + d * DAY).toISOString().slice(0, 10);
      const plan = planFill({
        nodes,
        titles: planTitles(world, d),
        prediction: predictPopularity(history, today, { halfLifeDays: spec.halfLifeDays }),
        pinned: pinnedFor(world, d),
        headroomRatio: spec.headroomRatio,
        originUrl: 'http://origin',
        generatedAt: today,
      });
      for (const isp of spec.isps) {
        const ispNodes = nodes.filter((n) => n.isp === isp.id);
        const heldInIsp = new Set(ispNodes.flatMap((n) => [...edges.get(n.id)!.pinned]));
        const fromOrigin = new Set<string>();
        for (const n of ispNodes) {
          const want = new Set(plan.manifests.get(n.id)!.titles);
          const e = edges.get(n.id)!;
          for (const t of want) {
            if (e.pinned.has(t)) continue;
            r.fillBytes += byName.get(t)!.bytes;
            // A title new to the ISP leaves the origin once; other replicas come from peers.
            if (!heldInIsp.has(t) && !fromOrigin.has(t)) {
              fromOrigin.add(t);
              r.fillFromOrigin += byName.get(t)!.bytes;
            }
          }
          e.setPinned(want, (t) => byName.get(t)!.bytes);
        }
      }
    }
    const counts: DayCounts = {};
    for (const p of world.plays[d]!) {
      (counts[p.isp] ??= {})[p.title] = (counts[p.isp]![p.title] ?? 0) + 1;
      const rank = rings.get(p.isp)!.rank(p.title);
      // Steering: the ring-first node holding the title, else the ring-first node.
      const node = rank.find((n) => edges.get(n)!.pinned.has(p.title)) ?? rank[0]!;
      const e = edges.get(node)!;
      for (const [f, s, b] of slicesOf(byName.get(p.title)!, p.watched, spec.sliceBytes)) {
        r.clientBytes += b;
        if (e.read(p.title, `${p.title}/${f}/${s}`, b)) r.edgeBytes += b;
        else r.missBytes += b;
      }
    }
    history.push([new Date(DAY0 + d * DAY).toISOString().slice(0, 10), counts]);
    out.push(r);
  }
  return out;
}

// ---------- the real thing, small ----------

/** The same small world through a real origin and real edge processes. */
export async function runReal(world: World, fill: boolean): Promise<DayResult[]> {
  const { spec } = world;
  const isp = spec.isps[0]!;
  // A window far from now, so the nodes never fill by themselves: passes are started by POST /fill.
  const h = (new Date().getUTCHours() + 12) % 24;
  const window = `${String(h).padStart(2, '0')}:00-${String(h).padStart(2, '0')}:01`;
  const cluster = await makeCluster({ edges: isp.edges, diskBytes: world.diskBytes, sliceBytes: spec.sliceBytes, window, memoryBytes: 1, bytesPerSec: 500_000_000, headroomRatio: spec.headroomRatio, halfLifeDays: spec.halfLifeDays });
  const src = await mkdtemp(join(tmpdir(), 'reelcdn-offload-src-'));
  for (const [i, t] of world.titles.entries()) {
    const dir = writeHlsTitle(src, t.title, t.files, i + 1);
    await ingestTitle(cluster.config, t.title, dir);
  }
  let simNow = DAY0;
  const clock = { now: () => simNow, setTimeout: systemClock.setTimeout, clearTimeout: systemClock.clearTimeout };
  const origin = await startOrigin(cluster.config, clock);
  const root = resolve(import.meta.dirname, '..');
  const procs: ChildProcess[] = cluster.config.edges.map((e) =>
    spawn(process.execPath, [join(root, 'src/cli.js'), 'edge', '--config', cluster.file, '--id', e.id], { env: { ...process.env, REELCDN_ADMIN_TOKEN: CLUSTER_ADMIN_TOKEN }, stdio: 'ignore' }),
  );
  const auth = { authorization: `Bearer ${CLUSTER_ADMIN_TOKEN}` };
  const pools = new Map(cluster.config.edges.map((e) => [e.id, new Pool(e.url, { connections: 8 })]));
  try {
    for (const e of cluster.config.edges) {
      for (let i = 0; ; i++) {
        const ok = await fetch(`${e.adminUrl}/health`).then((r) => r.ok, () => false);
        if (ok) break;
        if (i > 200) throw new Error(`edge ${e.id} did not start`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const ring = new Ring(cluster.config.edges.map((e) => e.id));
    const byName = new Map(world.titles.map((t) => [t.title, t]));
    const out: DayResult[] = [];
    for (let d = 0; d < world.plays.length; d++) {
      simNow = DAY0 + d * DAY;
      const r: DayResult = { day: d, clientBytes: 0, edgeBytes: 0, fillBytes: 0, fillFromOrigin: 0, missBytes: 0 };
      const held = new Map<string, Set<string>>();
      if (fill) {
        cluster.config.isps[0]!.pinnedTitles = pinnedFor(world, d).get(isp.id)!;
        origin.hits.length = 0;
        const passes = await Promise.all(
          cluster.config.edges.map((e) => fetch(`${e.adminUrl}/fill?wait=1`, { method: 'POST', headers: auth }).then((res) => res.json() as Promise<{ bytes: { fetched: number } }>)),
        );
        r.fillBytes = passes.reduce((s, p) => s + p.bytes.fetched, 0);
        r.fillFromOrigin = origin.hits.reduce((s, x) => s + x.bytes, 0);
      }
      for (const e of cluster.config.edges) {
        const hl = (await (await fetch(`${e.adminUrl}/health`)).json()) as { fill: { heldTitles: string[] } };
        held.set(e.id, new Set(hl.fill.heldTitles));
      }
      origin.hits.length = 0;
      const plays: { title: string; at: number; isp: string }[] = [];
      const queue = [...world.plays[d]!];
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let p = queue.shift(); p; p = queue.shift()) {
            plays.push({ title: p.title, isp: p.isp, at: simNow });
            const t = byName.get(p.title)!;
            const rank = ring.rank(p.title);
            const node = rank.find((n) => held.get(n)!.has(p.title)) ?? rank[0]!;
            let left = p.watched;
            for (let f = 0; f < t.files.length && left > 0; f++) {
              const size = t.files[f]!;
              const want = Math.min(size, Math.ceil(left / spec.sliceBytes) * spec.sliceBytes);
              left -= want;
              const path = `/c/${t.title}/seg${f}.m4s`;
              // A player's requests: 256 KiB ranges in order.
              for (let off = 0; off < want; off += 256 * 1024) {
                const end = Math.min(want, off + 256 * 1024) - 1;
                const res = await pools.get(node)!.request({ method: 'GET', path: `${path}?${signQuery(cluster.config.signing.keys, 'k1', path, Date.now() / 1000, 3600)}`, headers: { range: `bytes=${off}-${end}` } });
                const body = Buffer.from(await res.body.arrayBuffer());
                if (res.statusCode !== 206) throw new Error(`${node}${path} answered ${res.statusCode}`);
                r.clientBytes += body.length;
              }
            }
          }
        }),
      );
      r.missBytes = origin.hits.reduce((s, x) => s + x.bytes, 0);
      r.edgeBytes = r.clientBytes - r.missBytes;
      for (let i = 0; i < plays.length; i += 5000) {
        await fetch(`${cluster.config.origin.adminUrl}/v1/plays`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ plays: plays.slice(i, i + 5000) }) });
      }
      out.push(r);
    }
    return out;
  } finally {
    for (const p of pools.values()) await p.close();
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(0) : p.once('exit', r)))));
    await origin.close();
  }
}

// ---------- report ----------

const gb = (n: number, unit: number) => (n / unit).toFixed(unit === 1e9 ? 0 : 1);
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

export function printTable(title: string, world: World, cols: { name: string; days: DayResult[] }[]): void {
  const unitName = world.spec.unit === 1e9 ? 'GB' : 'MB';
  const u = world.spec.unit;
  console.log(`\n${title}`);
  console.log(['day', ...cols.flatMap((c) => [`${c.name} offload`, `${c.name} fill ${unitName}`, `${c.name} origin ${unitName}`])].join('\t'));
  const days = cols[0]!.days;
  const measured = (c: DayResult[]) => c.slice(world.spec.warmupDays);
  for (let d = 0; d < days.length; d++) {
    const label = d < world.spec.warmupDays ? `w${d + 1}` : `${d - world.spec.warmupDays + 1}`;
    console.log([label, ...cols.flatMap((c) => [pct(offload(c.days[d]!)), gb(c.days[d]!.fillBytes, u), gb(originBytes(c.days[d]!), u)])].join('\t'));
  }
  const week = (c: DayResult[]) => {
    const m = measured(c);
    const sum = (k: keyof DayResult) => m.reduce((s, x) => s + x[k], 0);
    return { off: sum('edgeBytes') / sum('clientBytes'), fill: sum('fillBytes'), origin: sum('missBytes') + sum('fillFromOrigin') };
  };
  console.log(['week', ...cols.flatMap((c) => { const w = week(c.days); return [pct(w.off), gb(w.fill, u), gb(w.origin, u)]; })].join('\t'));
}

function describeWorld(w: World): string {
  const base = w.titles.filter((t) => t.releaseDay < 0);
  const cat = base.reduce((s, t) => s + t.bytes, 0);
  const edges = w.spec.isps.reduce((s, i) => s + i.edges, 0);
  const perIsp = w.spec.isps[0]!.edges;
  return `${w.spec.isps.map((i) => `${i.id}: ${i.edges} edges`).join(', ')}; ${base.length} titles (${(cat / w.spec.unit).toFixed(0)} × ${w.spec.unit === 1e9 ? 'GB' : 'MB'}) + ${w.spec.releasesPerDay} releases/day; disk ${(w.diskBytes / w.spec.unit).toFixed(1)} per edge (catalog = ${(cat / (w.diskBytes * edges)).toFixed(1)}× all disks, ${(cat / (w.diskBytes * perIsp)).toFixed(1)}× the disks one ISP's clients reach); Zipf ${w.spec.zipf}, drift ${w.spec.drift}/day, ${w.spec.playsPerIspPerDay} plays/ISP/day`;
}

async function main(): Promise<void> {
  const real = process.argv.includes('--real');
  const big = makeWorld(BIG);
  console.log(`model: ${describeWorld(big)}`);
  const t0 = performance.now();
  const withFill = simulate(big, true);
  const lru = simulate(big, false);
  printTable(`model, ${((performance.now() - t0) / 1000).toFixed(1)} s (w = warm-up days)`, big, [{ name: 'fill+LRU', days: withFill }, { name: 'LRU', days: lru }]);
  if (!real) return;
  const small = makeWorld(SMALL);
  console.log(`\nsmall: ${describeWorld(small)}`);
  const mFill = simulate(small, true);
  const mLru = simulate(small, false);
  const t1 = performance.now();
  const rFill = await runReal(small, true);
  const rLru = await runReal(small, false);
  printTable(`small, model vs real processes (${((performance.now() - t1) / 1000).toFixed(0)} s real)`, small, [
    { name: 'model fill', days: mFill },
    { name: 'real fill', days: rFill },
    { name: 'model LRU', days: mLru },
    { name: 'real LRU', days: rLru },
  ]);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

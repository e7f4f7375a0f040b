/**
 * `npm run bench:offload [-- --real]`: a simulated week of demand, hour by hour, run through the
 * real fill planner (planFill with the standing plan, hysteresis, churn cap and spare replicas;
 * file weights through the origin's real aggregator from what the modelled edges served) and
 * steering's real rankEdges, over a model of the edges' disks that behaves like
 * src/edge/disk-tier.ts + fill-agent.ts (pinned files next to an LRU of slices; unpinned files
 * stay as cache; the fill inside its window under its rate cap). Reports per strategy — the full
 * planner, the same with one part switched off, LRU alone — weekly offload, origin bytes (fill +
 * misses), origin bytes in the peak hours (19:00-23:00) and fill bytes inside the window, next to
 * ceilings (the best a placement could do knowing the day's demand); the origin-bytes target at
 * 1,000, 8,000 and 32,000 plays a day; a day with an edge of each ISP down. `--real` also runs a
 * small version through real processes next to the model of the same small cluster.
 * Knobs: ZIPF, ZIPF_A, ZIPF_B, DRIFT, PLAYS, CATALOG_OVER_DISK, WATCH=full, SEED, FILL_RATE, STAY,
 * ENTER, CHURN, HALF_LIFE, HEADROOM; ABLATIONS=stable,spare,weights|0, CEILINGS=0, TARGET_PLAYS=1000,8000,32000,
 * EDGE_LOSS=0, BEFORE=1 (issue 12's planner), ORACLE=1 (perfect-prediction bounds).
 * Method and results: docs/fill.md.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LRUCache } from 'lru-cache';
import { Pool } from 'undici';
import { systemClock } from '../src/common/clock.js';
import { Ring } from '../src/common/ring.js';
import { signQuery } from '../src/common/signing.js';
import { ingestTitle } from '../src/origin/ingest.js';
import { type Plan, type PlanNode, type PlanTitle, type StabilityOptions, planFill } from '../src/origin/fill-planner.js';
import { type FileWeights, type ServedDay, fileWeights } from '../src/origin/file-weights.js';
import { type ShapeCache, weighTitles } from '../src/origin/placement-weights.js';
import type { DayCounts } from '../src/origin/plays.js';
import type { FillManifest } from '../src/common/fill-manifest.js';
import { rankEdges, spreadKeyOf } from '../src/steering/ranking.js';
import { predictPopularity } from '../src/origin/popularity.js';
import { CLUSTER_ADMIN_TOKEN, makeCluster, startOrigin, writeHlsTitle } from './offload-cluster.js';
import { seededRandom as rng } from './seeded-random.js';

const DAY = 86_400_000;
const DAY0 = Date.parse('2024-06-01T12:00:00Z');

// ---------- the simulated world ----------

function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/**
 * A bitrate ladder (kbit/s): the fixed 10-rung ladder Netflix published in 2015 for 1080p
 * titles. An edge stores every rung of a title it holds; a play reads one.
 */
export const LADDER_KBPS = [235, 375, 560, 750, 1050, 1750, 2350, 3000, 4300, 5800];
/** Share of plays per rung (assumed: most plays on broadband TVs/PCs get a top rung). */
export const RUNG_SHARE = [0.01, 0.02, 0.02, 0.03, 0.05, 0.07, 0.08, 0.12, 0.2, 0.4];

/**
 * Plays started per local hour, relative to the busiest hour. The shape of consumer broadband
 * traffic as Arbor Networks published it ("The Internet After Dark", C. Labovitz, 2009: 40 North
 * American consumer providers — lowest in the early morning, climbing through the afternoon to
 * a late-evening peak) and the "Internet rush hour" of 19:00-23:00 (UK figures); video is
 * steeper than all traffic, so the early-morning trough here is deeper (14 % of the peak). The
 * hourly values are our assumption in that shape, not measurements. 30.5 % of a day's plays
 * start in 19:00-23:00, 5.9 % in the 02:00-06:00 fill window.
 */
export const DIURNAL = [0.62, 0.42, 0.27, 0.18, 0.14, 0.14, 0.18, 0.25, 0.31, 0.36, 0.4, 0.44, 0.48, 0.5, 0.52, 0.55, 0.6, 0.67, 0.77, 0.88, 0.97, 1, 0.93, 0.8];
/** The peak hours the origin's transit is sized for: 19:00-23:00 local. */
export const PEAK_HOURS: readonly number[] = [19, 20, 21, 22];
const isPeak = (hour: number) => PEAK_HOURS.includes(hour);

export interface WorldSpec {
  seed: number;
  /** Per ISP: its edges and the Zipf exponent of its demand. */
  isps: { id: string; edges: number; zipf: number }[];
  /** Catalog titles at the start. */
  titles: number;
  /** Bytes are (duration × bitrate / 8) × byteScale (1 = real sizes). */
  byteScale: number;
  /** Display unit for the report. */
  unit: number;
  /** Seconds of one rung per file (a file = one segment, or a group of segments in the model). */
  fileSeconds: number;
  /** Cache granularity (the edges' slice). */
  sliceBytes: number;
  /** Bytes a slice file takes on disk beyond its data (the disk tier's header). */
  sliceOverhead: number;
  /** Catalog bytes / the disk bytes of ONE ISP's edges together (what its clients reach). */
  catalogOverIspDisk: number;
  /** Day-to-day log-normal drift of each title's popularity. */
  drift: number;
  releasesPerDay: number;
  playsPerIspPerDay: number;
  clientsPerIsp: number;
  /** 'curve': sessions abandon (see watchFraction); 'full': every play reads the whole rung. */
  watch: 'curve' | 'full';
  warmupDays: number;
  days: number;
  /** One more day after the measured week with the first edge of each ISP down all day (what spare replicas are for). */
  lossDay: boolean;
  headroomRatio: number;
  halfLifeDays: number;
  /** Every edge's fill window, local hours [start, end) (the cluster file's default 02:00-06:00). */
  fillWindow: [number, number];
  /** Every edge's fill rate cap, bytes/s (the cluster file's default). */
  fillBytesPerSec: number;
  /** Stable placement as origin.fill configures it (the defaults of config.ts). */
  stability: StabilityOptions;
}

const envNum = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d);

export const BIG: WorldSpec = {
  seed: envNum('SEED', 42),
  isps: [
    { id: 'isp-a', edges: 3, zipf: envNum('ZIPF_A', envNum('ZIPF', 0.9)) },
    { id: 'isp-b', edges: 3, zipf: envNum('ZIPF_B', envNum('ZIPF', 1.1)) },
  ],
  titles: 3000,
  byteScale: 1,
  unit: 1e9,
  fileSeconds: 120,
  sliceBytes: 16 * 1024 * 1024,
  sliceOverhead: 0,
  catalogOverIspDisk: envNum('CATALOG_OVER_DISK', 5),
  drift: envNum('DRIFT', 0.15),
  releasesPerDay: 4,
  playsPerIspPerDay: envNum('PLAYS', 8000),
  clientsPerIsp: 5000,
  watch: process.env.WATCH === 'full' ? 'full' : 'curve',
  warmupDays: 3,
  days: 7,
  lossDay: process.env.EDGE_LOSS !== '0',
  headroomRatio: envNum('HEADROOM', 0.1),
  halfLifeDays: envNum('HALF_LIFE', 2),
  fillWindow: [2, 6],
  fillBytesPerSec: envNum('FILL_RATE', 50_000_000),
  stability: { stayRatio: envNum('STAY', 0.8), enterRatio: envNum('ENTER', 1), maxChurnRatio: envNum('CHURN', 0.02) },
};

export const SMALL: WorldSpec = {
  ...BIG,
  isps: [{ id: 'isp-a', edges: 3, zipf: BIG.isps[0]!.zipf }],
  titles: 60,
  byteScale: 2.5e-4,
  unit: 1e6,
  fileSeconds: 600,
  sliceBytes: 64 * 1024,
  sliceOverhead: 360,
  releasesPerDay: 1,
  playsPerIspPerDay: 150,
  clientsPerIsp: 200,
  warmupDays: 2,
  days: 5,
  lossDay: false,
};

interface SimFile {
  /** Global file id (index into World.files). */
  id: number;
  title: number;
  /** Index in the title's file list. */
  index: number;
  /** Its path in the title: `r{rung}/seg{n}.m4s`, n counting within the rung (how packagers lay renditions out). */
  path: string;
  rung: number;
  size: number;
  /** Offset of the file in its rung, as a fraction of the rung's bytes. */
  start: number;
  slices: number;
}

interface SimTitle {
  id: number;
  title: string;
  bytes: number;
  releaseDay: number;
  files: SimFile[];
  /** File ids per rung, in play order. */
  rungs: number[][];
}

interface Play {
  isp: string;
  title: number;
  /** Client index in its ISP (its address decides steering's spread key). */
  client: number;
  rung: number;
  /** Share of the rung's bytes read from the start. */
  frac: number;
  /** Local hour the play starts (0-23); its reads are counted in that hour. */
  hour: number;
}

export interface World {
  spec: WorldSpec;
  titles: SimTitle[];
  files: SimFile[];
  diskBytes: number;
  /** Plays of each simulated day (warm-up included). */
  plays: Play[][];
  /** The demand model's own per-ISP title probabilities of each day (what plays are drawn from). */
  truth: Map<string, Map<number, number>>[];
  /** title → path → file. */
  byPath: Map<string, Map<string, SimFile>>;
}

/**
 * How far into a title a session reads (0-1). Assumed mixture, after the shape VOD studies
 * report (most abandonment in the first minutes, a large minority to the end): 30 % sample
 * and leave within the first 10 %, 35 % finish, 35 % stop evenly in between. Mean 0.56.
 */
function watchFraction(r: () => number, mode: WorldSpec['watch']): number {
  if (mode === 'full') return 1;
  const u = r();
  if (u < 0.3) return 0.005 + 0.095 * r();
  if (u < 0.65) return 1;
  return 0.1 + 0.9 * r();
}

/** P(a session reads past fraction x of the rung): the survival curve of watchFraction. */
export function trueSurvival(x: number, mode: WorldSpec['watch']): number {
  if (x < 0) return 1;
  if (x >= 1) return 0;
  if (mode === 'full') return 1;
  if (x < 0.005) return 1;
  if (x < 0.1) return 0.7 + (0.3 * (0.1 - x)) / 0.095;
  return 0.35 + (0.35 * (1 - x)) / 0.9;
}

export function makeWorld(spec: WorldSpec): World {
  const r = rng(spec.seed);
  const totalDays = spec.warmupDays + spec.days + (spec.lossDay ? 1 : 0);
  const titles: SimTitle[] = [];
  const files: SimFile[] = [];
  const mk = (name: string, releaseDay: number): SimTitle => {
    // 60 % episodes (median 40 min, 20-65), 40 % films (median 105 min, 80-180).
    const episode = r() < 0.6;
    const minutes = episode ? Math.min(65, Math.max(20, 40 * Math.exp(0.2 * gauss(r)))) : Math.min(180, Math.max(80, 105 * Math.exp(0.15 * gauss(r))));
    const seconds = minutes * 60;
    const t: SimTitle = { id: titles.length, title: name, bytes: 0, releaseDay, files: [], rungs: [] };
    LADDER_KBPS.forEach((kbps, rung) => {
      const rungBytes = Math.max(1, Math.round(((seconds * kbps * 1000) / 8) * spec.byteScale));
      const per = Math.max(1, Math.round(((spec.fileSeconds * kbps * 1000) / 8) * spec.byteScale));
      const ids: number[] = [];
      for (let off = 0; off < rungBytes; off += per) {
        const size = Math.min(per, rungBytes - off);
        if (Math.ceil(per / spec.sliceBytes) > SLICE_KEY) throw new Error('files of more than SLICE_KEY slices');
        const f: SimFile = { id: files.length, title: t.id, index: t.files.length, path: `r${rung}/seg${ids.length}.m4s`, rung, size, start: off / rungBytes, slices: Math.ceil(size / spec.sliceBytes) };
        files.push(f);
        t.files.push(f);
        ids.push(f.id);
        t.bytes += size;
      }
      t.rungs.push(ids);
    });
    titles.push(t);
    return t;
  };
  for (let i = 0; i < spec.titles; i++) mk(`t${i}`, -1_000);
  // No releases on the edge-lost day: the world is the same with or without it.
  for (let d = 0; d < spec.warmupDays + spec.days; d++) for (let k = 0; k < spec.releasesPerDay; k++) mk(`new-d${d}-${k}`, d);
  const base = titles.filter((t) => t.releaseDay < 0);
  const catalogBytes = base.reduce((s, t) => s + t.bytes, 0);
  const diskBytes = Math.floor(catalogBytes / spec.catalogOverIspDisk / spec.isps[0]!.edges);
  const rungCum: number[] = [];
  RUNG_SHARE.reduce((s, x) => (rungCum.push(s + x), s + x), 0);

  // Per ISP: a Zipf weight from its own random rank order and exponent, drifting day to day.
  const logw = new Map<string, Map<number, number>>();
  for (const isp of spec.isps) {
    const order = base.map((t) => t.id).sort(() => r() - 0.5);
    logw.set(isp.id, new Map(order.map((t, i) => [t, -isp.zipf * Math.log(i + 1)])));
  }
  const plays: Play[][] = [];
  const truth: World['truth'] = [];
  const hourRng = rng(spec.seed + 1_000_003);
  const hourCum: number[] = [];
  DIURNAL.reduce((sum, x) => (hourCum.push(sum + x), sum + x), 0);
  const hourTotal = hourCum.at(-1)!;
  for (let d = 0; d < totalDays; d++) {
    const day: Play[] = [];
    truth.push(new Map());
    for (const isp of spec.isps) {
      const w = logw.get(isp.id)!;
      for (const [t, v] of w) w.set(t, v + spec.drift * gauss(r));
      // Releases enter near the top (a new hit: rank 1-20 weight) and fade by a third each day.
      for (const t of titles.filter((x) => x.releaseDay === d)) w.set(t.id, -isp.zipf * Math.log(1 + 20 * r()));
      for (const t of titles.filter((x) => x.releaseDay >= 0 && x.releaseDay < d)) w.set(t.id, w.get(t.id)! + Math.log(0.67));
      const list = [...w];
      const cum: number[] = [];
      let sum = 0;
      for (const [, v] of list) cum.push((sum += Math.exp(v)));
      truth[d]!.set(isp.id, new Map(list.map(([t, v]) => [t, Math.exp(v) / sum])));
      for (let k = 0; k < spec.playsPerIspPerDay; k++) {
        const x = r() * sum;
        let lo = 0;
        let hi = cum.length - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (cum[mid]! < x) lo = mid + 1;
          else hi = mid;
        }
        const u = r();
        const rung = Math.max(0, rungCum.findIndex((c) => u < c));
        day.push({ isp: isp.id, title: list[lo]![0], client: Math.floor(r() * spec.clientsPerIsp), rung, frac: watchFraction(r, spec.watch), hour: 0 });
      }
    }
    // Start hours from their own stream (the plays themselves stay those of the seed), then the day in time order.
    for (const p of day) {
      const x = hourRng() * hourTotal;
      p.hour = Math.min(23, hourCum.findIndex((c) => x < c));
    }
    day.sort((a, b) => a.hour - b.hour);
    plays.push(day);
  }
  const byPath = new Map(titles.map((t) => [t.title, new Map(t.files.map((f) => [f.path, f]))]));
  return { spec, titles, files, diskBytes, plays, truth, byPath };
}

/** The slices a play reads, in order: [file, slice index, bytes]. */
function* slicesOf(world: World, p: Play): Generator<[SimFile, number, number]> {
  const t = world.titles[p.title]!;
  const ids = t.rungs[p.rung]!;
  const rungBytes = ids.reduce((s, id) => s + world.files[id]!.size, 0);
  let left = Math.max(1, Math.floor(p.frac * rungBytes));
  const sb = world.spec.sliceBytes;
  for (let i = 0; i < ids.length && left > 0; i++) {
    const f = world.files[ids[i]!]!;
    for (let s = 0; s * sb < f.size && left > 0; s++) {
      const b = Math.min(sb, f.size - s * sb);
      yield [f, s, b];
      left -= b;
    }
  }
}

export const sha = (t: SimTitle, i: number) => `${t.title}-${i}`;

/**
 * The planner's view of the catalog. With `weights` (what the edges reported serving, through
 * the origin's aggregator), files are weighted as the origin weighs them (placement-weights.ts).
 */
export function planTitles(world: World, day: number, weights?: FileWeights, cache?: ShapeCache): PlanTitle[] {
  const titles = world.titles
    .filter((t) => t.releaseDay <= day)
    .map((t) => ({ title: t.title, bytes: t.bytes, files: t.files.map((f) => ({ path: f.path, size: f.size, sha256: sha(t, f.index) })) }));
  return weights ? weighTitles(titles, weights, cache) : titles;
}

/** The planner's catalog weighted by the demand model's own shape: rung share × true survival where the file starts. */
function oracleTitles(world: World, day: number): PlanTitle[] {
  return world.titles
    .filter((t) => t.releaseDay <= day)
    .map((t) => ({ title: t.title, bytes: t.bytes, files: t.files.map((f) => ({ path: f.path, size: f.size, sha256: sha(t, f.index), weight: RUNG_SHARE[f.rung]! * trueSurvival(f.start, world.spec.watch) })) }));
}

/** A day's true per-ISP popularity as plays a day. */
function oraclePrediction(world: World, day: number): Map<string, Map<string, number>> {
  return new Map([...world.truth[day]!].map(([isp, m]) => [isp, new Map([...m].map(([tid, p]) => [world.titles[tid]!.title, p * world.spec.playsPerIspPerDay]))]));
}

/** Titles pinned by config the night before `day`: that day's and yesterday's releases. */
export function pinnedFor(world: World, day: number): Map<string, string[]> {
  const list = world.titles.filter((t) => t.releaseDay === day || t.releaseDay === day - 1).map((t) => t.title);
  return new Map(world.spec.isps.map((i) => [i.id, list]));
}

export const clientAddress = (ispIndex: number, client: number) => `10.${ispIndex}.${client >> 8}.${client & 255}`;

// ---------- the model of an edge (as src/edge/disk-tier.ts + fill-agent.ts behave) ----------

/** Slice keys are file id × SLICE_KEY + slice index (small integers keep the maps fast). */
const SLICE_KEY = 64;

/**
 * One disk: pinned files (never evicted) and an LRU of unpinned slices, sharing the capacity.
 * As on a real edge: a miss is cached (evicting least recently used unpinned slices); a file
 * that leaves the manifest is unpinned and stays as cache (most recently used); a file the
 * manifest wants that is already cached whole is verified in place (no fetch); a fetched file
 * evicts cache to make room and replaces any cached slices of itself.
 */
class EdgeModel {
  readonly pinned = new Set<number>();
  /** Titles whose every manifest file is pinned (what steering ranks first). */
  held = new Set<string>();
  /** Unpinned slices: key → bytes on disk (lru-cache: O(1) touch and pop; a Map emptied from its front is not). */
  private readonly lru = new LRUCache<number, { k: number; b: number }>({
    max: 1 << 21,
    // Evictions (ours, and the count cap's should it ever bite) keep the books.
    dispose: (e, _k, reason) => {
      if (reason !== 'evict') return;
      this.used -= e.b;
      const fid = Math.floor(e.k / SLICE_KEY);
      this.cachedSlices.set(fid, this.cachedSlices.get(fid)! - 1);
    },
  });
  private readonly cachedSlices = new Map<number, number>();
  used = 0;
  constructor(
    readonly world: World,
    readonly disk: number,
  ) {}

  private onDisk(b: number): number {
    return b + this.world.spec.sliceOverhead;
  }

  private sliceSizes(f: SimFile): number[] {
    const sb = this.world.spec.sliceBytes;
    return Array.from({ length: f.slices }, (_, s) => Math.min(sb, f.size - s * sb));
  }

  private evictUntil(need: number): void {
    while (this.used + need > this.disk) {
      if (this.lru.pop() === undefined) break;
    }
  }

  private dropCached(f: SimFile): void {
    for (let s = 0; s < f.slices; s++) {
      const k = f.id * SLICE_KEY + s;
      const e = this.lru.get(k, { updateAgeOnGet: false });
      if (e === undefined) continue;
      this.lru.delete(k);
      this.used -= e.b;
    }
    this.cachedSlices.delete(f.id);
  }

  /**
   * Tonight's pass over a manifest, in rank order, fetching at most `budget` bytes (the rate cap
   * × the window: the real agent stops when its window closes and goes on the next night).
   * Returns bytes fetched from peers and from the origin, and bytes left for another night.
   */
  fill(manifest: FillManifest, budget = Infinity): { peer: number; origin: number; left: number } {
    const want = manifest.files.map((mf) => ({ mf, f: this.world.byPath.get(mf.title)!.get(mf.file)! }));
    const wanted = new Set(want.map((w) => w.f.id));
    for (const id of [...this.pinned]) {
      if (wanted.has(id)) continue;
      this.pinned.delete(id);
      const f = this.world.files[id]!;
      this.sliceSizes(f).forEach((b, s) => this.lru.set(id * SLICE_KEY + s, { k: id * SLICE_KEY + s, b: this.onDisk(b) }));
      this.cachedSlices.set(id, f.slices);
    }
    const out = { peer: 0, origin: 0, left: 0 };
    let closed = false;
    for (const { mf, f } of want) {
      if (this.pinned.has(f.id)) continue;
      if (this.cachedSlices.get(f.id) === f.slices) {
        // Cached whole: verified in place.
        for (let s = 0; s < f.slices; s++) this.lru.delete(f.id * SLICE_KEY + s);
        this.cachedSlices.delete(f.id);
        this.pinned.add(f.id);
        continue;
      }
      if (closed || out.peer + out.origin + f.size > budget) {
        closed = true;
        out.left += f.size;
        continue;
      }
      const bytes = this.sliceSizes(f).reduce((s, b) => s + this.onDisk(b), 0);
      this.evictUntil(bytes);
      if (this.used + bytes > this.disk) continue; // no room: the real agent fails the file
      this.used += bytes;
      this.dropCached(f);
      this.pinned.add(f.id);
      if (mf.sources.some((s) => s.kind === 'peer')) out.peer += f.size;
      else out.origin += f.size;
    }
    const complete = new Map<string, boolean>();
    for (const { mf, f } of want) complete.set(mf.title, (complete.get(mf.title) ?? true) && this.pinned.has(f.id));
    this.held = new Set([...complete].filter(([, ok]) => ok).map(([t]) => t));
    return out;
  }

  /** Bytes of `f` held whole as cache (0 when not whole: the fill agent verifies whole files in place). */
  cachedBytes(f: SimFile | undefined): number {
    return f && this.cachedSlices.get(f.id) === f.slices ? f.size : 0;
  }

  /** True if served from the disk; a miss is fetched and cached. */
  read(f: SimFile, s: number, bytes: number): boolean {
    if (this.pinned.has(f.id)) return true;
    const k = f.id * SLICE_KEY + s;
    if (this.lru.get(k) !== undefined) return true; // get() makes it most recently used
    const b = this.onDisk(bytes);
    this.evictUntil(b);
    if (this.used + b > this.disk) return false;
    this.lru.set(k, { k, b });
    this.used += b;
    this.cachedSlices.set(f.id, (this.cachedSlices.get(f.id) ?? 0) + 1);
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
  /** Client bytes and misses of plays that started in PEAK_HOURS. */
  peakClientBytes: number;
  peakMissBytes: number;
  /** Misses per hour of the day. */
  hourlyMiss: number[];
  /** Fill bytes fetched inside the window (all of them: the fill runs only there) and the nodes' window budget. */
  fillInWindow: number;
  fillBudget: number;
  /** Manifest bytes the window was too short for (fetched another night). */
  fillLeft: number;
}

export function emptyDay(day: number): DayResult {
  return { day, clientBytes: 0, edgeBytes: 0, fillBytes: 0, fillFromOrigin: 0, missBytes: 0, peakClientBytes: 0, peakMissBytes: 0, hourlyMiss: Array(24).fill(0), fillInWindow: 0, fillBudget: 0, fillLeft: 0 };
}

export const offload = (d: DayResult) => d.edgeBytes / d.clientBytes;
export const originBytes = (d: DayResult) => d.missBytes + d.fillFromOrigin;
/** Origin bytes in the peak hours: misses only — fill runs in the night window. */
export const peakOriginBytes = (d: DayResult) => d.peakMissBytes;

/** One way to run the edges' disks. */
export interface Strategy {
  name: string;
  /** Nightly fill from the planner; false: on-demand LRU alone. */
  fill: boolean;
  /** Per-file weights from what the edges reported serving (else whole titles). */
  weights?: boolean;
  /** Hysteresis band and churn cap; absent: every night planned from scratch (issue 12's planner). */
  stability?: StabilityOptions;
  /** Free room buys extra copies of the most demanded titles. */
  spare?: boolean;
  /** The planner knows what each edge has cached (whole files): they cost no churn budget (the agent verifies them in place). */
  knowsCache?: boolean;
  /** Edges down all of one day (steering skips them; the plan does not know): what spare replicas are for. */
  down?: { day: number; edges: string[] };
  /**
   * The planner fed the demand model itself instead of estimates: each ISP's true popularity of
   * yesterday (or, unknowable at night, of today) × its plays a day, and every file weighted by
   * its rung's share × the true survival curve. Bounds what better prediction could buy.
   */
  oracle?: 'yesterday' | 'today';
}

export function simNodes(world: World): PlanNode[] {
  return world.spec.isps.flatMap((isp) => Array.from({ length: isp.edges }, (_, i) => ({ id: `${isp.id.slice(-1)}${i + 1}`, isp: isp.id, url: `http://${isp.id}-e${i + 1}`, diskBytes: world.diskBytes })));
}

/** Steering's choice for a play: the real rankEdges (holders first, spread by client hash, down edges skipped). */
export function steer(world: World, ring: Ring, edgesById: Map<string, PlanNode>, holders: (title: string) => Set<string>, p: Play, eligible?: Set<string>): string {
  const ispIndex = world.spec.isps.findIndex((i) => i.id === p.isp);
  const title = world.titles[p.title]!.title;
  const ranked = rankEdges({ title, isp: p.isp, edgesById, ring, eligible: eligible ?? new Set(edgesById.keys()), holders: holders(title), spreadKey: spreadKeyOf(clientAddress(ispIndex, p.client)) });
  return ranked[0]!.id;
}

/** Runs the world through the model: each day, plays before the window, the night's fill, the rest of the day. */
export function simulate(world: World, strategy: Strategy): DayResult[] {
  const { spec } = world;
  const nodes = simNodes(world);
  const edgesById = new Map(nodes.map((n) => [n.id, n]));
  const edges = new Map(nodes.map((n) => [n.id, new EdgeModel(world, n.diskBytes)]));
  const ring = new Ring(nodes.map((n) => n.id));
  const fileSize = (title: string, path: string) => world.byPath.get(title)?.get(path)?.size;
  const history: [string, DayCounts][] = [];
  const served: [string, ServedDay][] = [];
  const windowBudget = spec.fillBytesPerSec * (spec.fillWindow[1] - spec.fillWindow[0]) * 3600;
  let previous: Plan | undefined;
  const shapes: ShapeCache = new Map();
  const out: DayResult[] = [];
  for (let d = 0; d < world.plays.length; d++) {
    const r = emptyDay(d);
    const today = new Date(DAY0 + d * DAY).toISOString().slice(0, 10);
    const fill = () => {
      if (!strategy.fill) return;
      const weights = strategy.weights && served.length > 0 ? fileWeights(served, today, { halfLifeDays: spec.halfLifeDays, sliceBytes: spec.sliceBytes, fileSize }) : undefined;
      const plan = planFill({
        nodes,
        titles: strategy.oracle ? oracleTitles(world, d) : planTitles(world, d, weights, shapes),
        prediction: strategy.oracle ? oraclePrediction(world, strategy.oracle === 'today' ? d : Math.max(0, d - 1)) : predictPopularity(history, today, { halfLifeDays: spec.halfLifeDays }),
        pinned: pinnedFor(world, d),
        headroomRatio: spec.headroomRatio,
        originUrl: 'http://origin',
        generatedAt: today,
        ...(previous && strategy.stability ? { previous, stability: strategy.stability } : {}),
        spareReplicas: strategy.spare ?? false,
        ...(strategy.knowsCache ? { cached: (node: string, title: string, path: string) => edges.get(node)!.cachedBytes(world.byPath.get(title)?.get(path)) } : {}),
      });
      previous = plan;
      for (const n of nodes) {
        const got = edges.get(n.id)!.fill(plan.manifests.get(n.id)!, windowBudget);
        r.fillBytes += got.peer + got.origin;
        r.fillInWindow += got.peer + got.origin;
        r.fillFromOrigin += got.origin;
        r.fillLeft += got.left;
        r.fillBudget += windowBudget;
      }
    };
    let holdersOf = new Map<string, Set<string>>();
    const learnHolders = () => {
      holdersOf = new Map();
      for (const [id, e] of edges) for (const t of e.held) (holdersOf.get(t) ?? holdersOf.set(t, new Set()).get(t)!).add(id);
    };
    learnHolders();
    const none = new Set<string>();
    const eligible = strategy.down?.day === d ? new Set(nodes.map((n) => n.id).filter((id) => !strategy.down!.edges.includes(id))) : undefined;
    const counts: DayCounts = {};
    const sv: ServedDay = {};
    let filled = false;
    for (const p of world.plays[d]!) {
      if (!filled && p.hour >= spec.fillWindow[0]) {
        fill();
        learnHolders();
        filled = true;
      }
      const t = world.titles[p.title]!;
      (counts[p.isp] ??= {})[t.title] = (counts[p.isp]![t.title] ?? 0) + 1;
      const td = strategy.weights ? (sv[t.title] ??= { plays: 0, files: {} }) : undefined;
      if (td) td.plays++;
      const e = edges.get(steer(world, ring, edgesById, (x) => holdersOf.get(x) ?? none, p, eligible))!;
      const peak = isPeak(p.hour);
      for (const [f, s, b] of slicesOf(world, p)) {
        r.clientBytes += b;
        if (peak) r.peakClientBytes += b;
        if (td) {
          const fd = (td.files[f.path] ??= { requests: 0, bytes: 0 });
          fd.requests++;
          fd.bytes += b;
        }
        if (e.read(f, s, b)) {
          r.edgeBytes += b;
          continue;
        }
        r.missBytes += b;
        r.hourlyMiss[p.hour]! += b;
        if (peak) r.peakMissBytes += b;
      }
    }
    if (!filled) fill();
    history.push([today, counts]);
    if (strategy.weights) served.push([today, sv]);
    out.push(r);
  }
  return out;
}

/**
 * Ceilings: the bytes a placement could serve from each ISP's disks (all of them, no
 * headroom) if it knew that day's demand, filled greedily by demand per byte (a knapsack
 * whose items are tiny next to a disk, so greedy is within one item of the optimum).
 *   'seen-slices' / 'seen-titles': knows every play of the day (clairvoyant); places any byte
 *     ranges / only whole titles (every rung).
 *   'expected-slices' / 'expected-titles': knows the day's true per-ISP popularity, rung shares
 *     and watch curve (the demand model itself) but not which plays will happen — the best a
 *     predictive placement can do; scored on the day's actual plays.
 *   'yesterday-slices': the same knowing only YESTERDAY's true popularity (today's drift and
 *     releases unknown): what a placement made at night from perfect knowledge of the past gets.
 */
export type CeilingKind = 'seen-slices' | 'seen-titles' | 'expected-slices' | 'expected-titles' | 'yesterday-slices';

export function ceiling(world: World, kind: CeilingKind): DayResult[] {
  const { spec } = world;
  const sb = spec.sliceBytes;
  const slice = kind.endsWith('slices');
  return world.plays.map((plays, d) => {
    const r = emptyDay(d);
    for (const isp of spec.isps) {
      const keyOf = (f: SimFile, s: number) => (slice ? f.id * SLICE_KEY + s : f.title);
      const items: { key: number; value: number; size: number }[] = [];
      if (kind.startsWith('seen')) {
        const demand = new Map<number, { key: number; value: number; size: number }>();
        for (const p of plays) {
          if (p.isp !== isp.id) continue;
          for (const [f, s, b] of slicesOf(world, p)) {
            const key = keyOf(f, s);
            const e = demand.get(key);
            if (e) e.value += b;
            else demand.set(key, { key, value: b, size: slice ? b + spec.sliceOverhead : world.titles[f.title]!.bytes });
          }
        }
        for (const e of demand.values()) items.push(e);
      } else {
        const truth = kind === 'yesterday-slices' ? world.truth[Math.max(0, d - 1)]! : world.truth[d]!;
        for (const [tid, prob] of truth.get(isp.id)!) {
          const t = world.titles[tid]!;
          if (t.releaseDay > d) continue;
          if (!slice) {
            items.push({ key: tid, value: prob, size: t.bytes }); // every title reads the same share of its bytes on average
            continue;
          }
          for (const [rung, ids] of t.rungs.entries()) {
            const rungBytes = ids.reduce((x, id) => x + world.files[id]!.size, 0);
            for (const id of ids) {
              const f = world.files[id]!;
              for (let s = 0; s < f.slices; s++) {
                const b = Math.min(sb, f.size - s * sb);
                const x = (f.start * rungBytes + s * sb) / rungBytes;
                items.push({ key: keyOf(f, s), value: prob * RUNG_SHARE[rung]! * trueSurvival(x, spec.watch) * b, size: b + spec.sliceOverhead });
              }
            }
          }
        }
      }
      let room = isp.edges * world.diskBytes;
      const placed = new Set<number>();
      for (const e of items.sort((a, b) => b.value / b.size - a.value / a.size)) {
        if (e.size > room || e.value <= 0) continue;
        room -= e.size;
        placed.add(e.key);
      }
      for (const p of plays) {
        if (p.isp !== isp.id) continue;
        const peak = isPeak(p.hour);
        for (const [f, s, b] of slicesOf(world, p)) {
          r.clientBytes += b;
          if (peak) r.peakClientBytes += b;
          if (placed.has(keyOf(f, s))) {
            r.edgeBytes += b;
            continue;
          }
          r.hourlyMiss[p.hour]! += b;
          if (peak) r.peakMissBytes += b;
        }
      }
    }
    r.missBytes = r.clientBytes - r.edgeBytes;
    return r;
  });
}

// ---------- the real thing, small ----------

/** The real edges' fill rate cap: low enough that a night's pass runs into it (a few seconds a pass). */
const REAL_FILL_RATE = 2_000_000;

/** The same small world through a real origin and real edge processes (one ISP). */
export async function runReal(world: World, fill: boolean, report?: { passes: { bytes: number; seconds: number }[] }): Promise<DayResult[]> {
  const { spec } = world;
  const isp = spec.isps[0]!;
  // A window far from now, so the nodes never fill by themselves: passes are started by POST /fill.
  const h = (new Date().getUTCHours() + 12) % 24;
  const window = `${String(h).padStart(2, '0')}:00-${String(h).padStart(2, '0')}:01`;
  const cluster = await makeCluster({ edges: isp.edges, diskBytes: world.diskBytes, sliceBytes: spec.sliceBytes, window, memoryBytes: 1, bytesPerSec: REAL_FILL_RATE, headroomRatio: spec.headroomRatio, halfLifeDays: spec.halfLifeDays });
  const src = await mkdtemp(join(tmpdir(), 'reelcdn-offload-src-'));
  for (const t of world.titles) {
    const dir = writeHlsTitle(src, t.title, t.files.map((f) => f.size), t.id + 1);
    await ingestTitle(cluster.config, t.title, dir);
  }
  let simNow = DAY0;
  const clock = { now: () => simNow, monotonic: () => simNow, setTimeout: systemClock.setTimeout, clearTimeout: systemClock.clearTimeout };
  const origin = await startOrigin(cluster.config, clock);
  const root = resolve(import.meta.dirname, '..');
  const procs: ChildProcess[] = cluster.config.edges.map((e) =>
    spawn(process.execPath, [join(root, 'src/cli.js'), 'edge', '--config', cluster.file, '--id', e.id, '--workers', '1'], { env: { ...process.env, REELCDN_ADMIN_TOKEN: CLUSTER_ADMIN_TOKEN }, stdio: 'ignore' }),
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
    const nodes = new Map(cluster.config.edges.map((e) => [e.id, { id: e.id, isp: e.isp }]));
    const ring = new Ring([...nodes.keys()]);
    const out: DayResult[] = [];
    for (let d = 0; d < world.plays.length; d++) {
      simNow = DAY0 + d * DAY;
      const r = emptyDay(d);
      const plays: { title: string; at: number; isp: string }[] = [];
      /** A batch of plays as players make them, to the edge rankEdges picks from what the edges hold now. */
      const playAll = async (list: Play[]) => {
        const holders = new Map<string, Set<string>>();
        for (const e of cluster.config.edges) {
          const hl = (await (await fetch(`${e.adminUrl}/health`)).json()) as { fill: { heldTitles: string[] } };
          for (const t of hl.fill.heldTitles) (holders.get(t) ?? holders.set(t, new Set()).get(t)!).add(e.id);
        }
        origin.hits.length = 0;
        const queue = [...list];
        let bytes = 0;
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            for (let p = queue.shift(); p; p = queue.shift()) {
              const t = world.titles[p.title]!;
              plays.push({ title: t.title, isp: p.isp, at: simNow });
              const node = rankEdges({ title: t.title, isp: p.isp, edgesById: nodes, ring, eligible: new Set(nodes.keys()), holders: holders.get(t.title), spreadKey: spreadKeyOf(clientAddress(0, p.client)) })[0]!.id;
              const ids = t.rungs[p.rung]!;
              let left = Math.max(1, Math.floor(p.frac * ids.reduce((x, id) => x + world.files[id]!.size, 0)));
              for (let i = 0; i < ids.length && left > 0; i++) {
                const f = world.files[ids[i]!]!;
                // The slices the model counts: whole slices up to where the session stopped.
                const want = Math.min(f.size, Math.ceil(left / spec.sliceBytes) * spec.sliceBytes);
                left -= want;
                const path = `/c/${t.title}/seg${f.index}.m4s`;
                // A player's requests: 256 KiB ranges in order.
                for (let off = 0; off < want; off += 256 * 1024) {
                  const end = Math.min(want, off + 256 * 1024) - 1;
                  const res = await pools.get(node)!.request({ method: 'GET', path: `${path}?${signQuery(cluster.config.signing.keys, 'k1', path, Date.now() / 1000, 3600)}`, headers: { range: `bytes=${off}-${end}` } });
                  const body = Buffer.from(await res.body.arrayBuffer());
                  if (res.statusCode !== 206 && res.statusCode !== 200) throw new Error(`${node}${path} answered ${res.statusCode}`);
                  bytes += body.length;
                }
              }
            }
          }),
        );
        const miss = origin.hits.reduce((x, h) => x + h.bytes, 0);
        r.clientBytes += bytes;
        r.missBytes += miss;
        if (list.length > 0 && isPeak(list[0]!.hour)) {
          r.peakClientBytes += bytes;
          r.peakMissBytes += miss;
        }
      };
      // As in the model: the plays before the window, the night's fill, the rest of the day.
      const list = world.plays[d]!;
      await playAll(list.filter((p) => p.hour < spec.fillWindow[0]));
      if (fill) {
        cluster.config.isps[0]!.pinnedTitles = pinnedFor(world, d).get(isp.id)!;
        origin.hits.length = 0;
        const passes = await Promise.all(
          cluster.config.edges.map((e) => fetch(`${e.adminUrl}/fill?wait=1`, { method: 'POST', headers: auth }).then((res) => res.json() as Promise<{ bytes: { fetched: number }; startedAt?: string; finishedAt?: string }>)),
        );
        r.fillBytes = passes.reduce((x, p) => x + p.bytes.fetched, 0);
        r.fillInWindow = r.fillBytes;
        r.fillFromOrigin = origin.hits.reduce((x, h) => x + h.bytes, 0);
        for (const p of passes) {
          if (p.bytes.fetched > 0 && p.startedAt && p.finishedAt) report?.passes.push({ bytes: p.bytes.fetched, seconds: (Date.parse(p.finishedAt) - Date.parse(p.startedAt)) / 1000 });
        }
      }
      // The rest of the day in three batches, so the peak hours' misses are told apart.
      const [p0, p1] = [PEAK_HOURS[0]!, PEAK_HOURS.at(-1)! + 1];
      await playAll(list.filter((p) => p.hour >= spec.fillWindow[0] && p.hour < p0));
      await playAll(list.filter((p) => p.hour >= p0 && p.hour < p1));
      await playAll(list.filter((p) => p.hour >= p1));
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
    await rm(cluster.base, { recursive: true, force: true });
    await rm(src, { recursive: true, force: true });
  }
}

// ---------- report ----------

const gb = (n: number, unit: number) => (n / unit).toFixed(unit === 1e9 ? 0 : 1);
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const ratio = (x: number) => `${x.toFixed(2)}×`;

/** The strategies compared: the full planner, the same with one part switched off at a time, LRU alone. */
export function strategies(spec: WorldSpec): { full: Strategy; noStable: Strategy; noSpare: Strategy; noWeights: Strategy; before: Strategy; lru: Strategy } {
  const down = spec.lossDay ? { down: { day: spec.warmupDays + spec.days, edges: spec.isps.map((i) => `${i.id.slice(-1)}1`) } } : {};
  const full: Strategy = { name: 'fill+LRU', fill: true, weights: true, stability: spec.stability, spare: true, ...down };
  return {
    full,
    noStable: { ...full, name: '− hysteresis & churn cap', stability: undefined },
    noSpare: { ...full, name: '− spare replicas', spare: false },
    noWeights: { ...full, name: '− file weights', weights: false },
    before: { name: 'issue 12 planner (nightly re-rank, whole titles)', fill: true, ...down },
    lru: { name: 'LRU alone', fill: false, ...down },
  };
}

export interface Column {
  name: string;
  days: DayResult[];
  /** Print fill, origin and peak-hour origin bytes too. */
  bytes?: boolean;
}

export function printTable(title: string, world: World, cols: Column[]): void {
  const unitName = world.spec.unit === 1e9 ? 'GB' : 'MB';
  const u = world.spec.unit;
  console.log(`\n${title}`);
  console.log(['day', ...cols.flatMap((c) => (c.bytes ? [`${c.name} offload`, `fill ${unitName}`, `origin ${unitName}`, `peak origin ${unitName}`] : [`${c.name} offload`]))].join('\t'));
  const days = cols[0]!.days;
  const row = (label: string, get: (c: Column) => DayResult) =>
    console.log([label, ...cols.flatMap((c) => { const x = get(c); return c.bytes ? [pct(offload(x)), gb(x.fillBytes, u), gb(originBytes(x), u), gb(peakOriginBytes(x), u)] : [pct(offload(x))]; })].join('\t'));
  const label = (d: number) => (d < world.spec.warmupDays ? `w${d + 1}` : d < world.spec.warmupDays + world.spec.days ? `${d - world.spec.warmupDays + 1}` : 'edge lost');
  for (let d = 0; d < days.length; d++) row(label(d), (c) => c.days[d]!);
  row('week', (c) => week(world, c.days));
}

/** One row per strategy, the measured week: what the issue accounts for. */
export function printSummary(title: string, world: World, rows: Column[], lru: DayResult[]): void {
  const u = world.spec.unit;
  const unitName = u === 1e9 ? 'GB' : 'MB';
  const l = week(world, lru);
  console.log(`\n${title}`);
  console.log(['strategy', 'offload', `origin ${unitName} (fill + misses)`, '× LRU', `fill ${unitName} (from origin)`, `peak-hour origin ${unitName}`, '× LRU', 'fill inside window', `left for later nights ${unitName}`].join('\t'));
  for (const c of rows) {
    const w = week(world, c.days);
    console.log(
      [
        c.name,
        pct(offload(w)),
        `${gb(originBytes(w), u)} (${gb(w.fillFromOrigin, u)} + ${gb(w.missBytes, u)})`,
        ratio(originBytes(w) / originBytes(l)),
        `${gb(w.fillBytes, u)} (${gb(w.fillFromOrigin, u)})`,
        gb(peakOriginBytes(w), u),
        ratio(peakOriginBytes(w) / peakOriginBytes(l)),
        w.fillBytes === 0 ? '—' : pct(w.fillInWindow / w.fillBytes),
        gb(w.fillLeft, u),
      ].join('\t'),
    );
  }
}

/** Origin bytes per hour of the measured week, per strategy (misses; fill bytes in the window hours). */
export function printHours(world: World, cols: Column[]): void {
  const u = world.spec.unit;
  console.log(`\norigin ${u === 1e9 ? 'GB' : 'MB'} per local hour, measured week (fill counted in the window's first hour)`);
  console.log(['hour', ...cols.map((c) => c.name)].join('\t'));
  const weeks = cols.map((c) => week(world, c.days));
  for (let h = 0; h < 24; h++) {
    console.log([`${String(h).padStart(2, '0')}:00${PEAK_HOURS.includes(h) ? ' peak' : ''}`, ...weeks.map((w) => gb(w.hourlyMiss[h]! + (h === world.spec.fillWindow[0] ? w.fillFromOrigin : 0), u))].join('\t'));
  }
}

/** The measured days (after warm-up) summed. */
export function week(world: World, days: DayResult[]): DayResult {
  const m = days.slice(world.spec.warmupDays, world.spec.warmupDays + world.spec.days);
  const out = emptyDay(-1);
  for (const x of m) {
    for (const k of ['clientBytes', 'edgeBytes', 'fillBytes', 'fillFromOrigin', 'missBytes', 'peakClientBytes', 'peakMissBytes', 'fillInWindow', 'fillBudget', 'fillLeft'] as const) out[k] += x[k];
    x.hourlyMiss.forEach((b, h) => (out.hourlyMiss[h]! += b));
  }
  return out;
}

function describeWorld(w: World): string {
  const base = w.titles.filter((t) => t.releaseDay < 0);
  const cat = base.reduce((s, t) => s + t.bytes, 0);
  const perIsp = w.spec.isps[0]!.edges;
  const reads = w.plays.flat();
  const u = w.spec.unit === 1e9 ? 'GB' : 'MB';
  const st = w.spec.stability;
  return [
    `${w.spec.isps.map((i) => `${i.id}: ${i.edges} edges, Zipf ${i.zipf}`).join('; ')}`,
    `${base.length} titles, ${(cat / w.spec.unit).toFixed(0)} ${u} with every rung (median title ${(base.map((t) => t.bytes).sort((a, b) => a - b)[base.length >> 1]! / w.spec.unit).toFixed(1)} ${u}) + ${w.spec.releasesPerDay} releases/day, ${w.spec.fileSeconds} s files`,
    `disk ${(w.diskBytes / w.spec.unit).toFixed(1)} ${u} per edge: catalog = ${(cat / (w.diskBytes * perIsp)).toFixed(1)}× one ISP's disks (${(cat / (w.diskBytes * perIsp * w.spec.isps.length)).toFixed(1)}× all)`,
    `drift ${w.spec.drift}/day, ${w.spec.playsPerIspPerDay} plays/ISP/day, watch '${w.spec.watch}' (mean ${(reads.reduce((s, p) => s + p.frac, 0) / reads.length).toFixed(2)} of the rung read)`,
    `plays by local hour after DIURNAL (${pct(reads.filter((p) => isPeak(p.hour)).length / reads.length)} in 19:00-23:00); fill window ${w.spec.fillWindow.map((h) => `${String(h).padStart(2, '0')}:00`).join('-')} at ${w.spec.fillBytesPerSec / 1e6} MB/s per edge (${((w.spec.fillBytesPerSec * (w.spec.fillWindow[1] - w.spec.fillWindow[0]) * 3600) / w.spec.unit).toFixed(0)} ${u} a night)`,
    `stable placement: stays above ${st.stayRatio}× the cut, enters above ${st.enterRatio}×, churn ≤ ${st.maxChurnRatio * 100} % of a disk a night; spare replicas; weights from served reports`,
  ].join('\n  ');
}

const verdict = (ok: boolean) => (ok ? 'MET' : 'NOT MET');
const secs = (t: number) => `${((performance.now() - t) / 1000).toFixed(0)} s`;

async function main(): Promise<void> {
  const real = process.argv.includes('--real');
  const tStart = performance.now();
  const big = makeWorld(BIG);
  console.log(`model:\n  ${describeWorld(big)}`);
  const st = strategies(BIG);
  const t0 = performance.now();
  const run = (w: World, s: Strategy): Column => ({ name: s.name, days: simulate(w, s), bytes: true });
  const full = run(big, st.full);
  const lru = run(big, st.lru);
  // ABLATIONS=stable,spare,weights (the default), a subset, or 0; BEFORE=1 adds issue 12's planner, ORACLE=1 perfect-prediction bounds.
  const want = new Set((process.env.ABLATIONS ?? 'stable,spare,weights').split(','));
  const ablations = [
    ...(want.has('cache') ? [run(big, { ...st.full, name: '+ planner knows the edges\' caches (cached files cost no budget)', knowsCache: true })] : []),
    ...(want.has('stable') ? [run(big, st.noStable)] : []),
    ...(want.has('spare') ? [run(big, st.noSpare)] : []),
    ...(want.has('weights') ? [run(big, st.noWeights)] : []),
    ...(process.env.BEFORE === '1' ? [run(big, st.before)] : []),
    ...(process.env.ORACLE === '1'
      ? [run(big, { ...st.full, name: "oracle: yesterday's true popularity and shape, from scratch", oracle: 'yesterday', stability: undefined }), run(big, { ...st.full, name: "oracle: today's (unknowable) true popularity, from scratch", oracle: 'today', stability: undefined })]
      : []),
  ];
  const tSim = secs(t0);
  const t1 = performance.now();
  const ceilings = process.env.CEILINGS === '0' ? [] : [
    { name: 'ceiling: expected, byte ranges', days: ceiling(big, 'expected-slices') },
    { name: 'ceiling: expected, whole titles', days: ceiling(big, 'expected-titles') },
    { name: 'ceiling: clairvoyant, byte ranges', days: ceiling(big, 'seen-slices') },
    { name: 'ceiling: clairvoyant, whole titles', days: ceiling(big, 'seen-titles') },
    { name: "bound: yesterday's truth, byte ranges", days: ceiling(big, 'yesterday-slices') },
  ];
  printTable(`model by day (w = warm-up days; simulations ${tSim}, ceilings ${secs(t1)})`, big, [full, lru, ...ceilings]);
  printSummary('measured week, per strategy (each ablation row switches one part off)', big, [full, ...ablations, lru, ...[ceilings[0], ceilings[1], ceilings[4]].filter((c) => c !== undefined).map((c) => ({ ...c, bytes: true }))], lru.days);
  printHours(big, [full, lru]);

  // The day after the week: the first edge of each ISP down all day; spare replicas keep its hot titles off the origin.
  if (big.spec.lossDay) {
    const d = big.spec.warmupDays + big.spec.days;
    const u = big.spec.unit;
    const day = (c: Column) => `${gb(originBytes(c.days[d]!), u)} GB (peak ${gb(peakOriginBytes(c.days[d]!), u)}, offload ${pct(offload(c.days[d]!))})`;
    const mean = (c: Column) => gb(originBytes(week(big, c.days)) / big.spec.days, u);
    console.log(`\n${st.full.down!.edges.join(' and ')} down all day after the week — origin bytes that day: ${[full, ...ablations, lru].map((c) => `${c.name} ${day(c)} [week's daily mean ${mean(c)} GB]`).join('; ')}`);
  }

  // Targets.
  const wFull = week(big, full.days);
  const wLru = week(big, lru.days);
  const volumes = (process.env.TARGET_PLAYS ?? '1000,8000,32000').split(',').filter(Boolean).map(Number);
  console.log('\ntargets:');
  for (const plays of volumes) {
    const t = performance.now();
    const [f, l, w] = plays === BIG.playsPerIspPerDay ? [wFull, wLru, big] : (() => {
      const world = makeWorld({ ...BIG, playsPerIspPerDay: plays });
      return [week(world, simulate(world, st.full)), week(world, simulate(world, st.lru)), world] as const;
    })();
    const u = w.spec.unit;
    console.log(`  weekly origin bytes at ${plays} plays/ISP/day: fill+LRU ${gb(originBytes(f), u)} GB (fill ${gb(f.fillFromOrigin, u)} + misses ${gb(f.missBytes, u)}) vs LRU ${gb(originBytes(l), u)} GB = ${ratio(originBytes(f) / originBytes(l))} (≤ 1.0×: ${verdict(originBytes(f) <= originBytes(l))}); peak ${ratio(peakOriginBytes(f) / peakOriginBytes(l))}; offload ${pct(offload(f))} vs ${pct(offload(l))} (${secs(t)})`);
  }
  const peakRatio = peakOriginBytes(wFull) / peakOriginBytes(wLru);
  console.log(`  peak-hour (19:00-23:00) origin bytes: ${gb(peakOriginBytes(wFull), big.spec.unit)} GB vs LRU ${gb(peakOriginBytes(wLru), big.spec.unit)} GB = ${ratio(peakRatio)} (≤ 0.5×: ${verdict(peakRatio <= 0.5)})`);
  if (ceilings.length > 0) {
    const exp = week(big, ceilings[0]!.days);
    const gap = (offload(exp) - offload(wFull)) * 100;
    const lag = week(big, ceilings[4]!.days);
    console.log(`  offload ${pct(offload(wFull))} vs expected ceiling (byte ranges) ${pct(offload(exp))}: ${gap.toFixed(1)} points under (within 1: ${verdict(gap <= 1)}); knowing yesterday's true popularity perfectly gives ${pct(offload(lag))}`);
    console.log(`  peak-hour misses of those placements (no LRU): expected ceiling ${ratio(peakOriginBytes(exp) / peakOriginBytes(wLru))} LRU's, yesterday's truth ${ratio(peakOriginBytes(lag) / peakOriginBytes(wLru))}`);
  }
  const worstNight = Math.max(...full.days.slice(big.spec.warmupDays).map((d) => d.fillBytes / d.fillBudget));
  console.log(`  fill inside the window: ${pct(wFull.fillInWindow / Math.max(1, wFull.fillBytes))} of fill bytes; busiest measured night used ${pct(worstNight)} of the window's rate-capped bytes (${verdict(wFull.fillInWindow === wFull.fillBytes && worstNight <= 1)})`);
  console.log(`\nbench:offload model total ${secs(tStart)}`);
  if (!real) return;
  const small = makeWorld(SMALL);
  const sst = strategies(SMALL);
  console.log(`\nsmall:\n  ${describeWorld(small)}`);
  // What the real origin runs: stable placement and spare replicas from the cluster file's defaults; no served reports here.
  const asOrigin: Strategy = { ...sst.full, name: 'model fill', weights: false };
  const mFill = simulate(small, asOrigin);
  const mLru = simulate(small, sst.lru);
  const t2 = performance.now();
  const passes: { bytes: number; seconds: number }[] = [];
  const rFill = await runReal(small, true, { passes });
  const rLru = await runReal(small, false);
  printTable(`small, model vs real processes (${secs(t2)} real)`, small, [
    { name: 'model fill', days: mFill, bytes: true },
    { name: 'real fill', days: rFill, bytes: true },
    { name: 'model LRU', days: mLru, bytes: true },
    { name: 'real LRU', days: rLru, bytes: true },
    { name: 'ceiling: expected, byte ranges', days: ceiling(small, 'expected-slices') },
  ]);
  const worst = Math.max(...mFill.map((d, i) => Math.abs(offload(d) - offload(rFill[i]!))), ...mLru.map((d, i) => Math.abs(offload(d) - offload(rLru[i]!))));
  const weekGap = Math.max(Math.abs(offload(week(small, mFill)) - offload(week(small, rFill))), Math.abs(offload(week(small, mLru)) - offload(week(small, rLru))));
  console.log(`  model vs real: the week within ${(weekGap * 100).toFixed(1)} points (within 3: ${verdict(weekGap <= 0.03)}); the worst single day ${(worst * 100).toFixed(1)} points`);
  // A token bucket: a pass may fetch its rate × its time plus one burst (max(rate, slice)).
  const burst = Math.max(REAL_FILL_RATE, small.spec.sliceBytes);
  const over = passes.filter((p) => p.bytes > REAL_FILL_RATE * p.seconds + burst);
  const worstPass = passes.reduce((m, p) => Math.max(m, p.bytes / (REAL_FILL_RATE * p.seconds + burst)), 0);
  console.log(`  real fill passes (started by POST /fill; the window itself is checked by test/fill-night.test.ts): ${passes.length}, ${(passes.reduce((x, p) => x + p.bytes, 0) / 1e6).toFixed(1)} MB in ${passes.reduce((x, p) => x + p.seconds, 0).toFixed(1)} s of passes; the fullest used ${pct(worstPass)} of rate × time + one burst at ${(REAL_FILL_RATE / 1e6).toFixed(0)} MB/s (under the cap: ${verdict(over.length === 0)})`);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

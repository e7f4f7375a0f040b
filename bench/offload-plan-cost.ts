/**
 * `node dist/bench/offload-plan-cost.js` (after `npm run build`): what a fill plan costs the
 * origin, and what the origin's `/o/` answers feel of it (issue 13, "planning cost").
 *
 * For each catalog size (TITLES, default 1000,10000,50000) a real origin (createOriginServer, in
 * this process, a data folder as `reelcdn origin` reads it) is given a synthetic catalog of that
 * many titles (10 renditions × FILES files, default 10: catalog.json written directly, the files
 * themselves absent — only one small real title is served), a week of plays (PLAYS per ISP per
 * day, default 8,000, Zipf 0.9 and 1.1 over two ISPs of three edges) and a week of serve reports
 * shaped like viewing (rung shares × a watch-through curve), so plans are weighted as in
 * production. Then, while 4 loops fetch a signed `/o/` object from the real title (5 ms apart):
 *
 * 1. first plan: `GET /v1/manifests/a1` (it waits for the first plan) — its time, the `/o/`
 *    answers' worst latency meanwhile, and the event loop's worst delay (monitorEventLoopDelay);
 * 2. a replan: 10 % more plays posted, then (replanMs later) a manifest asked again — the `/o/`
 *    answers and the loop's delay over the next REPLAN_WATCH_S seconds (default 1.5 × the first
 *    plan, at least 2 s), and the plan's own time from `reelcdn_origin_fill_plan_seconds` where
 *    the origin has it;
 * 3. a quiet replan: nothing changed — the same window.
 *
 * Each size runs twice (MODES, default inline,worker): the plans on the origin's event loop, as
 * before, and in the worker thread, as the origin runs now.
 * Knobs: TITLES, FILES, PLAYS, DAYS (days of history, default 7), SEED, REPLAN_WATCH_S, MODES, PACE_MS
 * (each `/o/` loop's pause between requests, default 5).
 * At 10,000 titles and more: `node --max-old-space-size=8192` (the origin and the bench share a heap).
 * Results and method: docs/fill.md, "Planning cost".
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Pool } from 'undici';
import { type ClusterConfig, validateCluster } from '../src/common/config.js';
import { signQuery } from '../src/common/signing.js';
import type { CatalogDocument, TitleEntry } from '../src/origin/catalog.js';
import type { ServedDay } from '../src/origin/file-weights.js';
import { ingestTitle } from '../src/origin/ingest.js';
import type { DayCounts } from '../src/origin/plays.js';
import { inlinePlanRunner } from '../src/origin/fill-plan-runner.js';
import { createOriginServer } from '../src/origin/server.js';
import { CLUSTER_ADMIN_TOKEN, CLUSTER_KEYS, freePorts, writeHlsTitle } from './offload-cluster.js';
import { LADDER_KBPS, RUNG_SHARE, trueSurvival } from './offload.js';
import { seededRandom } from './seeded-random.js';

const envNum = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d);
const SIZES = (process.env.TITLES ?? '1000,10000,50000').split(',').map(Number);
/** `worker`: as the origin runs (plans in a worker thread); `inline`: the same plans on the event loop, as before. */
const MODES = (process.env.MODES ?? 'inline,worker').split(',') as ('inline' | 'worker')[];
const FILES = envNum('FILES', 10);
const PLAYS = envNum('PLAYS', 8000);
const DAYS = envNum('DAYS', 7);
const SEED = envNum('SEED', 42);
/** Each `/o/` loop waits this long between its requests (ms): an origin busy, not saturated, with edges' misses. */
const PACE_MS = envNum('PACE_MS', 5);
const DAY = 86_400_000;
const ISPS = [
  { id: 'isp-a', zipf: 0.9 },
  { id: 'isp-b', zipf: 1.1 },
];
const EDGES_PER_ISP = 3;
/** The title the `/o/` loops read. */
const REAL = 'real-title';

interface Synthetic {
  entries: TitleEntry[];
  plays: Record<string, DayCounts>;
  served: Record<string, ServedDay>;
  bytes: number;
  files: number;
}

/** N titles of 10 renditions × FILES files (40-105 min, sizes by the ladder), a week of plays and serve sums. */
function synthesize(n: number, today: number): Synthetic {
  const r = seededRandom(SEED + n);
  const entries: TitleEntry[] = [];
  let bytes = 0;
  let files = 0;
  for (let i = 0; i < n; i++) {
    const minutes = r() < 0.6 ? 20 + 45 * r() : 80 + 100 * r();
    const list: TitleEntry['files'] = [{ path: 'master.m3u8', size: 2_000, sha256: sha(i, 'm'), contentType: 'application/vnd.apple.mpegurl' }];
    LADDER_KBPS.forEach((kbps, rung) => {
      const rungBytes = Math.round((minutes * 60 * kbps * 1000) / 8);
      list.push({ path: `r${rung}/index.m3u8`, size: 1_000 + FILES * 40, sha256: sha(i, `p${rung}`), contentType: 'application/vnd.apple.mpegurl' });
      for (let j = 0; j < FILES; j++) list.push({ path: `r${rung}/seg${String(j).padStart(4, '0')}.m4s`, size: Math.round(rungBytes / FILES), sha256: sha(i, `${rung}.${j}`), contentType: 'video/mp4' });
    });
    list.sort((a, b) => (a.path < b.path ? -1 : 1));
    const total = list.reduce((s, f) => s + f.size, 0);
    entries.push({ title: `t${i}`, kind: 'hls', manifests: ['master.m3u8'], files: list, bytes: total, ingestedAt: '2026-01-01T00:00:00.000Z' });
    bytes += total;
    files += list.length;
  }
  const plays: Record<string, DayCounts> = {};
  const served: Record<string, ServedDay> = {};
  const order = ISPS.map(() => Array.from({ length: n }, (_, i) => i).sort(() => r() - 0.5));
  for (let d = DAYS; d >= 1; d--) {
    const day = new Date(today - d * DAY).toISOString().slice(0, 10);
    const counts: DayCounts = {};
    const sums: ServedDay = {};
    ISPS.forEach((isp, k) => {
      const w = order[k]!.map((_, rank) => Math.pow(rank + 1, -isp.zipf));
      const cum: number[] = [];
      w.reduce((s, x) => (cum.push(s + x), s + x), 0);
      const total = cum.at(-1)!;
      const mine: Record<string, number> = (counts[isp.id] = {});
      for (let p = 0; p < PLAYS; p++) {
        const x = r() * total;
        let lo = 0;
        let hi = n - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (cum[mid]! < x) lo = mid + 1;
          else hi = mid;
        }
        const t = `t${order[k]![lo]!}`;
        mine[t] = (mine[t] ?? 0) + 1;
      }
    });
    // Serve sums as edges report them: each play reads its rung's files to its watch-through.
    const perTitle = new Map<string, number>();
    for (const m of Object.values(counts)) for (const [t, c] of Object.entries(m)) perTitle.set(t, (perTitle.get(t) ?? 0) + c);
    for (const [t, c] of perTitle) {
      const e = entries[Number(t.slice(1))]!;
      const td: ServedDay[string] = (sums[t] = { plays: c, files: {} });
      for (const f of e.files) {
        const m = /^r(\d+)\/seg(\d+)/.exec(f.path);
        const read = m ? c * RUNG_SHARE[Number(m[1])]! * trueSurvival(Number(m[2]) / FILES, 'curve') : c;
        if (read <= 0) continue;
        td.files[f.path] = { requests: Math.max(1, Math.round(read)), bytes: Math.round(read * f.size) };
      }
    }
    plays[day] = counts;
    served[day] = sums;
  }
  return { entries, plays, served, bytes, files };
}

const sha = (i: number, s: string) => `${i.toString(16)}-${s}`.padEnd(64, '0').replace(/[^0-9a-f]/g, 'a');

async function clusterFor(base: string, diskBytes: number): Promise<ClusterConfig> {
  const ports = await freePorts(2);
  const raw = {
    signing: { keys: CLUSTER_KEYS, activeKey: 'k1', ttlSeconds: 3600, required: true },
    origin: { url: `http://127.0.0.1:${ports[0]}`, adminUrl: `http://127.0.0.1:${ports[1]}`, dataDir: 'origin' },
    steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
    isps: ISPS.map((i, k) => ({ id: i.id, prefixes: [`10.${k}.0.0/16`] })),
    edges: ISPS.flatMap((isp) =>
      Array.from({ length: EDGES_PER_ISP }, (_, e) => ({
        id: `${isp.id.slice(-1)}${e + 1}`,
        isp: isp.id,
        url: `http://127.0.0.1:${10_000 + e}`,
        adminUrl: `http://127.0.0.1:${11_000 + e}`,
        dataDir: `edge-${isp.id}-${e}`,
        diskBytes,
        memoryBytes: 16 * 1024 * 1024,
        sliceBytes: 2 * 1024 * 1024,
      })),
    ),
    admin: { openHealth: true },
    log: { level: 'silent' },
  };
  return validateCluster(raw, base);
}

interface Window {
  answers: number;
  /** Answered 503 by the origin's overload guard. */
  shed: number;
  /** The longest time without an /o/ answer. */
  gapMs: number;
  worstMs: number;
  p99Ms: number;
  loopMaxMs: number;
  loopP99Ms: number;
  /** CPU of the event loop's thread over the window (the /o/ client loops run on it too), and the window's length. */
  mainCpuS: number;
  seconds: number;
}

interface Row {
  mode: string;
  titles: number;
  files: number;
  catalogGB: number;
  loadS: number;
  firstPlanS: number;
  firstPlanCpuS: number | undefined;
  replanCpuS: number | undefined;
  first: Window;
  replanS: number | undefined;
  replan: Window;
  quiet: Window;
  quietPlans: number | undefined;
}

async function runSize(n: number, mode: 'inline' | 'worker'): Promise<Row> {
  const now = Date.now();
  let syn: Synthetic | undefined = synthesize(n, now);
  const { files: synFiles, bytes: synBytes } = syn;
  const base = await mkdtemp(join(tmpdir(), 'reelcdn-plancost-'));
  // Disks: the catalog is 5× one ISP's disks (as bench:offload's default model).
  const config = await clusterFor(base, Math.floor(synBytes / 5 / EDGES_PER_ISP));
  const dataDir = config.origin.dataDir;
  mkdirSync(dataDir, { recursive: true });
  const src = join(base, 'src');
  await ingestTitle(config, REAL, writeHlsTitle(src, REAL, [64 * 1024, 64 * 1024], 7));
  const { readFileSync } = await import('node:fs');
  const doc = JSON.parse(readFileSync(join(dataDir, 'catalog.json'), 'utf8')) as CatalogDocument;
  doc.titles.push(...syn.entries);
  writeFileSync(join(dataDir, 'catalog.json'), JSON.stringify(doc));
  writeFileSync(join(dataDir, 'plays.json'), JSON.stringify({ version: 1, days: syn.plays }));
  writeFileSync(join(dataDir, 'served.json'), JSON.stringify({ version: 1, sliceBytes: 2 * 1024 * 1024, days: syn.served }));
  syn = undefined; // the origin reads its own copy: the bench's would double the heap

  const registry = new Registry();
  const server = createOriginServer({
    config,
    logger: pino({ level: 'silent' }),
    registry,
    adminToken: CLUSTER_ADMIN_TOKEN,
    catalogPollMs: 0,
    playFlushMs: 60_000,
    replanMs: 1000,
    ...(mode === 'inline' ? { planRunner: inlinePlanRunner() } : {}),
  });
  const t0 = performance.now();
  const { publicUrl, adminUrl } = await server.start();
  const loadS = (performance.now() - t0) / 1000;

  // The `/o/` loops: each answer's end time and latency.
  const answers: { at: number; ms: number; shed: boolean }[] = [];
  const pool = new Pool(publicUrl, { connections: 4 });
  const path = `/o/${REAL}/seg0.m4s`;
  let running = true;
  const loops = Array.from({ length: 4 }, async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, PACE_MS));
      const start = performance.now();
      const res = await pool.request({ method: 'GET', path: `${path}?${signQuery(config.signing.keys, 'k1', path, Date.now() / 1000, 3600)}` });
      await res.body.arrayBuffer();
      // 503: the origin shed it (its loop over the delay budget, LoopMonitor) — counted, not fatal.
      if (res.statusCode !== 200 && res.statusCode !== 503) throw new Error(`/o/ answered ${res.statusCode}`);
      const end = performance.now();
      answers.push({ at: end, ms: end - start, shed: res.statusCode === 503 });
    }
  });
  const admin = new Pool(adminUrl, { connections: 2 });
  const auth = { authorization: `Bearer ${CLUSTER_ADMIN_TOKEN}` };
  const manifest = async () => {
    const res = await admin.request({ method: 'GET', path: '/v1/manifests/a1', headers: auth });
    const body = (await res.body.json()) as { version: string };
    if (res.statusCode !== 200) throw new Error(`manifest answered ${res.statusCode}`);
    return body.version;
  };
  // Enabled once: a histogram enabled at a window's start misses a stall that begins at once.
  const eld = monitorEventLoopDelay({ resolution: 5 });
  eld.enable();
  const watch = async (fn: () => Promise<void>): Promise<Window> => {
    eld.reset();
    const from = performance.now();
    const cpu = process.threadCpuUsage();
    await fn();
    const to = performance.now();
    const used = process.threadCpuUsage(cpu);
    // Answers that ended in the window, or started in it.
    const inWindow = answers.filter((a) => a.at >= from && a.at - a.ms <= to);
    const seen = inWindow.map((a) => a.ms).sort((a, b) => a - b);
    // The longest time no /o/ answer came (the loops pause 5 ms between requests: a stall shows
    // here, not in one answer's latency, when it falls in a pause).
    const ends = [from, ...inWindow.map((a) => a.at).filter((t) => t <= to).sort((a, b) => a - b), to];
    const gap = Math.max(...ends.slice(1).map((t, i) => t - ends[i]!));
    return {
      answers: seen.length,
      shed: inWindow.filter((a) => a.shed).length,
      worstMs: seen.at(-1) ?? NaN,
      gapMs: gap,
      p99Ms: seen[Math.floor(seen.length * 0.99)] ?? NaN,
      loopMaxMs: eld.max / 1e6,
      loopP99Ms: eld.percentile(99) / 1e6,
      mainCpuS: (used.user + used.system) / 1e6,
      seconds: (to - from) / 1000,
    };
  };
  /** Plans made so far, their wall seconds and the planner thread's CPU seconds (the origin's metrics). */
  const planSeconds = async (): Promise<{ count: number; sum: number; cpu: number } | undefined> => {
    const m = registry.getSingleMetric('reelcdn_origin_fill_plan_seconds');
    const c = registry.getSingleMetric('reelcdn_origin_fill_plan_cpu_seconds_total');
    if (!m || !c) return undefined;
    const v = (await m.get()).values as { metricName?: string; value: number }[];
    const count = v.find((x) => x.metricName?.endsWith('_count'))?.value ?? 0;
    const sum = v.find((x) => x.metricName?.endsWith('_sum'))?.value ?? 0;
    return { count, sum, cpu: (await c.get()).values[0]?.value ?? 0 };
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  await sleep(500); // the loops warm up
  let firstPlanS = 0;
  let watchMs = 0;
  const none = await planSeconds();
  // The first plan, and as long again after it (its standing document is saved then).
  const first = await watch(async () => {
    const s = performance.now();
    await manifest();
    firstPlanS = (performance.now() - s) / 1000;
    watchMs = envNum('REPLAN_WATCH_S', Math.max(2, 1.5 * firstPlanS)) * 1000;
    await sleep(watchMs);
  });
  const afterFirst = await planSeconds();
  const firstPlanCpuS = none && afterFirst ? afterFirst.cpu - none.cpu : undefined;

  // 10 % more plays (of a day's), skewed to the top titles: the inputs changed enough to matter.
  const extra: { title: string; isp: string; at: number }[] = [];
  const r = seededRandom(SEED + 7);
  for (let k = 0; k < Math.ceil(PLAYS * ISPS.length * 0.1); k++) extra.push({ title: `t${Math.floor(Math.pow(r(), 3) * n)}`, isp: ISPS[k % ISPS.length]!.id, at: Date.now() });
  for (let i = 0; i < extra.length; i += 5000) {
    const res = await admin.request({ method: 'POST', path: '/v1/plays', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ plays: extra.slice(i, i + 5000) }) });
    await res.body.dump();
  }
  await sleep(1100); // replanMs
  const before = await planSeconds();
  const replan = await watch(async () => {
    await manifest();
    await sleep(watchMs);
  });
  const after = await planSeconds();
  const replanS = before && after && after.count > before.count ? (after.sum - before.sum) / (after.count - before.count) : undefined;
  const replanCpuS = before && after && after.count > before.count ? (after.cpu - before.cpu) / (after.count - before.count) : undefined;

  await sleep(1100);
  const quietBefore = await planSeconds();
  const quiet = await watch(async () => {
    await manifest();
    await sleep(watchMs);
  });
  const quietAfter = await planSeconds();

  running = false;
  await Promise.all(loops);
  eld.disable();
  await pool.close();
  await admin.close();
  await server.close();
  await rm(base, { recursive: true, force: true });
  return {
    mode,
    titles: n,
    files: synFiles,
    catalogGB: synBytes / 1e9,
    loadS,
    firstPlanS,
    first,
    firstPlanCpuS,
    replanS,
    replanCpuS,
    replan,
    quiet,
    quietPlans: quietBefore && quietAfter ? quietAfter.count - quietBefore.count : undefined,
  };
}

const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const win = (w: Window) => `${w.seconds.toFixed(1)} | ${w.mainCpuS.toFixed(2)} | ${w.answers} | ${w.shed} | ${ms(w.p99Ms)} | ${ms(w.worstMs)} | **${ms(w.gapMs)}** | ${ms(w.loopP99Ms)} | ${ms(w.loopMaxMs)}`;

async function main(): Promise<void> {
  console.log(`# fill planning cost — ${FILES} files per rendition, ${PLAYS} plays/ISP/day, ${DAYS} days of plays and serve reports, 2 ISPs × ${EDGES_PER_ISP} edges, node ${process.version}`);
  console.log('| planner | titles | files | catalog TB | origin start s | first plan s (wall) | its CPU s | replan s (wall) | its CPU s | quiet replans |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  const rows: Row[] = [];
  for (const n of SIZES) for (const mode of MODES) {
    const row = await runSize(n, mode);
    rows.push(row);
    const f = (x: number | undefined) => (x === undefined ? '–' : x.toFixed(2));
    console.log(`| ${mode} | ${n} | ${row.files} | ${(row.catalogGB / 1000).toFixed(1)} | ${row.loadS.toFixed(1)} | ${row.firstPlanS.toFixed(2)} | ${f(row.firstPlanCpuS)} | ${f(row.replanS)} | ${f(row.replanCpuS)} | ${row.quietPlans ?? '–'} |`);
  }
  console.log('\n`/o/` answers (4 loops, 5 ms apart) and the origin\'s event-loop delay, ms');
  console.log('| planner | titles | window | s | event-loop thread CPU s | /o/ answers | shed (503) | /o/ p99 | /o/ worst | longest without an /o/ answer | loop p99 | loop max |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const row of rows) {
    console.log(`| ${row.mode} | ${row.titles} | first plan | ${win(row.first)} |`);
    console.log(`| ${row.mode} | ${row.titles} | replan (10 % more plays) | ${win(row.replan)} |`);
    console.log(`| ${row.mode} | ${row.titles} | quiet (nothing changed) | ${win(row.quiet)} |`);
  }
}

await main();

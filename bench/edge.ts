/**
 * `npm run bench:edge` — ReelCDN's edge, run as deployed (signing required, log level info,
 * access log on), against nginx proxy_cache + slice and Varnish (malloc, and file for disk hits),
 * on loopback, with wrk (autocannon when wrk is not installed). See docs/benchmarks.md.
 *
 * Each workload first measures the client's own ceiling (the same client, connections and cores
 * against a bare node:http server handing out a Buffer of the answer's size), and again after the
 * servers (the higher counts); any figure above 70 % of it is marked client-bound. For each
 * server: fill pass(es), a short warm-up, the measured run.
 *
 *   hot-2m     Range: bytes=a-(a+2MiB-1) at random offsets over one 64 MiB file, all in memory
 *   hot-16k    whole GETs of 2,000 16 KiB objects, all in memory
 *   disk-tier  whole GETs of ~2 MiB segments cycling over a set several times memoryBytes
 *              (so ReelCDN serves them from its disk tier / the page cache, never memory)
 *   cold       one request per never-seen 512 KiB object (bounded count): fetch, store, serve
 *   workers-2  hot-16k and disk-tier again with the edge at --workers 2 and nginx at
 *              worker_processes 2, nothing pinned
 *   tls-hot-2m, tls-hot-16k
 *              hot-2m and hot-16k over HTTPS (TLS 1.3, TLS_AES_128_GCM_SHA256 forced on every
 *              server, one certificate), against nginx with `listen ... ssl` (Varnish has no TLS);
 *              each right after its plain twin, by a second edge and a second nginx listening
 *              HTTPS. The TLS cost per MiB is the CPU per answer with TLS minus without.
 *
 * Environment knobs: BENCH_DURATION (s, default 8), BENCH_TARGETS (e.g. "ReelCDN,nginx";
 * "varnish" means both Varnish stores, "varnish-file" the file store alone), BENCH_WORKLOADS
 * (e.g. "hot-2m,hot-16k,workers-2"; "tls" is the four workloads the TLS rows need), or the same
 * list as `--only LIST` on the command line (`npm run bench:edge -- --only tls`), BENCH_PIN=0 (no CPU pinning), BENCH_CLIENT=autocannon
 * (even when wrk is installed), BENCH_CPU_PROF=DIR (the edge child runs with --cpu-prof into DIR),
 * BENCH_EDGE_CLI=path/to/dist/src/cli.js (another build of the edge, for A/B), BENCH_JSON=FILE
 * (results as JSON), BENCH_KEEP=1 (keep the temp dir).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { RssSampler, cleanupNow, installCleanupHandlers, onCleanup, spawnTracked, stopChild, trackTempDir, treeCpuSeconds } from './edge-procs.js';
import {
  EdgeHasNoWorkersFlag,
  type Target,
  type TargetOptions,
  edgeCli,
  edgeHasWorkersFlag,
  nginxHasSlice,
  onPath,
  startBare,
  startNginx,
  startReelcdn,
  startVarnish,
} from './edge-targets.js';
import { runAutocannon } from './edge/autocannon-load.js';
import type { LoadPlan, LoadResult } from './edge/load.js';
import { type EdgeMemory, type Measured, ceilings, figures, memoryTable, progressLine, resultsTable, runLabel, tlsCostTable, verdictTable } from './edge/report.js';
import { type BenchTls, TLS_CIPHER, TLS_PROTOCOL, makeBenchTls } from './edge/tls.js';
import { tlsCosts } from './edge/tls-cost.js';
import { type ServerName, ceilingFor, isClientBound, targetVerdicts, workersVerdicts } from './edge/verdicts.js';
import {
  COLD_COUNT,
  DISK_BYTES,
  MEMORY_BYTES,
  type Req,
  SLICE_BYTES,
  type Workload,
  contentSummary,
  generateContent,
  selectWorkloads,
  signed,
  workloads,
} from './edge/workloads.js';
import { runWrk, wrkScript } from './edge/wrk.js';

const DURATION = Number(process.env.BENCH_DURATION ?? 8);
const WARMUP_SECONDS = 2;
/** The ceiling needs no long run: a bare server's rate is steady after a second. */
const CEILING_SECONDS = Math.max(3, Math.round(DURATION / 2));
/** Tokens valid for the whole run, however long (they are signed once, at the start). */
const SIGN_TTL_SECONDS = 6 * 3600;
const WORKERS_N = 2;
const WORKERS_WORKLOADS: Workload['key'][] = ['hot-16k', 'disk-tier'];

interface ClientSetup {
  kind: 'wrk' | 'autocannon';
  /** `taskset -c <cpus>` for wrk, or []. */
  pin: string[];
  threads: number;
}

const say = (s: string) => process.stdout.write(`${s}\n`);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

// ---------------------------------------------------------------- driving

// Short keep-alive: Varnish closes idle connections after 5 s and a reused dead one fails.
// The bench CA is added once it exists (HTTPS servers); plain connections ignore it.
let fillAgent = new Agent({ keepAliveTimeout: 1_000, connections: 16 });

async function fetchAll(url: string, range: string | undefined): Promise<number> {
  const res = await request(url, { dispatcher: fillAgent, headers: range ? { range } : {} });
  for await (const _ of res.body) {
    /* read it all: the cache keeps what it finished */
  }
  return res.statusCode;
}

/** Fetches every item `passes` times; returns the answers that were not 200/206. */
async function fillCache(base: string, list: Req[], passes: number, concurrency = 8): Promise<string[]> {
  const failures: string[] = [];
  for (let p = 0; p < passes; p++) {
    let next = 0;
    const worker = async () => {
      while (next < list.length) {
        const item = list[next++]!;
        let status: number;
        try {
          status = await fetchAll(base + item.path, item.range);
        } catch {
          status = await fetchAll(base + item.path, item.range); // once more, on a new connection
        }
        if (status !== 200 && status !== 206) failures.push(`${item.path.replace(/\?.*/, '')} HTTP ${status}`);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }
  return failures;
}

/** wrk scripts by plan: written once to the temp dir, reused for every server. */
const scripts = new Map<string, string>();

/** The bench's certificate, made at the start when an HTTPS workload runs. */
let benchTls: BenchTls | undefined;

async function runLoad(dir: string, url: string, w: Workload, client: ClientSetup, seconds: number | undefined): Promise<LoadResult> {
  const plan: LoadPlan = {
    requests: w.requests,
    stride: w.stride,
    connections: w.connections,
    threads: client.kind === 'wrk' ? client.threads : 1,
    ...(seconds === undefined ? { amount: w.amount } : {}),
    seconds: seconds ?? DURATION,
  };
  if (client.kind === 'autocannon') return runAutocannon(url, plan, benchTls?.ca);
  const key = `${w.key}-t${plan.threads}${plan.amount !== undefined ? '-bounded' : ''}`;
  let scriptPath = scripts.get(key);
  if (!scriptPath) {
    scriptPath = join(dir, `wrk-${key}.lua`);
    writeFileSync(scriptPath, wrkScript(plan));
    scripts.set(key, scriptPath);
  }
  return runWrk({ url, scriptPath, plan, pin: client.pin });
}

async function originRequests(originUrl: string): Promise<number> {
  const res = await fetch(`${originUrl}/_bench/requests`);
  return Number((await res.text()).trim());
}

interface Running {
  target: Target;
  rss: RssSampler;
  /** Its listener is HTTPS. */
  tls?: boolean;
}

type Starter = { name: ServerName; start: () => Promise<Target>; only?: Workload['key'][]; tls?: boolean };

async function measure(
  dir: string,
  { target, rss }: Running,
  w: Workload,
  workers: number,
  client: ClientSetup,
  originUrl: string,
): Promise<Measured> {
  const bare = target.name === 'node:http';
  rss.reset();
  // Memory tiers are per worker and 2Q admits an object seen twice: N workers need N times the
  // passes for each worker's memory to hold the hot set (the kernel spreads connections).
  const failed = !bare && w.fillPasses > 0 ? await fillCache(target.url, w.fill, w.fillPasses * workers) : [];
  if (failed.length > 0) say(`  ${target.name}: ${failed.length} fill answers were not 200/206 (first: ${failed[0]})`);
  if (w.warmup || bare) await runLoad(dir, target.url, w, client, bare ? 1 : WARMUP_SECONDS);
  const tiersBefore = target.tiers ? await target.tiers() : undefined;
  const originBefore = await originRequests(originUrl);
  const cpuBefore = treeCpuSeconds(target.pid);
  const bounded = w.amount !== undefined;
  const res = await runLoad(dir, target.url, w, client, bounded ? undefined : bare ? CEILING_SECONDS : DURATION);
  const cpuAfter = treeCpuSeconds(target.pid);
  const originAfter = await originRequests(originUrl);
  const tiersAfter = target.tiers ? await target.tiers() : undefined;
  const tiers =
    tiersBefore && tiersAfter ? Object.fromEntries(Object.entries(tiersAfter).map(([k, v]) => [k, v - (tiersBefore[k] ?? 0)])) : undefined;
  return {
    server: target.name,
    workload: w.key,
    workers,
    load: res,
    cpuUsPerAnswer: res.requests > 0 ? ((cpuAfter - cpuBefore) * 1e6) / res.requests : 0,
    peakRss: rss.peak(),
    clientBound: false, // settled once the workload's ceiling is known
    tiers,
    originRequests: originAfter - originBefore,
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  installCleanupHandlers();
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'reelcdn-bench-'));
  if (process.env.BENCH_KEEP !== '1') trackTempDir(dir);
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)}s`;

  const want = (process.env.BENCH_TARGETS ?? 'ReelCDN,nginx,Varnish').split(',').map((s) => s.trim().toLowerCase());
  const nowSec = Math.floor(Date.now() / 1000);
  const all = workloads((path) => signed(path, nowSec, SIGN_TTL_SECONDS));
  let wantWorkloads: string[] | undefined;
  try {
    const { values: args } = parseArgs({ options: { only: { type: 'string' } } });
    wantWorkloads = selectWorkloads(args.only ?? process.env.BENCH_WORKLOADS, all.map((w) => w.key));
  } catch (err) {
    // A mistyped flag or workload: one line, before anything starts.
    process.stderr.write(`bench:edge: ${(err as Error).message}\n`);
    cleanupNow();
    process.exit(2);
  }
  // Each HTTPS workload right after its plain twin: the two CPU figures the TLS cost is the
  // difference of are measured as close in time as they can be.
  const ordered = [...all.filter((w) => !w.tls)].flatMap((w) => [w, ...all.filter((t) => t.tls?.plain === w.key)]);
  const ws = ordered.filter((w) => !wantWorkloads || wantWorkloads.includes(w.key));
  const withWorkers = !wantWorkloads || wantWorkloads.includes('workers-2');
  const tlsKeys = ws.filter((w) => w.tls).map((w) => w.key);
  const plainKeys = ws.filter((w) => !w.tls).map((w) => w.key);
  const nCpu = cpus().length;
  const pinning = process.env.BENCH_PIN !== '0' && nCpu >= 2 && onPath('taskset') !== undefined;
  const serverPin = pinning ? ['taskset', '-c', String(nCpu - 1)] : [];
  const clientCpus = nCpu >= 2 ? `0-${nCpu - 2}` : '0';
  const wrk = process.env.BENCH_CLIENT !== 'autocannon' && onPath('wrk') !== undefined;
  const oneCore: ClientSetup = wrk
    ? { kind: 'wrk', pin: pinning ? ['taskset', '-c', clientCpus] : [], threads: pinning ? nCpu - 1 : nCpu }
    : { kind: 'autocannon', pin: [], threads: 1 };
  const unpinned: ClientSetup = wrk ? { kind: 'wrk', pin: [], threads: nCpu } : { kind: 'autocannon', pin: [], threads: 1 };
  const cli = edgeCli();
  const workersFlag = want.includes('reelcdn') ? edgeHasWorkersFlag(cli) : false;

  say(`ReelCDN edge benchmark — ${new Date().toISOString()}, ${nCpu} CPUs (${cpus()[0]?.model ?? '?'}), Node ${process.version}`);
  say(`temp dir ${dir}; load average ${load()}`);
  say(
    `client: ${wrk ? `wrk (${onPath('wrk')}), ${oneCore.threads} thread(s)` : 'autocannon (in this process; wrk not on PATH or BENCH_CLIENT=autocannon)'}; ` +
      `edge CLI ${cli}${want.includes('reelcdn') ? (workersFlag ? ' (has --workers)' : ' (no --workers flag)') : ''}`,
  );
  say(
    pinning
      ? `pinning: each server (and the ceiling's bare server) on CPU ${nCpu - 1}; the client, this process and the origin on CPU ${clientCpus}; workers-${WORKERS_N} unpinned`
      : 'pinning: off (servers, origin and client share every CPU)',
  );
  // Pin ourselves (the autocannon client, the samplers) away from the servers' CPU.
  if (pinning) spawnTracked('taskset', ['-apc', clientCpus, String(process.pid)], { name: 'taskset', stdio: 'ignore' });

  if (tlsKeys.length > 0) {
    benchTls = makeBenchTls(join(dir, 'tls'));
    void fillAgent.close();
    fillAgent = new Agent({ keepAliveTimeout: 1_000, connections: 16, connect: { ca: benchTls.ca } });
    say(`HTTPS: ${TLS_PROTOCOL} ${TLS_CIPHER} forced on every server; one ECDSA P-256 certificate (${benchTls.certFile}) from a throwaway CA`);
  }

  const content = join(dir, 'content');
  say(`generating content (${contentSummary()}) ...`);
  generateContent(content);

  const originJs = fileURLToPath(new URL('./bench-origin.js', import.meta.url));
  const originArgv = [...(pinning ? ['taskset', '-c', clientCpus] : []), process.execPath, originJs, '--root', content];
  const origin = spawnTracked(originArgv[0]!, originArgv.slice(1), { name: 'origin' });
  const originUrl = await new Promise<string>((ok, fail) => {
    let buf = '';
    origin.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /listening (\S+)/.exec(buf);
      if (m) ok(m[1]!);
    });
    origin.once('exit', (code) => fail(new Error(`bench origin exited (${code})`)));
  });
  say(`origin ${originUrl} (${elapsed()})`);

  const cpuProfDir = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined;
  const base = (pin: string[], workers: number, tls?: BenchTls): TargetOptions => ({
    dir,
    originUrl,
    memoryBytes: MEMORY_BYTES,
    diskBytes: DISK_BYTES,
    pin,
    workers,
    ...(tls ? { tls } : {}),
  });
  const reelcdn = (pin: string[], workers: number, tls?: BenchTls) => () =>
    startReelcdn({ ...base(pin, workers, tls), sliceBytes: SLICE_BYTES, cpuProfDir, workersFlag, signingTtlSeconds: SIGN_TTL_SECONDS });
  const nginxBin = onPath('nginx');
  const nginxOk = want.includes('nginx') && nginxBin !== undefined && nginxHasSlice(nginxBin);
  if (want.includes('nginx') && !nginxBin) say('nginx: not on PATH, skipped');
  else if (want.includes('nginx') && !nginxOk) say('nginx: built without ngx_http_slice_module (nginx -V), skipped');
  const varnishd = onPath('varnishd');
  const varnishStores = (['malloc', 'file'] as const).filter((s) => want.includes('varnish') || want.includes(`varnish-${s}`));
  if (varnishStores.length > 0 && !varnishd) say('varnishd: not on PATH, skipped');

  const results: Measured[] = [];
  const edgeMemory: EdgeMemory[] = [];
  const describes = new Set<string>();

  /** The client against the bare node:http server, on the servers' cores, for one workload. */
  async function ceilingRun(w: Workload, workers: number, client: ClientSetup, barePin: string[], when: string): Promise<Measured | undefined> {
    const bare = await startBare({ pin: barePin, workers, bytes: w.answerBytes, ...(w.tls && benchTls ? { tls: benchTls } : {}) });
    describes.add(`node:http${w.tls ? ' (HTTPS rows)' : ''}: ${bare.describe.replace(/one \d+ B Buffer/, 'one Buffer of the answer size')}`);
    const run: Running = { target: bare, rss: new RssSampler(bare.pid) };
    try {
      const m = await measure(dir, run, w, workers, client, originUrl);
      say(`${progressLine(m)} ${when}`);
      return m;
    } catch (err) {
      say(`  node:http    ceiling ${when} failed: ${(err as Error).message}`);
      return undefined;
    } finally {
      run.rss.stop();
      await bare.stop();
    }
  }

  /** Starts the servers of one phase, runs its workloads round them, stops them. */
  async function phase(
    label: string,
    starters: Starter[],
    phaseWorkloads: Workload[],
    workers: number,
    client: ClientSetup,
    barePin: string[],
  ): Promise<void> {
    const running: (Running & { only?: Workload['key'][] })[] = [];
    try {
      for (const s of starters) {
        let target: Target;
        try {
          target = await s.start();
        } catch (err) {
          if (err instanceof EdgeHasNoWorkersFlag) {
            say(`${s.name} ${label}: skipped: edge has no --workers`);
            continue;
          }
          throw err;
        }
        onCleanup(() => {
          try {
            process.kill(target.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        });
        running.push({ target, rss: new RssSampler(target.pid), only: s.only, tls: s.tls });
        describes.add(`${target.name}${s.tls ? ' (HTTPS rows)' : ''}: ${target.describe}`);
        say(`${target.name} at ${target.url} — ${target.describe}`);
      }
      // Every server runs for the whole phase (an idle one costs nothing) and each workload goes
      // round the servers one after another, so that whatever else this machine is doing at
      // the time smears over all of them rather than landing on one.
      for (const w of phaseWorkloads) {
        say(`\n== ${runLabel(w.key, workers)}: ${w.title} (${elapsed()}, load average ${load()})`);
        // The ceiling before and after the servers: on a busy machine one run may land in a
        // bad second, and a ceiling set too low would mark honest figures client-bound.
        const before = await ceilingRun(w, workers, client, barePin, 'before');
        const measured: Measured[] = [];
        for (const r of running) {
          if (r.only && !r.only.includes(w.key)) continue;
          try {
            const m = await measure(dir, r, w, workers, client, originUrl);
            measured.push(m);
            say(`${progressLine(m, before?.load.reqPerSec)}  (${elapsed()})`);
          } catch (err) {
            say(`  ${r.target.name.padEnd(12)} failed: ${(err as Error).message}`);
          }
        }
        const after = measured.length > 0 ? await ceilingRun(w, workers, client, barePin, 'after') : undefined;
        const ceiling = [before, after].filter((m) => m !== undefined).sort((a, b) => b.load.reqPerSec - a.load.reqPerSec)[0];
        if (ceiling) results.push(ceiling);
        for (const m of measured) results.push({ ...m, clientBound: isClientBound(m.load.reqPerSec, ceiling?.load.reqPerSec) });
      }
    } finally {
      for (const r of running) {
        if (r.target.name === 'ReelCDN') edgeMemory.push({ workers, peakRss: r.rss.lifetimePeak(), ...(r.tls ? { tls: true } : {}) });
        r.rss.stop();
        await r.target.stop();
      }
    }
  }

  // ---- one core each
  if (ws.length > 0) {
    const starters: Starter[] = [];
    // The HTTPS rows have servers of their own (a listener is HTTP or HTTPS), idle until then.
    const plainOnly = plainKeys.length > 0 ? { only: plainKeys } : undefined;
    if (want.includes('reelcdn') && plainOnly) starters.push({ name: 'ReelCDN', start: reelcdn(serverPin, 1), ...plainOnly });
    if (nginxOk && plainOnly) starters.push({ name: 'nginx', start: () => startNginx({ ...base(serverPin, 1), bin: nginxBin! }), ...plainOnly });
    if (varnishd && varnishStores.includes('malloc') && plainOnly) {
      starters.push({ name: 'Varnish', start: () => startVarnish({ ...base(serverPin, 1), bin: varnishd, storage: 'malloc' }), ...plainOnly });
    }
    if (varnishd && varnishStores.includes('file') && ws.some((w) => w.key === 'disk-tier')) {
      starters.push({ name: 'Varnish-file', start: () => startVarnish({ ...base(serverPin, 1), bin: varnishd, storage: 'file' }), only: ['disk-tier'] });
    }
    if (benchTls && tlsKeys.length > 0) {
      const tls = benchTls;
      if (want.includes('reelcdn')) starters.push({ name: 'ReelCDN', start: reelcdn(serverPin, 1, tls), only: tlsKeys, tls: true });
      if (nginxOk) starters.push({ name: 'nginx', start: () => startNginx({ ...base(serverPin, 1, tls), bin: nginxBin! }), only: tlsKeys, tls: true });
    }
    await phase('1 core', starters, ws, 1, oneCore, serverPin);
  }

  // ---- every core: the edge at --workers 2 against nginx at worker_processes 2, nothing pinned
  if (withWorkers) {
    const w2 = all.filter((w) => WORKERS_WORKLOADS.includes(w.key));
    if (want.includes('reelcdn') && !workersFlag) {
      say(`\n== workers-${WORKERS_N}: skipped: edge has no --workers`);
    } else {
      if (pinning) spawnTracked('taskset', ['-apc', `0-${nCpu - 1}`, String(process.pid)], { name: 'taskset', stdio: 'ignore' });
      const starters: { name: ServerName; start: () => Promise<Target> }[] = [];
      if (want.includes('reelcdn')) starters.push({ name: 'ReelCDN', start: reelcdn([], WORKERS_N) });
      if (nginxOk) starters.push({ name: 'nginx', start: () => startNginx({ ...base([], WORKERS_N), bin: nginxBin! }) });
      say(`\n== workers-${WORKERS_N} (${elapsed()}): servers, client and the ceiling's bare server all unpinned`);
      await phase(`workers-${WORKERS_N}`, starters, w2, WORKERS_N, unpinned, []);
    }
  }
  await stopChild(origin);

  const figs = figures(results);
  const ceils = ceilings(results);
  const verdicts = [...targetVerdicts(figs, ceils), ...workersVerdicts(figs, ceils, WORKERS_N)];

  say(`\nWorkloads: ${all.map((w) => `${w.key} = ${w.title}`).join('; ')}; workers-${WORKERS_N} = ${WORKERS_WORKLOADS.join(' and ')} at ${WORKERS_N} workers`);
  say(
    `Measured runs: ${DURATION} s each (cold: ${COLD_COUNT} requests; the ceiling: ${CEILING_SECONDS} s, before and after the servers, the higher counts), ` +
      `after fill passes and a ${WARMUP_SECONDS} s warm-up; client ${wrk ? 'wrk' : 'autocannon'}, pipelining 1. ` +
      `Client-bound: above 70 % of the client's ceiling (bare node:http, same client, connections and cores).`,
  );
  for (const d of describes) say(d);
  say('');
  say(resultsTable(results));
  say('\nTargets (ratios of req/s in this run):\n');
  say(verdictTable(verdicts));
  const costs = tlsCosts(results);
  if (costs.length > 0) {
    say(`\nTLS cost (${TLS_PROTOCOL} ${TLS_CIPHER}): CPU µs per answer over HTTPS minus over HTTP, same run, one core; per MiB of answer (headers included):\n`);
    say(tlsCostTable(costs));
  }
  if (edgeMemory.length > 0) {
    say('\nReelCDN memory:\n');
    say(memoryTable(edgeMemory, MEMORY_BYTES, results));
  }
  for (const w of ws) {
    if (ceilingFor(ceils, w.key, 1) === undefined) say(`(no ceiling measured for ${w.key}: client-bound marks missing)`);
  }
  say(`\ntotal ${elapsed()}, load average at the end ${load()}`);
  if (process.env.BENCH_JSON) {
    writeFileSync(
      process.env.BENCH_JSON,
      JSON.stringify({ date: new Date().toISOString(), cpus: nCpu, node: process.version, client: wrk ? 'wrk' : 'autocannon', results, verdicts, edgeMemory, tlsCosts: costs }, null, 2),
    );
  }
}

main()
  .then(() => {
    cleanupNow();
    void fillAgent.close();
    process.exit(0);
  })
  .catch((err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    cleanupNow();
    process.exit(1);
  });

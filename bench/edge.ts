/**
 * `npm run bench:edge` — ReelCDN's edge against nginx proxy_cache (slice 2m) and Varnish (malloc),
 * on loopback, with autocannon. See docs/benchmarks.md for what each workload means.
 *
 * Workloads (each: fill pass(es), a short autocannon warm-up, then a measured run):
 *   hot-2m     Range: bytes=a-(a+2MiB-1) at random offsets over one 64 MiB file, all in memory
 *   hot-16k    whole GETs of ~2,000 16 KiB objects, all in memory
 *   disk-tier  whole GETs of ~2 MiB segments cycling over a set several times memoryBytes
 *              (so ReelCDN serves them from its disk tier / the page cache, never memory)
 *   cold       one request per never-seen 512 KiB object (bounded count): fetch, store, serve
 *
 * Environment knobs: BENCH_DURATION (s, default 10), BENCH_TARGETS (e.g. "ReelCDN,nginx"),
 * BENCH_WORKLOADS (e.g. "hot-2m,hot-16k"), BENCH_PIN=0 (no CPU pinning), BENCH_CPU_PROF=DIR
 * (the edge child runs with --cpu-prof into DIR), BENCH_JSON=FILE (results as JSON),
 * BENCH_KEEP=1 (keep the temp dir).
 */
import autocannon from 'autocannon';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import {
  RssSampler,
  cleanupNow,
  installCleanupHandlers,
  onCleanup,
  peakRss,
  spawnTracked,
  stopChild,
  trackTempDir,
  treeCpuSeconds,
} from './edge-procs.js';
import { type Target, type TargetName, nginxHasSlice, onPath, startNginx, startReelcdn, startVarnish } from './edge-targets.js';
import { seededRandom as rng } from './seeded-random.js';

// autocannon 9 keeps every response body as a string (`req.body += chunk`, a UTF-8 decode
// and a copy of every byte) even when nothing reads it: with 2 MiB binary bodies that alone
// capped the client near 40 req/s (0.08 GB/s) whatever the server. We never look at bodies
// (no expectBody/verifyBody/onResponse), so the load generator skips it.
{
  const require = createRequire(import.meta.url);
  const queue = require('autocannon/lib/pipelinedRequestsQueue.js') as { prototype: { addBody(data: unknown): void } };
  queue.prototype.addBody = () => {};
}

const MiB = 1024 * 1024;
const KiB = 1024;

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const WARMUP_SECONDS = 2;
const MEMORY_BYTES = 192 * MiB;
const DISK_BYTES = 4096 * MiB;
const SLICE_BYTES = 2 * MiB;
const RSS_ALLOWANCE = 150 * MiB;

const BIG_BYTES = 64 * MiB;
const SMALL_COUNT = 2000;
const SMALL_BYTES = 16 * KiB;
const SEGMENT_COUNT = 480; // ~0.9 GiB: ~5x memoryBytes
const COLD_COUNT = 1000;
const COLD_BYTES = 512 * KiB;

interface Req {
  path: string;
  range?: string;
}

interface Workload {
  key: 'hot-2m' | 'hot-16k' | 'disk-tier' | 'cold';
  title: string;
  connections: number;
  /** Requests that fill the cache before measuring (each list fetched in order, `passes` times). */
  fill: Req[];
  fillPasses: number;
  /** A short unmeasured autocannon run first (JIT, connection set-up). */
  warmup: boolean;
  /** Bounded count instead of a duration. */
  amount?: number;
  /** The request stream of the measured run; `reset()` starts it over for each target. */
  next(): Req;
  reset(): void;
}

interface Measured {
  target: TargetName;
  workload: Workload['key'];
  reqPerSec: number;
  bytesPerSec: number;
  p50: number;
  p99: number;
  requests: number;
  errors: number;
  non2xx: number;
  peakRss: number;
  /** Server CPU time (all its processes and threads) per answer during the measured run. */
  cpuUsPerReq: number;
  tiers?: Record<string, number>;
  originRequests: number;
}


function pad(n: number, w = 4): string {
  return String(n).padStart(w, '0');
}

// ---------------------------------------------------------------- content

function generateContent(root: string): void {
  const noise = randomBytes(8 * MiB);
  const write = (title: string, file: string, bytes: number, seed: number) => {
    const dir = join(root, title);
    mkdirSync(dir, { recursive: true });
    const buf = Buffer.allocUnsafe(bytes);
    let off = 0;
    let src = (seed * 7919) % noise.length;
    while (off < bytes) {
      const n = Math.min(bytes - off, noise.length - src);
      noise.copy(buf, off, src, src + n);
      off += n;
      src = 0;
    }
    buf.write(`${title}/${file}#${seed}`, 0); // every object distinct
    writeFileSync(join(dir, file), buf);
  };
  write('big', 'movie.ts', BIG_BYTES, 1);
  for (let i = 0; i < SMALL_COUNT; i++) write('small', `o${pad(i)}.m4s`, SMALL_BYTES, 10 + i);
  const r = rng(42);
  for (let i = 0; i < SEGMENT_COUNT; i++) {
    // "2 MiB-ish": 1.75-2 MiB, so one segment is one slice everywhere
    const bytes = SLICE_BYTES - Math.floor(r() * (SLICE_BYTES / 8));
    write('seg', `s${pad(i)}.ts`, bytes, 5000 + i);
  }
  for (let i = 0; i < COLD_COUNT; i++) write('cold', `c${pad(i)}.m4s`, COLD_BYTES, 9000 + i);
}

// ---------------------------------------------------------------- workloads

function workloads(): Workload[] {
  // hot-2m: 2 MiB ranges at random (188-byte, TS packet aligned) offsets: most span two slices.
  const r = rng(7);
  const ranges: Req[] = Array.from({ length: 512 }, () => {
    const start = Math.floor((r() * (BIG_BYTES - 2 * MiB)) / 188) * 188;
    return { path: '/c/big/movie.ts', range: `bytes=${start}-${start + 2 * MiB - 1}` };
  });
  const bigSlices: Req[] = Array.from({ length: BIG_BYTES / SLICE_BYTES }, (_, i) => ({
    path: '/c/big/movie.ts',
    range: `bytes=${i * SLICE_BYTES}-${(i + 1) * SLICE_BYTES - 1}`,
  }));
  const small: Req[] = Array.from({ length: SMALL_COUNT }, (_, i) => ({ path: `/c/small/o${pad(i)}.m4s` }));
  const segs: Req[] = Array.from({ length: SEGMENT_COUNT }, (_, i) => ({ path: `/c/seg/s${pad(i)}.ts` }));
  const cold: Req[] = Array.from({ length: COLD_COUNT }, (_, i) => ({ path: `/c/cold/c${pad(i)}.m4s` }));

  const cycling = (list: Req[], stride = 1) => {
    let i = 0;
    return { next: () => list[(i++ * stride) % list.length]!, reset: () => void (i = 0) };
  };
  return [
    {
      key: 'hot-2m',
      title: 'hot 2 MiB ranges (64 MiB file, random offsets)',
      connections: 32,
      fill: bigSlices,
      fillPasses: 2,
      warmup: true,
      ...cycling(ranges),
    },
    {
      key: 'hot-16k',
      title: 'hot 16 KiB objects (2,000)',
      connections: 64,
      fill: small,
      fillPasses: 2,
      warmup: true,
      ...cycling(small, 7), // 7 is coprime with 2000: every object, scattered
    },
    {
      key: 'disk-tier',
      title: `disk-tier hits (${SEGMENT_COUNT} ~2 MiB segments, ${((SEGMENT_COUNT * 1.94 * MiB) / MEMORY_BYTES).toFixed(1)}x memoryBytes, cyclic)`,
      connections: 32,
      fill: segs,
      fillPasses: 2,
      warmup: true,
      ...cycling(segs),
    },
    {
      key: 'cold',
      title: `cold misses (${COLD_COUNT} never-seen 512 KiB objects)`,
      connections: 32,
      fill: [],
      fillPasses: 0,
      warmup: false,
      amount: COLD_COUNT,
      ...cycling(cold),
    },
  ];
}

// ---------------------------------------------------------------- driving

// Short keep-alive: Varnish closes idle connections after 5 s and a reused dead one fails.
const fillAgent = new Agent({ keepAliveTimeout: 1_000, connections: 16 });

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
        if (status !== 200 && status !== 206) failures.push(`${item.path} HTTP ${status}`);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }
  return failures;
}

async function runCannon(base: string, w: Workload, seconds: number | undefined): Promise<autocannon.Result> {
  const url = new URL(base);
  const opts: autocannon.Options = {
    url: base,
    connections: w.connections,
    pipelining: 1,
    timeout: 20,
    ...(w.amount !== undefined && seconds === undefined ? { amount: w.amount } : { duration: seconds ?? DURATION }),
    requests: [
      {
        setupRequest: (req: autocannon.Request) => {
          const r = w.next();
          return { ...req, method: 'GET', path: r.path, headers: { host: url.host, ...(r.range ? { range: r.range } : {}) } };
        },
      } as autocannon.Request,
    ],
  };
  return autocannon(opts);
}

async function originRequests(originUrl: string): Promise<number> {
  const res = await fetch(`${originUrl}/_bench/requests`);
  return Number((await res.text()).trim());
}

async function measure(target: Target, w: Workload, originUrl: string, rss: RssSampler): Promise<Measured> {
  rss.reset();
  w.reset();
  const failed = w.fillPasses > 0 ? await fillCache(target.url, w.fill, w.fillPasses) : [];
  if (failed.length > 0) process.stdout.write(`  ${target.name}: ${failed.length} fill answers were not 200/206 (first: ${failed[0]})\n`);
  if (w.warmup) await runCannon(target.url, w, WARMUP_SECONDS);
  w.reset();
  const tiersBefore = target.tiers ? await target.tiers() : undefined;
  const originBefore = await originRequests(originUrl);
  const cpuBefore = treeCpuSeconds(target.pid);
  const res = await runCannon(target.url, w, w.amount !== undefined ? undefined : DURATION);
  const cpuAfter = treeCpuSeconds(target.pid);
  const originAfter = await originRequests(originUrl);
  const tiersAfter = target.tiers ? await target.tiers() : undefined;
  const tiers =
    tiersBefore && tiersAfter ? Object.fromEntries(Object.entries(tiersAfter).map(([k, v]) => [k, v - (tiersBefore[k] ?? 0)])) : undefined;
  const seconds = Math.max(res.duration, 0.001);
  return {
    target: target.name,
    workload: w.key,
    // For a bounded count, the average over per-second samples misreads a short run: use totals.
    reqPerSec: w.amount !== undefined ? res.requests.total / seconds : res.requests.average,
    bytesPerSec: w.amount !== undefined ? res.throughput.total / seconds : res.throughput.average,
    p50: res.latency.p50,
    p99: res.latency.p99,
    requests: res.requests.total,
    errors: res.errors + res.timeouts,
    non2xx: res.non2xx,
    peakRss: rss.peak(),
    cpuUsPerReq: res.requests.total > 0 ? ((cpuAfter - cpuBefore) * 1e6) / res.requests.total : 0,
    tiers,
    originRequests: originAfter - originBefore,
  };
}

// ---------------------------------------------------------------- report

const fmt = {
  rps: (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1)),
  gbs: (n: number) => (n / 1e9).toFixed(2),
  ms: (n: number) => (n >= 10 ? n.toFixed(0) : n.toFixed(1)),
  mib: (n: number) => `${Math.round(n / MiB)}`,
};

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(' | ')} |`;
  const sep = `|${widths.map((w, c) => (c === 0 ? `-${'-'.repeat(w)}-` : `-${'-'.repeat(w)}:`)).join('|')}|`;
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join('\n');
}

function report(results: Measured[], ws: Workload[], targets: TargetName[]): string {
  const out: string[] = [];
  const rows = [['workload', 'server', 'req/s', 'GB/s', 'p50 ms', 'p99 ms', 'server CPU µs/req', 'peak RSS MiB', 'errors/non-2xx', 'origin reqs']];
  for (const w of ws) {
    for (const t of targets) {
      const m = results.find((x) => x.workload === w.key && x.target === t);
      if (!m) continue;
      rows.push([w.key, t, fmt.rps(m.reqPerSec), fmt.gbs(m.bytesPerSec), fmt.ms(m.p50), fmt.ms(m.p99), fmt.rps(m.cpuUsPerReq), fmt.mib(m.peakRss), `${m.errors}/${m.non2xx}`, String(m.originRequests)]);
    }
  }
  out.push(table(rows));

  const reel = (k: string) => results.find((x) => x.workload === k && x.target === 'ReelCDN');
  const other = (k: string, t: TargetName) => results.find((x) => x.workload === k && x.target === t);
  const goals: Record<string, { vs: TargetName; min: number }> = {
    'hot-2m': { vs: 'Varnish', min: 1.2 },
    'hot-16k': { vs: 'nginx', min: 1.0 },
    'disk-tier': { vs: 'nginx', min: 1.0 },
  };
  const ratioRows = [['workload', 'ReelCDN/nginx', 'ReelCDN/Varnish', 'target', 'met?']];
  for (const w of ws) {
    const r = reel(w.key);
    if (!r) continue;
    const ratio = (t: TargetName) => {
      const o = other(w.key, t);
      return o && o.reqPerSec > 0 ? r.reqPerSec / o.reqPerSec : undefined;
    };
    const g = goals[w.key];
    const got = g ? ratio(g.vs) : undefined;
    ratioRows.push([
      w.key,
      ratio('nginx')?.toFixed(2) ?? '-',
      ratio('Varnish')?.toFixed(2) ?? '-',
      g ? `>= ${g.min.toFixed(1)}x ${g.vs}` : '-',
      g ? (got === undefined ? 'n/a' : got >= g.min ? 'yes' : 'NO') : '-',
    ]);
  }
  out.push('', 'Ratios (req/s; equal-size answers, so the same for GB/s):', '', table(ratioRows));

  const rssRows = [['workload', 'ReelCDN peak RSS MiB', 'memoryBytes + 150 MiB', 'met?', 'tiers (ReelCDN answers)']];
  for (const w of ws) {
    const r = reel(w.key);
    if (!r) continue;
    const limit = MEMORY_BYTES + RSS_ALLOWANCE;
    const tiers = r.tiers ? Object.entries(r.tiers).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ') : '';
    rssRows.push([w.key, fmt.mib(r.peakRss), fmt.mib(limit), r.peakRss <= limit ? 'yes' : 'NO', tiers]);
  }
  out.push('', 'ReelCDN memory:', '', table(rssRows));
  return out.join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  installCleanupHandlers();
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'reelcdn-bench-'));
  if (process.env.BENCH_KEEP !== '1') trackTempDir(dir);
  const say = (s: string) => process.stdout.write(`${s}\n`);
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)}s`;

  const want = (process.env.BENCH_TARGETS ?? 'ReelCDN,nginx,Varnish').split(',').map((s) => s.trim().toLowerCase());
  const wantWorkloads = process.env.BENCH_WORKLOADS?.split(',').map((s) => s.trim());
  const ws = workloads().filter((w) => !wantWorkloads || wantWorkloads.includes(w.key));
  const nCpu = cpus().length;
  const pin = process.env.BENCH_PIN !== '0' && nCpu >= 2 && onPath('taskset') ? ['taskset', '-c', String(nCpu - 1)] : [];
  const cannonCpus = nCpu >= 2 ? `0-${nCpu - 2}` : '0';

  say(`ReelCDN edge benchmark — ${new Date().toISOString()}, ${nCpu} CPUs (${cpus()[0]?.model ?? '?'}), Node ${process.version}`);
  say(`temp dir ${dir}; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  say(
    pin.length
      ? `pinning: each cache server on CPU ${nCpu - 1}; autocannon (this process) and the origin on CPU ${cannonCpus}`
      : 'pinning: off (servers, origin and autocannon share every CPU)',
  );

  // Pin ourselves (autocannon) away from the server's CPU.
  if (pin.length) spawnTracked('taskset', ['-pc', cannonCpus, String(process.pid)], { name: 'taskset', stdio: 'ignore' });

  const content = join(dir, 'content');
  say(`generating content (64 MiB file, ${SMALL_COUNT} x 16 KiB, ${SEGMENT_COUNT} segments, ${COLD_COUNT} x 512 KiB) ...`);
  generateContent(content);

  const originJs = fileURLToPath(new URL('./bench-origin.js', import.meta.url));
  const originArgv = [...(pin.length ? ['taskset', '-c', cannonCpus] : []), process.execPath, originJs, '--root', content];
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

  const results: Measured[] = [];
  const base = { dir, originUrl, memoryBytes: MEMORY_BYTES, diskBytes: DISK_BYTES, pin };
  const starters: { name: TargetName; start: () => Promise<Target> }[] = [];
  if (want.includes('reelcdn')) {
    const cpuProfDir = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined;
    starters.push({ name: 'ReelCDN', start: () => startReelcdn({ ...base, sliceBytes: SLICE_BYTES, cpuProfDir }) });
  }
  const nginx = onPath('nginx');
  if (want.includes('nginx')) {
    if (!nginx) say('nginx: not on PATH, skipped');
    else if (!nginxHasSlice(nginx)) say('nginx: built without ngx_http_slice_module (nginx -V), skipped');
    else starters.push({ name: 'nginx', start: () => startNginx({ ...base, bin: nginx }) });
  }
  const varnishd = onPath('varnishd');
  if (want.includes('varnish')) {
    if (!varnishd) say('varnishd: not on PATH, skipped');
    else starters.push({ name: 'Varnish', start: () => startVarnish({ ...base, bin: varnishd }) });
  }

  // Every server runs for the whole bench (an idle one costs nothing) and the workloads go
  // round the servers one after another, so that whatever else this machine is doing at the
  // time smears over all of them rather than landing on one.
  const describes: string[] = [];
  const running: { target: Target; rss: RssSampler }[] = [];
  try {
    for (const s of starters) {
      const target = await s.start();
      onCleanup(() => {
        try {
          process.kill(target.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      });
      running.push({ target, rss: new RssSampler(target.pid) });
      describes.push(`${target.name}: ${target.describe}`);
      say(`${target.name} at ${target.url} — ${target.describe}`);
    }
    for (const w of ws) {
      say(`\n== ${w.key}: ${w.title} (${elapsed()}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')})`);
      for (const { target, rss } of running) {
        let m: Measured;
        try {
          m = await measure(target, w, originUrl, rss);
        } catch (err) {
          say(`  ${target.name.padEnd(8)} failed: ${(err as Error).message}`);
          continue;
        }
        results.push(m);
        const tiers = m.tiers ? ` [${Object.entries(m.tiers).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ')}]` : '';
        say(
          `  ${target.name.padEnd(8)} ${fmt.rps(m.reqPerSec).padStart(7)} req/s  ${fmt.gbs(m.bytesPerSec)} GB/s  p50 ${fmt.ms(m.p50)} ms  p99 ${fmt.ms(m.p99)} ms  cpu ${fmt.rps(m.cpuUsPerReq)} µs/req  ` +
            `peak RSS ${fmt.mib(m.peakRss)} MiB  errors ${m.errors} non-2xx ${m.non2xx}  origin reqs ${m.originRequests}${tiers}  (${elapsed()})`,
        );
      }
    }
    const reel = running.find((r) => r.target.name === 'ReelCDN');
    if (reel) say(`\nkernel VmHWM of the ReelCDN edge process: ${fmt.mib(peakRss(reel.target.pid))} MiB`);
  } finally {
    for (const { target, rss } of running) {
      rss.stop();
      await target.stop();
    }
  }
  await stopChild(origin);

  say(`\nWorkloads: ${ws.map((w) => `${w.key} = ${w.title}`).join('; ')}`);
  say(`Measured runs: ${DURATION} s each (cold: ${COLD_COUNT} requests), after fill passes and a ${WARMUP_SECONDS} s warm-up; pipelining 1.`);
  for (const d of describes) say(d);
  say('');
  say(report(results, ws, starters.map((s) => s.name)));
  say(`\ntotal ${elapsed()}, load average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, JSON.stringify({ date: new Date().toISOString(), cpus: nCpu, results }, null, 2));
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

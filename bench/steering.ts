/**
 * `npm run bench:steering` — steering as it is deployed, on loopback, with wrk (autocannon when
 * wrk is not installed): `reelcdn steering --config FILE` as its own process with the cluster
 * file's defaults (log level info, health polls every 500 ms of edges that answer with whole
 * reports, tokens signed), a real origin, 40 titles. See docs/benchmarks.md "Steering".
 *
 *   locate      GET /v1/locate/{title}/{file}         (ranking + one signed URL per edge, JSON)
 *   steer       GET /v1/steer/{title}.json?_HLS_…      (ranking, the steering manifest)
 *   play-mv     GET /v1/play/{title}/master.m3u8       (multivariant rewrite, a play started and logged)
 *   play-media  GET /v1/play/{title}/{media}.m3u8?pathway=…  (media playlist, signed URLs)
 *
 * Every workload first measures the client's own ceiling (the same client, connections and
 * cores against a bare node:http server handing out a Buffer of the answer's size), and again
 * after the servers (the higher counts). /v1/locate also runs against nginx doing the barest
 * steering (geo + split_clients + the same JSON; bench/steering/nginx.ts) when nginx is
 * installed: the issue's target is ReelCDN ≥ 0.35x nginx's req/s with p99 < 5 ms, measured here
 * in one run. Steering, nginx and the bare server each run alone on the last CPU; the client,
 * the origin, the edges and this process on the others. Then the prefix table is timed alone.
 *
 * Knobs: BENCH_DURATION (s, default 10), BENCH_ROUNDS (default 3), BENCH_CONNECTIONS (default 32), BENCH_TITLES (default 40),
 * BENCH_EDGES (default 4), BENCH_WORKLOADS (e.g. "locate"), BENCH_PIN=0, BENCH_CLIENT=autocannon,
 * BENCH_CPU_PROF=DIR (steering runs with --cpu-prof into DIR), BENCH_STEERING_CLI=path/to/dist/src/cli.js
 * (another build, for A/B), BENCH_STEERING_JSON='{"…":…}' (merged over the cluster file's steering
 * section), BENCH_JSON=FILE, BENCH_KEEP=1 (keep the temp dir), BENCH_PREFIX=0 (skip the prefix table),
 * BENCH_BALANCE=0 (skip the balance rows: bench/steering-balance.ts, where new sessions land).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupNow, installCleanupHandlers, spawnTracked, trackTempDir, treeCpuSeconds } from './edge-procs.js';
import { onPath, startBare } from './edge-targets.js';
import { runAutocannon } from './edge/autocannon-load.js';
import type { LoadPlan, LoadResult } from './edge/load.js';
import { fmt } from './edge/report.js';
import type { Req } from './edge/workloads.js';
import { runWrk, wrkScript } from './edge/wrk.js';
import { runPrefixBench } from './prefix.js';
import { formatBalanceRows, runBalanceBench } from './steering-balance.js';
import { benchEdges, startDeployedSteering } from './steering/deployed.js';
import { startNginxSteering } from './steering/nginx.js';
import { type SteeringMeasured, type SteeringServer, combineRounds, locateVerdicts, steeringTable, steeringVerdictTable } from './steering/report.js';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const TITLES = Number(process.env.BENCH_TITLES ?? 40);
const EDGES = Number(process.env.BENCH_EDGES ?? 4);
const WARMUP_SECONDS = 2;
/** Runs with a peer (locate against nginx) alternate with it in this many rounds of DURATION / ROUNDS. */
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const CEILING_SECONDS = Math.max(3, Math.round(DURATION / 2));
const FIXTURES = resolve(fileURLToPath(import.meta.url), '..', '..', '..', 'test', 'fixtures', 'media');
/** Files of the hls-segments fixture that /v1/locate is asked for. */
const SEGMENT_FILES = ['init_180p.mp4', ...Array.from({ length: 6 }, (_, i) => `seg_180p_00${i}.m4s`)];

const say = (s: string) => process.stdout.write(`${s}\n`);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

interface Workload {
  key: string;
  title: string;
  requests: Req[];
  /** nginx answers this one too. */
  nginx: boolean;
}

/** Consecutive requests go to different titles, as many players' would. */
function workloads(titles: readonly string[]): Workload[] {
  const n = titles.length;
  const locate: Req[] = [];
  for (let i = 0; i < n * SEGMENT_FILES.length; i++) locate.push({ path: `/v1/locate/${titles[i % n]}/${SEGMENT_FILES[Math.floor(i / n) % SEGMENT_FILES.length]}` });
  return [
    { key: 'locate', title: `GET /v1/locate/{title}/{file}, ${n} titles × ${SEGMENT_FILES.length} files`, requests: locate, nginx: true },
    {
      key: 'steer',
      title: `GET /v1/steer/{title}.json?_HLS_pathway=edge-a1&_HLS_throughput=1000000, ${n} titles`,
      requests: titles.map((t) => ({ path: `/v1/steer/${t}.json?_HLS_pathway=edge-a1&_HLS_throughput=1000000` })),
      nginx: false,
    },
    { key: 'play-mv', title: `GET /v1/play/{title}/master.m3u8, ${n} titles`, requests: titles.map((t) => ({ path: `/v1/play/${t}/master.m3u8` })), nginx: false },
    {
      key: 'play-media',
      title: `GET /v1/play/{title}/index_180p.m3u8?pathway=edge-a1, ${n} titles`,
      requests: titles.map((t) => ({ path: `/v1/play/${t}/index_180p.m3u8?pathway=edge-a1` })),
      nginx: false,
    },
  ];
}

interface ClientSetup {
  kind: 'wrk' | 'autocannon';
  pin: string[];
  threads: number;
}

const scripts = new Map<string, string>();

async function runLoad(dir: string, url: string, w: Workload, client: ClientSetup, seconds: number): Promise<LoadResult> {
  const plan: LoadPlan = { requests: w.requests, stride: 1, connections: CONNECTIONS, threads: client.kind === 'wrk' ? client.threads : 1, seconds };
  if (client.kind === 'autocannon') return runAutocannon(url, plan);
  let scriptPath = scripts.get(w.key);
  if (!scriptPath) {
    scriptPath = join(dir, `wrk-${w.key}.lua`);
    writeFileSync(scriptPath, wrkScript(plan));
    scripts.set(w.key, scriptPath);
  }
  return runWrk({ url, scriptPath, plan, pin: client.pin });
}

/** Body bytes of one answer (and a check that the server answers it at all). */
async function bodyBytes(url: string): Promise<number> {
  const res = await fetch(url);
  const body = await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}: ${Buffer.from(body).toString().slice(0, 200)}`);
  return body.byteLength;
}

async function measure(
  dir: string,
  server: SteeringServer,
  target: { url: string; pid: number },
  w: Workload,
  client: ClientSetup,
  seconds: number,
  bytes: number,
  warm = true,
): Promise<SteeringMeasured> {
  if (warm) await runLoad(dir, target.url, w, client, server === 'node:http' ? 1 : WARMUP_SECONDS);
  const before = treeCpuSeconds(target.pid);
  const res = await runLoad(dir, target.url, w, client, seconds);
  const after = treeCpuSeconds(target.pid);
  return { server, workload: w.key, load: res, cpuUsPerAnswer: res.requests > 0 ? ((after - before) * 1e6) / res.requests : 0, bodyBytes: bytes };
}

function progress(m: SteeringMeasured, when = ''): string {
  const l = m.load;
  const client = l.clientCpuSeconds !== undefined && l.seconds > 0 ? `  client CPU ${fmt.pct(l.clientCpuSeconds / l.seconds)}` : '';
  return (
    `  ${m.server.padEnd(10)} ${fmt.rps(l.reqPerSec).padStart(7)} req/s  p50 ${fmt.ms(l.p50Ms)} ms  p99 ${fmt.ms(l.p99Ms)} ms  ` +
    `cpu ${fmt.rps(m.cpuUsPerAnswer)} µs/answer${client}  errors ${l.errors} non-2xx ${l.non2xx}${when}`
  );
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)}s`;
  const dir = mkdtempSync(join(tmpdir(), 'reelcdn-bench-steering-'));
  if (process.env.BENCH_KEEP !== '1') trackTempDir(dir);

  const nCpu = cpus().length;
  const pinning = process.env.BENCH_PIN !== '0' && nCpu >= 2 && onPath('taskset') !== undefined;
  const serverPin = pinning ? ['taskset', '-c', String(nCpu - 1)] : [];
  const clientCpus = nCpu >= 2 ? `0-${nCpu - 2}` : '0';
  const clientPin = pinning ? ['taskset', '-c', clientCpus] : [];
  const wrk = process.env.BENCH_CLIENT !== 'autocannon' && onPath('wrk') !== undefined;
  const client: ClientSetup = wrk ? { kind: 'wrk', pin: clientPin, threads: pinning ? nCpu - 1 : nCpu } : { kind: 'autocannon', pin: [], threads: 1 };
  const wantWorkloads = process.env.BENCH_WORKLOADS?.split(',').map((s) => s.trim());

  say(`ReelCDN steering benchmark — ${new Date().toISOString()}, ${nCpu} CPUs (${cpus()[0]?.model ?? '?'}), Node ${process.version}`);
  say(`temp dir ${dir}; load average ${load()}`);
  say(`client: ${wrk ? `wrk (${onPath('wrk')}), ${client.threads} thread(s)` : 'autocannon (in this process; wrk not on PATH or BENCH_CLIENT=autocannon)'}, ${CONNECTIONS} connections`);
  say(
    pinning
      ? `pinning: steering, nginx and the ceiling's bare server each on CPU ${nCpu - 1}; the client, this process, the origin and the edges on CPU ${clientCpus}`
      : 'pinning: off (servers and client share every CPU)',
  );
  if (pinning) spawnTracked('taskset', ['-apc', clientCpus, String(process.pid)], { name: 'taskset', stdio: 'ignore' });

  const titles = Array.from({ length: TITLES }, (_, i) => `title-${String(i).padStart(2, '0')}`);
  const edges = await benchEdges(EDGES);
  const cpuProfDir = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined;
  const steeringJson = process.env.BENCH_STEERING_JSON ? (JSON.parse(process.env.BENCH_STEERING_JSON) as Record<string, unknown>) : undefined;
  say(`starting origin (${TITLES} titles), ${EDGES} edges and steering ...`);
  const steering = await startDeployedSteering({
    dir,
    titles: Object.fromEntries(titles.map((t) => [t, join(FIXTURES, 'hls-segments')])),
    edges,
    serverPin,
    clientPin,
    cpuProfDir,
    steering: steeringJson,
  });
  say(`steering at ${steering.url} (${elapsed()}) — ${steering.describe}`);
  const nginxBin = onPath('nginx');
  const nginx = nginxBin ? await startNginxSteering({ dir, bin: nginxBin, edges, pin: serverPin }) : undefined;
  say(nginx ? `nginx at ${nginx.url} — ${nginx.describe}` : 'nginx: not on PATH, no nginx row');

  const describes = new Set<string>();
  const results: SteeringMeasured[] = [];
  try {
    for (const w of workloads(titles).filter((x) => !wantWorkloads || wantWorkloads.includes(x.key))) {
      say(`\n== ${w.key}: ${w.title} (${elapsed()}, load average ${load()})`);
      const bytes = await bodyBytes(steering.url + w.requests[0]!.path);
      const ceiling = async (when: string) => {
        const bare = await startBare({ pin: serverPin, bytes });
        describes.add(`node:http: ${bare.describe.replace(/one \d+ B Buffer/, 'one Buffer of the answer size')}`);
        try {
          const m = await measure(dir, 'node:http', bare, w, client, CEILING_SECONDS, bytes);
          say(progress(m, `  (ceiling, ${when})`));
          results.push(m);
        } finally {
          await bare.stop();
        }
      };
      await ceiling('before');
      // With a peer, the two alternate in rounds (the first of each warmed up): whatever else the
      // machine does in the meantime lands on both.
      const peer = w.nginx ? nginx : undefined;
      const rounds = peer ? ROUNDS : 1;
      const seconds = Math.max(2, Math.round(DURATION / rounds));
      const nginxBytes = peer ? await bodyBytes(peer.url + w.requests[0]!.path) : 0;
      const reel: SteeringMeasured[] = [];
      const theirs: SteeringMeasured[] = [];
      for (let r = 0; r < rounds; r++) {
        const tag = rounds > 1 ? `  (round ${r + 1}/${rounds})` : '';
        reel.push(await measure(dir, 'ReelCDN', steering, w, client, peer ? seconds : DURATION, bytes, r === 0));
        say(progress(reel[r]!, tag));
        if (peer) {
          theirs.push(await measure(dir, 'nginx', peer, w, client, seconds, nginxBytes, r === 0));
          say(progress(theirs[r]!, tag));
        }
      }
      results.push(combineRounds(reel));
      if (theirs.length > 0) results.push(combineRounds(theirs));
      await ceiling('after');
    }
  } finally {
    await nginx?.stop();
    await steering.stop();
  }

  say(
    `\nMeasured runs: ${DURATION} s each after a ${WARMUP_SECONDS} s warm-up; with nginx, ${ROUNDS} alternating rounds of ${Math.max(2, Math.round(DURATION / ROUNDS))} s each ` +
      `(answers summed, p50 and p99 the medians of the rounds); the ceiling ${CEILING_SECONDS} s, before and after the servers (the higher counts).`,
  );
  say(`ReelCDN: ${steering.describe}`);
  if (nginx) say(`nginx: ${nginx.describe}`);
  for (const d of describes) say(d);
  // The ceiling rows: keep the better of before and after, as the table's reference.
  const order: SteeringServer[] = ['ReelCDN', 'nginx', 'node:http'];
  const workloadOrder = (m: SteeringMeasured) => results.findIndex((r) => r.workload === m.workload);
  const best = results
    .filter(
      (m) => m.server !== 'node:http' || m === results.filter((c) => c.server === 'node:http' && c.workload === m.workload).sort((a, b) => b.load.reqPerSec - a.load.reqPerSec)[0],
    )
    .sort((a, b) => workloadOrder(a) - workloadOrder(b) || order.indexOf(a.server) - order.indexOf(b.server));
  say('');
  say(steeringTable(best));
  say('\nTarget (ratio of req/s in this run):\n');
  say(steeringVerdictTable(locateVerdicts(best)));

  if (process.env.BENCH_PREFIX !== '0') {
    const p = runPrefixBench();
    say(
      `\nprefix table: ${p.prefixes} prefixes built in ${p.buildMs} ms; lookups/s mixed ${p.lookupsPerSec.toLocaleString('en')}, ` +
        `IPv4 ${p.v4LookupsPerSec.toLocaleString('en')}, IPv6 ${p.v6LookupsPerSec.toLocaleString('en')}`,
    );
  }
  // Where new sessions land: the real ranking over a simulated ISP (bench/steering-balance.ts).
  if (process.env.BENCH_BALANCE !== '0') say(`\n${formatBalanceRows(runBalanceBench()).trimEnd()}`);
  say(`\ntotal ${elapsed()}, load average at the end ${load()}`);
  if (process.env.BENCH_JSON) {
    writeFileSync(process.env.BENCH_JSON, JSON.stringify({ date: new Date().toISOString(), cpus: nCpu, node: process.version, client: client.kind, results: best }, null, 2));
  }
}

main()
  .then(() => {
    cleanupNow();
    process.exit(0);
  })
  .catch((err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    cleanupNow();
    process.exit(1);
  });

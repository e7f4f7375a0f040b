/**
 * `npm run bench:qoe` — what players experience from a cold edge, with and without CMCD prefetch
 * (issue 12, "Measure"; docs/benchmarks.md "QoE"). N simulated HLS players (abr-player.ts), each
 * on its own title so every session starts cold, play through steering from one edge of the
 * deployed cluster (qoe-cluster.ts) with an origin a round trip away; twice, each time on a fresh
 * edge: `edges[].prefetch.enabled: false`, then the default config (prefetch on). Per run: startup
 * p50/p90, rebuffer ratio, average bitrate, the share of media requests after each session's
 * first segment answered HIT-MEM, origin bytes, the edge's CPU per answer; then the goal lines.
 *
 * Flags (or BENCH_* variables): --players N (24), --seconds S (title length, 120), --speed X
 * (media seconds per real second, 4), --origin-rtt-ms MS (edge↔origin round trip in media time,
 * 80), --stagger-s S (sessions start over this many media seconds, 10), --workers N (edge
 * workers; default: the CLI's, one per CPU), --connections N (per player and host, 1), --runs
 * off,on (which runs, in order), --no-cmcd (players send none), --prefetch JSON (merged into
 * edges[].prefetch of the run with prefetch, e.g. '{"maxConcurrent":48}'; default: the config's). BENCH_JSON=FILE writes the results; BENCH_KEEP=1 keeps the temp dir.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent } from 'undici';
import type { QoeBlock } from '../src/edge/qoe.js';
import { playSession } from './abr-player.js';
import { installCleanupHandlers, trackTempDir, treeCpuSeconds } from './edge-procs.js';
import { QOE_ADMIN_TOKEN, ingestTitles, startQoeCluster } from './qoe-cluster.js';
import { edgeViewLines, prefetchCounts } from './qoe-edge-view.js';
import { DEFAULT_LADDER, ensureMedia } from './qoe-media.js';
import { DEFAULT_CAPS, capPlans } from './qoe-network.js';
import { type RunMeasure, type RunSummary, type SessionRecord, formatRun, goalVerdicts, summarizeRun } from './qoe-stats.js';

const say = (s: string) => process.stdout.write(`${s}\n`);
/** How long the edge's idle CPU is sampled before each run's sessions. */
const IDLE_SAMPLE_MS = 3000;
const IDLE_SETTLE_MS = 2000;

function options() {
  const { values } = parseArgs({
    options: {
      players: { type: 'string' },
      seconds: { type: 'string' },
      speed: { type: 'string' },
      'origin-rtt-ms': { type: 'string' },
      'stagger-s': { type: 'string' },
      workers: { type: 'string' },
      runs: { type: 'string' },
      connections: { type: 'string' },
      prefetch: { type: 'string' },
      'no-cmcd': { type: 'boolean' },
    },
  });
  const num = (flag: string | undefined, env: string, dflt: number) => {
    const v = Number(flag ?? process.env[env] ?? dflt);
    if (!Number.isFinite(v) || v < 0) throw new Error(`bench:qoe: ${env.toLowerCase()} must be a number ≥ 0, not "${flag ?? process.env[env]}"`);
    return v;
  };
  const runs = (values.runs ?? process.env.BENCH_RUNS ?? 'off,on').split(',').map((r) => r.trim());
  for (const r of runs) if (r !== 'off' && r !== 'on') throw new Error(`bench:qoe: --runs takes "off" and "on", not "${r}"`);
  const workers = values.workers ?? process.env.BENCH_WORKERS;
  const prefetchJson = values.prefetch ?? process.env.BENCH_PREFETCH;
  let prefetchSettings: Record<string, unknown> | undefined;
  try {
    prefetchSettings = prefetchJson === undefined ? undefined : (JSON.parse(prefetchJson) as Record<string, unknown>);
  } catch {
    throw new Error(`bench:qoe: --prefetch takes a JSON object (edges[].prefetch of the run with prefetch), not "${prefetchJson}"`);
  }
  return {
    players: Math.max(1, Math.round(num(values.players, 'BENCH_PLAYERS', 24))),
    seconds: Math.max(10, num(values.seconds, 'BENCH_SECONDS', 120)),
    speed: Math.max(0.1, num(values.speed, 'BENCH_SPEED', 4)),
    originRttMs: num(values['origin-rtt-ms'], 'BENCH_ORIGIN_RTT_MS', 80),
    staggerS: num(values['stagger-s'], 'BENCH_STAGGER_S', 10),
    workers: workers === undefined ? undefined : Math.max(1, Math.round(Number(workers))),
    runs: runs as ('off' | 'on')[],
    connections: Math.max(1, Math.round(num(values.connections, 'BENCH_CONNECTIONS', 1))),
    cmcd: !values['no-cmcd'],
    prefetchSettings,
  };
}

/** The edge's /health qoe block and prefetch counters; a line saying why when it cannot be read. */
async function readEdgeView(adminUrl: string): Promise<string[]> {
  const auth = { authorization: `Bearer ${QOE_ADMIN_TOKEN}` };
  // A node of several workers counts sessions in its primary from events the workers send in batches (~1 s behind).
  await new Promise((r) => setTimeout(r, 1500));
  try {
    const health = (await (await fetch(`${adminUrl}/health`, { headers: auth })).json()) as { qoe?: QoeBlock };
    const metrics = await fetch(`${adminUrl}/metrics`, { headers: auth });
    return edgeViewLines(health.qoe, metrics.ok ? prefetchCounts(await metrics.text()) : undefined);
  } catch (err) {
    return [`  the edge's view: not read (${(err as Error).message})`];
  }
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const o = options();
  const home = mkdtempSync(join(tmpdir(), 'reelcdn-bench-qoe-'));
  if (!process.env.BENCH_KEEP) trackTempDir(home);
  const started = performance.now();
  // The edge↔origin round trip is modeled in media time; the real cluster runs `speed` times fast.
  const oneWayMs = o.originRttMs / 2 / o.speed;
  say(`bench:qoe — Node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load ${loadavg().map((l) => l.toFixed(2)).join(' ')} (the machine is shared: other work runs beside this)`);
  say(
    `model: ${o.players} players, each its own ${o.seconds} s title (${DEFAULT_LADDER.map((r) => `${r.name} ${r.videoKbps}k`).join(', ')}, +32k audio, 2 s segments), ` +
      `caps ${DEFAULT_CAPS.loKbps}-${DEFAULT_CAPS.hiKbps} kbps log-spread (every ${DEFAULT_CAPS.dipEvery}rd player at ${DEFAULT_CAPS.dipShare * 100} % from ${DEFAULT_CAPS.dipFrom * 100} % to ${DEFAULT_CAPS.dipTo * 100} % of the title), ` +
      `playback clock ${o.speed}x real time (caps paced at ${o.speed}x in real time), origin RTT ${o.originRttMs} ms media time = ${oneWayMs.toFixed(1)} ms real each way, ` +
      `sessions starting over ${o.staggerS} s, CMCD ${o.cmcd ? 'on (query)' : 'OFF'}, edge workers ${o.workers ?? 'default (one per CPU)'}, ${o.connections} connection${o.connections === 1 ? '' : 's'} per player and host`,
  );

  const media = ensureMedia({ seconds: o.seconds });
  say(`media: ${media.dir} (${media.made ? `made now with ffmpeg in ${((performance.now() - started) / 1000).toFixed(1)} s` : 'from an earlier run'})`);
  const titles = Array.from({ length: o.players }, (_, i) => `qoe-${String(i + 1).padStart(3, '0')}`);
  const ingestAt = performance.now();
  await ingestTitles(home, titles, media.dir);
  say(`ingested ${titles.length} titles in ${((performance.now() - ingestAt) / 1000).toFixed(1)} s`);

  const caps = capPlans(o.players);
  const summaries: RunSummary[] = [];
  const measures: RunMeasure[] = [];
  for (const run of o.runs) {
    const prefetch = run === 'on';
    const label = prefetch
      ? `prefetch on (${o.prefetchSettings ? `edges[].prefetch ${JSON.stringify(o.prefetchSettings)}` : 'default config'})`
      : 'prefetch off (edges[].prefetch.enabled=false)';
    const cluster = await startQoeCluster({
      home,
      run,
      prefetch,
      originOneWayMs: oneWayMs,
      ...(o.workers === undefined ? {} : { workers: o.workers }),
      ...(o.prefetchSettings ? { prefetchSettings: o.prefetchSettings } : {}),
    });
    let m: RunMeasure;
    let edgeView: string[];
    try {
      // The edge's CPU while nobody plays (health polls, timers), to tell the answers' cost apart;
      // sampled after a settle, so the end of its start-up is not taken for its idle rate.
      await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
      const idle0 = treeCpuSeconds(cluster.edgePid);
      await new Promise((r) => setTimeout(r, IDLE_SAMPLE_MS));
      const cpu0 = treeCpuSeconds(cluster.edgePid);
      const idleCpuPerS = (cpu0 - idle0) / (IDLE_SAMPLE_MS / 1000);
      const t0 = performance.now();
      // One connection per host by default: a browser sends a sequential request on the idle
      // connection it has (undici would open a second one when the next request goes out in the
      // same turn the last body ended, and the edge's workers would then take turns).
      const agents = titles.map(() => new Agent({ keepAliveTimeout: 60_000, connections: o.connections }));
      const sessions: SessionRecord[] = await Promise.all(
        titles.map(async (title, i) => {
          await new Promise((r) => setTimeout(r, ((o.staggerS * 1000) / o.speed) * (i / o.players)));
          return playSession({ player: i, steeringUrl: cluster.steeringUrl, title, cap: caps[i]!, speed: o.speed, dispatcher: agents[i]!, cmcd: o.cmcd });
        }),
      );
      const wallS = (performance.now() - t0) / 1000;
      const edgeCpuS = treeCpuSeconds(cluster.edgePid) - cpu0;
      await Promise.all(agents.map((a) => a.close()));
      m = { label, prefetch, sessions, originBytes: cluster.relay.bytesFromOrigin(), edgeCpuS, edgeIdleCpuS: idleCpuPerS * wallS, wallS };
      edgeView = await readEdgeView(cluster.edgeAdminUrl);
    } finally {
      await cluster.stop();
    }
    const s = summarizeRun(m);
    measures.push(m);
    summaries.push(s);
    for (const line of formatRun(s)) say(line);
    for (const line of edgeView) say(line);
    for (const f of m.sessions.filter((x) => x.error !== undefined).slice(0, 5)) say(`  session ${f.player} (${f.title}) failed: ${f.error}`);
  }

  const off = summaries.find((s) => !s.prefetch);
  const on = summaries.find((s) => s.prefetch);
  const goals = off && on ? goalVerdicts(off, on) : undefined;
  if (goals) for (const line of goals.lines) say(line);
  say(`total ${((performance.now() - started) / 1000).toFixed(1)} s`);

  if (process.env.BENCH_JSON) {
    const perSession = measures.map((m) => ({
      label: m.label,
      sessions: m.sessions,
    }));
    writeFileSync(
      process.env.BENCH_JSON,
      JSON.stringify({ at: new Date().toISOString(), node: process.version, cpus: cpus().length, loadavg: loadavg(), options: o, oneWayMs, runs: summaries, goals, perSession }, null, 2),
    );
    say(`wrote ${process.env.BENCH_JSON}`);
  }
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write(`bench:qoe: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});

/**
 * The chaos run, shared by test/chaos.test.ts (40 s) and `npm run bench:chaos` (10 minutes):
 * a real cluster, steady players, the fault schedule, and the figures at the end.
 */
import { Agent } from 'undici';
import {
  CHAOS_ADMIN_TOKEN,
  CHAOS_REINGESTED,
  CHAOS_SLICE_BYTES,
  CHAOS_TITLES,
  FIXTURES,
  type UnexpectedExit,
  startChaosCluster,
  variantBytes,
} from './chaos-cluster.js';
import { applyFault, chaosSchedule } from './chaos-faults.js';
import { CacheView, EtagBook, Tally } from './chaos-ledger.js';
import { SourceMedia, runPlayer } from './chaos-player.js';
import { watchSteering } from './chaos-watch.js';
import { seededRandom } from './seeded-random.js';

export interface ChaosOptions {
  durationMs: number;
  /** Concurrent players. Default 6. */
  clients?: number;
  seed?: number;
  /** Progress lines (fault log). */
  log?: (line: string) => void;
}

export interface ChaosReport {
  tally: Tally;
  unexpectedExits: UnexpectedExit[];
  /** Faults that could not be carried out (an edge that would not restart, …). */
  driverErrors: string[];
  /** Printed remarks (a fault skipped, and why). */
  notes: string[];
  faultLog: string[];
  /** Everything above as the text to print. */
  summary: string;
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => {});
  const faultLog: string[] = [];
  let t0 = performance.now();
  const elapsed = () => performance.now() - t0;
  const note = (line: string) => {
    const l = `${(elapsed() / 1000).toFixed(1).padStart(6)} s  ${line}`;
    faultLog.push(l);
    log(l);
  };
  const cluster = await startChaosCluster({ elapsed, log: note });
  note(`cluster up (origin, steering, ${cluster.edges.length} edges as processes; ${cluster.dir})`);
  const notes = cluster.tmpfsNote ? [cluster.tmpfsNote] : [];
  const driverErrors: string[] = [];
  const tally = new Tally();
  const view = new CacheView(CHAOS_SLICE_BYTES);
  const etags = new EtagBook();
  for (const e of cluster.edges) view.markAlive(e.name);
  const dispatcher = new Agent({ connections: 8, keepAliveTimeout: 4000 });
  const active = new Set<string>();
  const rng = seededRandom(opts.seed ?? 8);
  const titles = Object.values(CHAOS_TITLES) as [string, string, string];
  try {
    const source = new SourceMedia(FIXTURES, CHAOS_TITLES, { title: CHAOS_REINGESTED.title, bytes: variantBytes });
    t0 = performance.now();
    const watch = watchSteering({ adminUrl: cluster.steering.adminUrl, token: CHAOS_ADMIN_TOKEN, everyMs: 200, log: note, active });
    let running = true;
    const players = Array.from({ length: opts.clients ?? 6 }, (_, i) =>
      runPlayer(
        {
          steeringUrl: cluster.steeringUrl,
          source,
          view,
          tally,
          etags,
          dispatcher,
          edgeByOrigin: new Map(cluster.edges.map((e) => [new URL(e.url).origin, e.name])),
          rng: seededRandom((opts.seed ?? 8) * 100 + i + 1),
          elapsed,
          faults: () => [...active].join(', ') || 'none',
          running: () => running,
          attemptTimeoutMs: 6000,
        },
        { hls: titles[0], segments: titles[1], dash: titles[2] },
      ),
    );
    const pending: Promise<void>[] = [];
    for (const { atMs, fault } of chaosSchedule(opts.durationMs, cluster.edges.length, titles.length)) {
      const wait = atMs - elapsed();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      pending.push(
        applyFault({ cluster, view, titles, rng, log: note, active }, fault).catch((err: unknown) => {
          const msg = `${fault.kind} failed: ${(err as Error).message}`;
          driverErrors.push(msg);
          note(`!! ${msg}`);
        }),
      );
    }
    const rest = opts.durationMs - elapsed();
    if (rest > 0) await new Promise((r) => setTimeout(r, rest));
    running = false;
    note('run over; waiting for requests in flight');
    await Promise.all(pending);
    await Promise.all(players);
    await watch.stop();
    note(`${tally.requests} requests`);
  } finally {
    await cluster.close().catch((err: unknown) => driverErrors.push(`teardown: ${(err as Error).message}`));
    await dispatcher.close().catch(() => undefined);
  }
  const summary = [
    `chaos: ${opts.durationMs / 1000} s, ${opts.clients ?? 6} players, 3 edges in one ISP`,
    ...notes.map((n) => `note: ${n}`),
    tally.format(),
    `unexpected exits  ${cluster.unexpectedExits.length}${cluster.unexpectedExits.map((x) => `\n  ${x.name} at ${(x.atMs / 1000).toFixed(1)} s (${x.signal ?? x.code}); log tail:\n${x.logTail.replace(/^/gm, '    ')}`).join('')}`,
    `driver errors     ${driverErrors.length}${driverErrors.map((d) => `\n  ${d}`).join('')}`,
  ].join('\n');
  return { tally, unexpectedExits: cluster.unexpectedExits, driverErrors, notes, faultLog, summary };
}

import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { systemClock, type Clock } from '../common/clock.js';
import type { ClusterConfig, EdgeConfig } from '../common/config.js';
import { adminTokenFromEnv } from '../common/admin-auth.js';
import type { ReloadOutcome } from '../common/reload.js';
import { LoopMonitor } from '../common/loop-monitor.js';
import { createLogger, type Logger } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import type { ClientTls, ServiceTlsMaterial } from '../common/tls.js';
import type { DiskTier } from './disk-tier.js';
import type { EdgeCache, SliceClaims } from './edge-cache.js';
import type { EdgeContext } from './edge-context.js';
import { type EdgeHealth, type EdgeStatus, edgeHealth } from './edge-health.js';
import { EdgeLoad } from './edge-load.js';
import type { EdgeMetrics } from './edge-metrics.js';
import { buildEdgeParts } from './edge-parts.js';
import { startEdge } from './edge-start.js';
import type { FillAgent } from './fill-agent.js';
import { applyAnswerShare, applyNodeShare } from './edge-reload.js';
import { type EdgeView, type PreparedEdgeReload, prepareEdgeReload } from './reload-plan.js';
import type { SeenPlays } from './play-seen.js';
import type { HitPath } from './hit-path.js';
import type { QoeTracker } from './qoe.js';
import { newSeenPlays } from './play-seen-routes.js';
import { buildAdminPort } from './routes/admin-port.js';
import { buildPublicPort } from './routes/public-port.js';
import { TrafficStats } from './traffic-stats.js';
import { ServeReporter, ServeTally } from './serve-report.js';
import type { UpstreamTimeouts } from './upstream.js';

export type { EdgeHealth, EdgeStatus } from './edge-health.js';
export { upstreamTarget } from './edge-parts.js';

/** How often duress follows the loop monitor's verdict: its sample period (LoopMonitor's default). */
const LOOP_SAMPLE_MS = 500;

export interface EdgeServerOptions {
  config: ClusterConfig;
  edge: EdgeConfig;
  clock?: Clock;
  logger?: Logger;
  /** Overrides where misses go (tests point it at their own origin). */
  upstreamUrl?: string;
  upstreamTimeouts?: UpstreamTimeouts;
  /** Overrides the listen addresses from the cluster file (tests use port 0). */
  listen?: { public?: { host: string; port: number }; admin?: { host: string; port: number } };
  adminToken?: string;
  /** Run fill passes by the window (default true); tests and `reelcdn fill` drive the agent themselves. */
  autoFill?: boolean;
  /** Play ids kept for steering's GET /plays (default DEFAULT_SEEN_PLAYS). */
  seenPlaysCapacity?: number;
  /**
   * GET/HEAD of /c/ answered by the raw hit path in front of fastify (default true). Off, the
   * object routes answer everything: the reference the hit path is tested against.
   */
  hitPath?: boolean;
  /**
   * One worker of a multi-worker node (cluster/worker.ts): `disk` is a replica of the primary's
   * index, upstream fetches are claimed from the primary first, play ids go to the primary
   * through `seenPlays`; no admin port and no fill here (the primary holds both).
   */
  /** How many serving processes share this node (budgets per node are split between them). */
  /** `sessions`: where CMCD session sightings go (the primary's one table for the node; QoeTracker's forward). */
  worker?: { disk: DiskTier; claims: SliceClaims; seenPlays: SeenPlays; workers?: number; sessions?: (sid: string, su: boolean) => void };
  /**
   * Certificates already read (a node's worker gets its primary's: every worker serves the same
   * bytes, and none reads a file the primary did not check). Default: read from the cluster file's paths.
   */
  tls?: { service: ServiceTlsMaterial; client: ClientTls | undefined };
  /** Tests: the disk tier poisons pooled read buffers given back, so an answer sent after its release shows. */
  poisonReleasedBuffers?: boolean;
  /** How often what was served is reported to the origin (ms; serve-report.ts). 0: never. Default 60000. */
  serveReportMs?: number;
}

export interface EdgeServer {
  publicApp: FastifyInstance;
  adminApp: FastifyInstance;
  cache: EdgeCache;
  disk: DiskTier;
  metrics: EdgeMetrics;
  fill: FillAgent;
  /** The raw hit path in front of the object routes (undefined when `hitPath` is off). */
  hitPath: HitPath | undefined;
  /** What players said (CMCD), as /health's qoe block counts it. */
  qoe: QoeTracker;
  /** What was served since the last serve report, and its sender (reportNow: tests). */
  serveReports: { tally: ServeTally; reporter: ServeReporter };
  /** Opens the disk tier and listens; resolves with the bound URLs. */
  start(): Promise<{ publicUrl: string; adminUrl: string }>;
  /** Drains: stops accepting, finishes in-flight answers, closes upstream connections. */
  close(): Promise<void>;
  /** `resetLoopDelay` (default true): the event-loop delay reported covers the time since the last reset. */
  health(opts?: { resetLoopDelay?: boolean }): EdgeHealth;
  /**
   * Takes a reloaded cluster file (src/common/reload.ts): prepared first — certificates read and
   * checked, the fill window parsed; a ConfigError then, and nothing changed — then keys,
   * certificates, trust and fill settings swapped in by code that cannot fail.
   */
  reload(next: ClusterConfig): Promise<ReloadOutcome>;
  /**
   * An operator's drain (on) or its end (off): /health says draining, answers say duress (CMSD
   * `du`), prefetch stops; serving goes on. Returns whether it was drained before. A node's
   * primary sets it on its workers.
   */
  setDrained(on: boolean): boolean;
  /**
   * A worker: its node's status as the primary merged it (NODE_STATUS). Its answers' CMSD `du`
   * and its prefetch's overload skip follow the node's status from then on, not its own.
   */
  setNodeStatus(s: EdgeStatus): void;
  /** Applies a reload its node's primary prepared (a worker): reads no file, cannot fail. */
  applyReload(p: PreparedEdgeReload): ReloadOutcome;
}

/**
 * One edge process: the tiers, upstream and fill agent (edge-parts.ts), a public port (object
 * routes, play ids) and an admin port (health, metrics, purge, fill, plays). The routes live in
 * ./routes; this factory only builds what they depend on and wires them.
 */
export function createEdgeServer(opts: EdgeServerOptions): EdgeServer {
  const { config, edge } = opts;
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? createLogger('edge', config.log.level, edge.id);
  const startedAt = clock.monotonic(); // uptime is an interval
  const registry = createRegistry('edge', edge.id);
  const stats = new TrafficStats(clock);
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  // Overloaded only on a sustained delay (http.overloadSamples in a row): one slow moment must
  // not take the edge out of steering nor shed its clients.
  const loop = LoopMonitor.fromConfig(config.http, logger);
  // The file this edge started with (what restart-only fields still are) and the one last applied.
  const boot: EdgeView = { config, edge };
  let last: EdgeView = boot;
  const load = new EdgeLoad(loop, () => last.config.steering.thresholds.maxConnections);
  const ctx: EdgeContext = { opts, config, edge, clock, logger, registry, loop, load, last: () => last };

  const parts = buildEdgeParts(ctx);
  const { disk, metrics, upstream, cache, fill } = parts;
  let { tls, clientTls } = parts;
  // Play ids of the media served, read by steering, which counts a play only once its segments flow.
  const seen = opts.worker?.seenPlays ?? newSeenPlays(opts.seenPlaysCapacity);
  // What clients were served per title and file, for the origin's file weights. Each worker of a
  // node reports its own (its own instance): a play's requests mostly ride one connection.
  const tally = new ServeTally(edge.sliceBytes);
  const reporter = new ServeReporter({ config, edge, tally, clock, logger, adminToken: opts.adminToken ?? adminTokenFromEnv(), tls: clientTls, intervalMs: opts.serveReportMs });
  const pub = buildPublicPort(ctx, parts, tls, stats, seen, tally);
  const { publicApp, qoe } = pub;
  const setDrained = (on: boolean) => load.setDrained(on);
  const { adminApp, openPaths } = buildAdminPort(ctx, parts, tls, publicApp, seen, { health, setDrained });
  // Duress follows the loop monitor's verdict on the monitor's own period.
  const loopCheck = setInterval(() => load.refresh(), LOOP_SAMPLE_MS);
  loopCheck.unref();

  function health(hopts: { resetLoopDelay?: boolean } = {}): EdgeHealth {
    const h = edgeHealth({
      status: load.status(),
      id: edge.id,
      isp: edge.isp,
      startedAt,
      clock,
      connections: load.connections,
      traffic: stats.snapshot(),
      eventLoopDelayMs: loopDelay.percentile(99) / 1e6,
      memory: cache.memoryStats(),
      disk: disk.stats(),
      upstream: { url: upstream.target.url, inflightSlices: cache.inflight },
      fill: fill.progress(),
      qoe: qoe.snapshot(),
    });
    if (hopts.resetLoopDelay ?? true) loopDelay.reset();
    return h;
  }

  async function reload(next: ClusterConfig): Promise<ReloadOutcome> {
    // Everything that can refuse the file, before anything changes.
    return applyReload(prepareEdgeReload(boot, last, { tls, clientTls }, next));
  }

  function applyReload(p: PreparedEdgeReload): ReloadOutcome {
    applyAnswerShare(p, { publicApp, signing: pub.signing, tokens: pub.tokens, upstream, logger });
    if (!opts.worker) applyNodeShare(p, { adminApp, fill, openPaths, logger }, clientTls);
    tls = p.tls;
    if (p.clientTlsChanged) clientTls = p.clientTls;
    reporter.reconfigure(p.config, p.edge, clientTls);
    last = { config: p.config, edge: p.edge };
    load.refresh();
    return { applied: [...p.applied], needsRestart: [...p.needsRestart] };
  }

  return {
    reload,
    applyReload,
    setDrained,
    setNodeStatus: (s) => load.setNodeStatus(s),
    publicApp,
    adminApp,
    cache,
    disk,
    metrics,
    fill,
    hitPath: pub.hitPath,
    qoe,
    serveReports: { tally, reporter },
    health,
    start: () => startEdge(ctx, parts, { publicApp, adminApp }, reporter),
    async close() {
      load.close();
      clearInterval(loopCheck);
      parts.stopFillLoop();
      await fill.stop();
      // Idle keep-alive connections are swept while answers in flight finish (createApp).
      await publicApp.close();
      await upstream.close();
      // The last minute's numbers go to the origin before the node goes.
      await reporter.stop();
      await adminApp.close();
      // Open slice files; a replica also reports its last reads to the owner.
      await disk.close();
      loopDelay.disable();
      loop.stop();
    },
  };
}

import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { systemClock, type Clock } from '../common/clock.js';
import type { ClusterConfig, EdgeConfig } from '../common/config.js';
import { edgeField, listenAddress } from '../common/config.js';
import { CORS_HEADERS } from '../common/cors.js';
import { adminTokenFromEnv, setOpenAdminPaths } from '../common/admin-auth.js';
import { adminGuard, adminLimits, createApp, listenerServer } from '../common/http-app.js';
import type { ReloadOutcome } from '../common/reload.js';
import { LoopMonitor } from '../common/loop-monitor.js';
import { createLogger, type Logger } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import { type ClientTls, type ServiceTlsMaterial, clusterClientTls, loadServiceTls } from '../common/tls.js';
import { watchCertificateExpiry } from '../common/tls-metrics.js';
import { TokenVerifier } from '../common/signing.js';
import { VERSION } from '../common/version.js';
import { DiskTier } from './disk-tier.js';
import { EdgeCache, type SliceClaims, type Tier } from './edge-cache.js';
import { type EdgeHealth, type EdgeStatus, edgeHealth } from './edge-health.js';
import { EdgeMetrics } from './edge-metrics.js';
import { FillAgent } from './fill-agent.js';
import { applyAnswerShare, applyNodeShare } from './edge-reload.js';
import { type EdgeView, type PreparedEdgeReload, prepareEdgeReload } from './reload-plan.js';
import type { SeenPlays } from './play-seen.js';
import { type HitPath, createHitPath } from './hit-path.js';
import { CmsdDynamicHeader } from './cmsd-header.js';
import { ClientThroughput } from './client-throughput.js';
import { QoeTracker } from './qoe.js';
import { newSeenPlays, recordSeenPlays, registerPlaysRoute } from './play-seen-routes.js';
import { EdgePrefetcher } from './prefetch.js';
import { prefetchShare } from './prefetch-budget.js';
import { PrefetchMetrics } from './prefetch-metrics.js';
import { registerAdminRoutes } from './routes/admin-routes.js';
import { registerFillRoutes } from './routes/fill-routes.js';
import { type AnswerSink, type ObjectService, registerObjectRoutes } from './routes/object-routes.js';
import { TrafficStats } from './traffic-stats.js';
import { ServeReporter, ServeTally, recordServed } from './serve-report.js';
import { DEFAULT_TIMEOUTS, Upstream, type UpstreamTarget, type UpstreamTimeouts } from './upstream.js';

export type { EdgeHealth, EdgeStatus } from './edge-health.js';

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

export function upstreamTarget(config: ClusterConfig, edge: EdgeConfig, override?: string): UpstreamTarget {
  if (override) return { kind: 'origin', url: override, signing: config.signing };
  if (edge.parent) {
    const parent = config.edges.find((e) => e.id === edge.parent)!;
    return { kind: 'parent', url: parent.url, signing: config.signing, fallback: { originUrl: config.origin.url, breaker: edge.parentBreaker } };
  }
  return { kind: 'origin', url: config.origin.url, signing: config.signing };
}

/**
 * One edge process: the tiers, upstream and fill agent, a public port (object routes, play ids)
 * and an admin port (health, metrics, purge, fill, plays). The routes live in ./routes; this
 * factory only builds what they depend on and wires them.
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
  let connections = 0;
  let draining = false;
  // Duress as answers and prefetch read it (refreshDuress), and what it follows on a node's worker.
  let duress = false;
  let nodeStatus: EdgeStatus | undefined;
  /** The connection count at which the status changes (maxConnections + 1), kept by refreshDuress. */
  let overConnections = config.steering.thresholds.maxConnections + 1;
  // An operator's drain (POST /drain): steered away from, still serving. `draining` is the stop.
  let drained = false;

  // Metrics sample the tiers lazily, so the cache may be created after them.
  let cache!: EdgeCache;
  const disk = opts.worker?.disk ?? new DiskTier({
    dir: edge.dataDir,
    capacityBytes: edge.diskBytes,
    sliceBytes: edge.sliceBytes,
    logger,
    onEvict: (bytes) => metrics.cacheEvents().evicted?.('disk', bytes),
    poisonReleasedBuffers: opts.poisonReleasedBuffers,
  });
  const metrics = new EdgeMetrics(registry, () => {
    const m = cache.memoryStats();
    // A worker's disk is the node's, reported once by the primary (the node sums the series).
    const d = opts.worker ? { usedBytes: 0, capacityBytes: 0 } : disk.stats();
    return { memory: m.usedBytes, memoryCap: m.capacityBytes, disk: d.usedBytes, diskCap: d.capacityBytes, connections };
  });
  // Certificates of our listeners (a bad file stops the start here), and what we trust and show as a client.
  let tls = opts.tls?.service ?? loadServiceTls(edge, edgeField(config, edge.id));
  let clientTls = opts.tls ? opts.tls.client : clusterClientTls(config, tls.identity);
  // The file this edge started with (what restart-only fields still are) and the one last applied.
  const boot: EdgeView = { config, edge };
  let last: EdgeView = boot;
  const target = upstreamTarget(config, edge, opts.upstreamUrl);
  const upstream = new Upstream(target, clock, opts.upstreamTimeouts ?? DEFAULT_TIMEOUTS, undefined, {
    monotonicNow: () => clock.monotonic(),
    logger,
    tls: clientTls,
    events: target.fallback ? metrics.watchParentBreaker(() => upstream.breakerState) : undefined,
  });
  cache = new EdgeCache({
    disk,
    memoryBytes: edge.memoryBytes,
    sliceBytes: edge.sliceBytes,
    upstream,
    clock,
    logger,
    events: metrics.cacheEvents(),
    claims: opts.worker?.claims,
  });

  // Fill yields to clients: a separate delay monitor, reset every second, says when the loop is busy.
  const fillLoopDelay = monitorEventLoopDelay({ resolution: 10 });
  fillLoopDelay.enable();
  const fillLoopReset = setInterval(() => fillLoopDelay.reset(), 1000);
  fillLoopReset.unref();
  const fill = new FillAgent({
    config,
    edge,
    disk,
    clock,
    logger,
    adminToken: opts.adminToken ?? adminTokenFromEnv(),
    tls: clientTls,
    busy: () => fillLoopDelay.percentile(99) / 1e6 > 40,
    onBytes: (source, bytes) => metrics.fillBytes.inc({ source }, bytes),
    onPublished: (key) => cache.adoptFromDisk(key),
  });

  metrics.watchStatus(edge.isp, VERSION, () => {
    const p = fill.progress();
    return { status: status(), fillWindowOpen: p.windowOpen, nextFillWindowStart: p.nextWindowStart };
  });
  metrics.watchFill(() => {
    const p = fill.progress();
    return { filesDone: p.files.done, filesTotal: p.files.total, bytesDone: p.bytes.done, bytesTotal: p.bytes.total, held: p.heldTitles.length };
  });

  // ---- public port ----
  // Read on every request (a reload may turn it on or off); the keys are the verifier's.
  const signing = { required: config.signing.required };
  // CMCD (players' QoE) in, CMSD (the edge's id, duress and throughput to the client) out.
  const qoe = new QoeTracker({ now: () => clock.monotonic(), forward: opts.worker?.sessions });
  const svc: ObjectService = {
    cache,
    signing,
    tokens: new TokenVerifier(config.signing.keys),
    clock,
    logger,
    answers: answerSink(stats, metrics),
    // The next object players announce (CMCD nor/nrr), fetched into memory before they ask.
    prefetcher: new EdgePrefetcher({
      cache,
      // Budgets are the node's: a worker takes its share, recomputed as reloads change them.
      settings: () => prefetchShare(last.edge.prefetch, opts.worker?.workers ?? 1, last.edge.sliceBytes),
      busy: () => duress,
      logger,
      counts: new PrefetchMetrics(registry, () => cache.prefetchHits, () => cache.prefetchWastedBytes),
    }),
    cmcd: metrics.watchQoe(qoe),
    cmsd: new CmsdDynamicHeader(edge.id, () => duress, new ClientThroughput({ now: () => clock.monotonic() })),
  };
  // Play ids of the media served, read by steering, which counts a play only once its segments flow.
  const seen = opts.worker?.seenPlays ?? newSeenPlays(opts.seenPlaysCapacity);
  // What clients were served per title and file, for the origin's file weights. Each worker of a
  // node reports its own (its own instance): a play's requests mostly ride one connection.
  const tally = new ServeTally(edge.sliceBytes);
  const reporter = new ServeReporter({ config, edge, tally, clock, logger, adminToken: opts.adminToken ?? adminTokenFromEnv(), tls: clientTls, intervalMs: opts.serveReportMs });
  const hitPath = (opts.hitPath ?? true) ? createHitPath({ svc, plays: seen, served: tally }) : undefined;
  const publicApp = createApp({
    logger,
    frameworkErrorHeaders: CORS_HEADERS,
    limits: config.http,
    overloaded: () => loop.overloaded,
    front: hitPath,
    tls: tls.public,
    http2: true,
  });
  publicApp.server.on('connection', (socket) => {
    connections++;
    if (connections === overConnections) refreshDuress();
    socket.once('close', () => {
      connections--;
      if (connections === overConnections - 1) refreshDuress();
    });
  });
  registerObjectRoutes(publicApp, svc);
  recordSeenPlays(publicApp, seen);
  recordServed(publicApp, tally);

  // ---- admin port ----
  const adminApp = createApp({ logger, requestLogLevel: 'debug', limits: adminLimits(config.http), tls: tls.admin, http2: true });
  const open = setOpenAdminPaths(new Set<string>(), config.admin);
  adminApp.addHook('onRequest', adminGuard(open, opts.adminToken));
  // A worker's listener is its node's: the primary reports the node's certificates once.
  if (!opts.worker) watchCertificateExpiry(registry, { public: () => listenerServer(publicApp).tlsMaterial, admin: () => listenerServer(adminApp).tlsMaterial });
  registerPlaysRoute(adminApp, seen);

  function status(): EdgeStatus {
    if (draining || drained) return 'draining';
    if (loop.overloaded || connections > last.config.steering.thresholds.maxConnections) return 'overloaded';
    return 'ok';
  }

  function setDrained(on: boolean): boolean {
    const was = drained;
    drained = on;
    refreshDuress();
    return was;
  }

  function setNodeStatus(s: EdgeStatus): void {
    nodeStatus = s;
    refreshDuress();
  }

  /**
   * `duress` is what every answer's CMSD and every prefetch ask read: a field, set here when what
   * it depends on changes — the loop monitor's verdict (checked on its own period), a drain, the
   * connections crossing the limit, a reload of the limit, the node's status (a worker) — never
   * computed per answer.
   */
  function refreshDuress(): void {
    overConnections = last.config.steering.thresholds.maxConnections + 1;
    // A worker follows its node (the primary's merged verdict, as /health says it); its own close is its own.
    duress = nodeStatus !== undefined ? nodeStatus !== 'ok' || draining : status() !== 'ok';
  }
  const loopCheck = setInterval(refreshDuress, LOOP_SAMPLE_MS);
  loopCheck.unref();

  function health(hopts: { resetLoopDelay?: boolean } = {}): EdgeHealth {
    const h = edgeHealth({
      status: status(),
      id: edge.id,
      isp: edge.isp,
      startedAt,
      clock,
      connections,
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

  registerAdminRoutes(
    adminApp,
    {
      health,
      metricsText: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
      purge: (sel) => cache.purge(sel),
      setDrained,
    },
    logger,
  );
  registerFillRoutes(adminApp, fill, logger);

  async function reload(next: ClusterConfig): Promise<ReloadOutcome> {
    // Everything that can refuse the file, before anything changes.
    return applyReload(prepareEdgeReload(boot, last, { tls, clientTls }, next));
  }

  function applyReload(p: PreparedEdgeReload): ReloadOutcome {
    applyAnswerShare(p, { publicApp, signing, tokens: svc.tokens, upstream, logger });
    if (!opts.worker) applyNodeShare(p, { adminApp, fill, openPaths: open, logger }, clientTls);
    tls = p.tls;
    if (p.clientTlsChanged) clientTls = p.clientTls;
    reporter.reconfigure(p.config, p.edge, clientTls);
    last = { config: p.config, edge: p.edge };
    refreshDuress();
    return { applied: [...p.applied], needsRestart: [...p.needsRestart] };
  }

  return {
    reload,
    applyReload,
    setDrained,
    setNodeStatus,
    publicApp,
    adminApp,
    cache,
    disk,
    metrics,
    fill,
    hitPath,
    qoe,
    serveReports: { tally, reporter },
    health,
    async start() {
      await disk.open();
      cache.loadFromDisk();
      if ((opts.serveReportMs ?? 60_000) > 0) reporter.start();
      const pub = opts.listen?.public ?? listenAddress(edge.url);
      if (opts.worker) {
        // Each worker binds the port itself (SO_REUSEPORT): the kernel spreads connections and
        // the primary never holds one (docs/architecture.md says why).
        const publicUrl = await publicApp.listen({ host: pub.host, port: pub.port, reusePort: true } as { host: string; port: number });
        logger.info({ publicUrl, upstream: upstream.target.url }, 'edge worker listening');
        return { publicUrl, adminUrl: '' };
      }
      await fill.open();
      if (opts.autoFill ?? true) fill.start();
      const adm = opts.listen?.admin ?? listenAddress(edge.adminUrl);
      const publicUrl = await publicApp.listen({ host: pub.host, port: pub.port });
      const adminUrl = await adminApp.listen({ host: adm.host, port: adm.port });
      logger.info({ publicUrl, adminUrl, upstream: upstream.target.url }, 'edge listening');
      return { publicUrl, adminUrl };
    },
    async close() {
      draining = true;
      refreshDuress();
      clearInterval(loopCheck);
      clearInterval(fillLoopReset);
      fillLoopDelay.disable();
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

/** Counts answers into /health's traffic stats and the metrics' tally. */
function answerSink(stats: TrafficStats, metrics: EdgeMetrics): AnswerSink {
  const tally = metrics.answers;
  return {
    answered(status: number, tier: Tier | undefined, bytes: number, seconds: number, onlyIfCachedMiss: boolean) {
      stats.record(status, bytes, tier, onlyIfCachedMiss);
      tally.record(tier, status, bytes, seconds);
    },
  };
}

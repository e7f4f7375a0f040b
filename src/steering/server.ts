import type { FastifyInstance } from 'fastify';
import { Agent } from 'undici';
import type { Registry } from 'prom-client';
import { adminTokenFromEnv, setOpenAdminPaths } from '../common/admin-auth.js';
import { type Clock, systemClock } from '../common/clock.js';
import { type ClusterConfig, listenAddress } from '../common/config.js';
import { CORS_HEADERS, CORS_PREFLIGHT_HEADERS } from '../common/cors.js';
import { adminGuard, adminLimits, boundUrl, createApp, listenerServer } from '../common/http-app.js';
import type { ReloadOutcome } from '../common/reload.js';
import { SwappableAgent } from '../common/swappable-agent.js';
import { clusterClientTls, connectFor, loadServiceTls } from '../common/tls.js';
import { watchCertificateExpiry } from '../common/tls-metrics.js';
import { LoopMonitor } from '../common/loop-monitor.js';
import type { Logger } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import { newPlayId } from '../common/play-id.js';
import type { Ring } from '../common/ring.js';
import { CatalogSource } from './catalog.js';
import { registerDashboard } from './dashboard-routes.js';
import type { HealthFetcher, HealthPoller } from './health-poller.js';
import { Holdings } from './holdings.js';
import { createSteeringMetrics } from './metrics.js';
import { MpdCache, tokenPeriodSec } from './mpd-cache.js';
import { registerOpsRoutes } from './ops-routes.js';
import { PlayGate } from './play-gate.js';
import { PlayReporter } from './play-reporter.js';
import { playerRoutes } from './player-routes.js';
import { registerAdminRoutes } from './routes/admin-routes.js';
import type { SteeringRouteContext } from './routes/context.js';
import { DecisionState } from './routes/decision-state.js';
import { createEdgeFeeds, originPlaySender } from './routes/feeds.js';
import { locateFront, registerLocateRoutes } from './routes/locate-routes.js';
import { registerPlayRoutes } from './routes/play-routes.js';
import { registerSteerRoutes } from './routes/steer-routes.js';
import type { SeenPlaysFetcher } from './seen-plays-poller.js';
import { applySteeringReload, prepareSteeringReload } from './steering-reload.js';
import { type Topology, buildTopology } from './topology.js';

export interface ListenOverride {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
}

export interface SteeringServerOptions {
  config: ClusterConfig;
  logger: Logger;
  clock?: Clock;
  /** Defaults to a fresh registry with process metrics. */
  registry?: Registry;
  /** Listen somewhere other than config.steering.url / adminUrl. */
  listen?: { public?: ListenOverride; admin?: ListenOverride };
  /** Admin bearer token (sent to the origin and edges, required on our admin port). Defaults to REELCDN_ADMIN_TOKEN. */
  adminToken?: string;
  /**
   * Base URL written into manifests (media playlist and steering manifest URLs).
   * Defaults to config.steering.url, or to the bound address when `listen.public` is given.
   */
  publicUrl?: string;
  /** Replaces the undici /health poller (tests). */
  healthFetcher?: HealthFetcher;
  /** Replaces the undici reader of edges' GET /plays (tests). */
  seenPlaysFetcher?: SeenPlaysFetcher;
  /** Timeout of one /health poll (ms). Default min(1000, healthIntervalMs). */
  healthTimeoutMs?: number;
  /** Catalog refresh period (ms, default 30000) and the minimum gap of refreshes caused by misses (default 3000). */
  catalogRefreshMs?: number;
  missRefreshMs?: number;
  /** Play batching to the origin (see PlayReporterOptions). */
  plays?: { flushMs?: number; batchSize?: number; maxBuffered?: number; minBackoffMs?: number; maxBackoffMs?: number };
  /** Edges that hold a title (from fill manifests): ranked first. Absent: ring order only. */
  holders?: (title: string) => ReadonlySet<string> | undefined;
  /** A reload sets the logger's level from `log.level` (the process's own logger, not a test's shared one). */
  followLogLevel?: boolean;
  /** false: /v1/locate answers through the framework route alone (tests compare the two). Default on. */
  locatePath?: boolean;
}

export interface SteeringServer {
  publicApp: FastifyInstance;
  adminApp: FastifyInstance;
  /** Loads the catalog, polls every edge once, then listens; resolves to the bound URLs. */
  start(): Promise<{ publicUrl: string; adminUrl: string }>;
  /** Stops listening (in-flight answers finish), stops polling, flushes plays. */
  close(): Promise<void>;
  /** Health poller (snapshots, pollOnce for tests). */
  health: HealthPoller;
  /** The ring over every configured edge (the current topology's). */
  readonly ring: Ring;
  plays: PlayReporter;
  catalog: CatalogSource;
  /** What requests are decided with now; a reload replaces it whole. */
  topology(): Topology;
  /**
   * Takes a reloaded, validated cluster file: checks its certificates and prefix lists first
   * (a ConfigError naming the field changes nothing), then swaps edges, prefixes, ISPs,
   * thresholds, keys and certificates in; what needs a restart is reported, not taken.
   * Certificates count as changed by their bytes (`steering.tls`, `steering.adminTls`, and
   * `caFile` for the cluster's CA files steering trusts), since a renewal keeps the file names.
   */
  reload(next: ClusterConfig): Promise<ReloadOutcome>;
}

export function createSteeringServer(opts: SteeringServerOptions): SteeringServer {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  const registry = opts.registry ?? createRegistry('steering');
  const adminToken = opts.adminToken ?? adminTokenFromEnv();
  const st = config.steering;

  // Everything a request is decided with, from one cluster file: its topology is swapped whole by reload.
  const holdings = new Holdings();
  const holders = (title: string) => (opts.holders ? opts.holders(title) : holdings.holders(title));
  const state = new DecisionState(buildTopology(config), clock, holders, (id) => health.get(id));
  let publicUrl = opts.publicUrl ?? st.url;
  // Certificates of our listeners (a bad file stops the start here), and what we trust and show as a client.
  let tls = loadServiceTls(st, 'steering');
  let clientTls = clusterClientTls(config, tls.identity);
  // Plays and the dashboard's origin poll: a few requests a second to the origin's admin port.
  const originAdmin = new SwappableAgent((t) => new Agent({ connections: 4, keepAliveTimeout: 30_000, connect: connectFor(t, 5000) }), clientTls);

  const catalog = new CatalogSource({
    originUrl: config.origin.url,
    originAdminUrl: config.origin.adminUrl,
    adminToken,
    tls: clientTls,
    signing: config.signing,
    clock,
    logger,
    refreshMs: opts.catalogRefreshMs,
    missRefreshMs: opts.missRefreshMs,
  });
  // Rewritten MPDs per manifest version and token period: a play fills in only its edges.
  const mpdCache = new MpdCache({ maxBytes: st.mpdCacheBytes, periodSec: tokenPeriodSec(config.signing.ttlSeconds), registry });
  const plays = new PlayReporter({ clock, logger, ...opts.plays, send: originPlaySender(config.origin.adminUrl, adminToken, originAdmin) });
  const metrics = createSteeringMetrics(registry, () => ({ sent: plays.sent, buffered: plays.buffered, dropped: plays.dropped }));
  // A play counts once an edge served its media (and once per client and title per window):
  // manifests alone are free to fetch and would otherwise steer the fill plan.
  const playGate = new PlayGate({
    maxTracked: st.maxTrackedPlays,
    confirmWithinMs: st.playConfirmSeconds * 1000,
    dedupWindowMs: st.playDedupSeconds * 1000,
    newId: newPlayId,
  });
  const timeoutMs = opts.healthTimeoutMs ?? Math.min(1000, st.healthIntervalMs);
  const feeds = { state, clock, logger, metrics, playGate, plays, holdings, adminToken, clientTls, timeoutMs, healthFetcher: opts.healthFetcher, seenPlaysFetcher: opts.seenPlaysFetcher };
  const { health, seenPlays, realFetcher, realSeenFetcher } = createEdgeFeeds(feeds);
  const ctx: SteeringRouteContext = { state, clock, logger, catalog, metrics, registry, health, plays, playGate, mpdCache, publicUrl: () => publicUrl };

  // ---------- public port ----------
  // A loop over its delay budget for a sustained spell sheds public requests (503 + Retry-After).
  const loop = LoopMonitor.fromConfig(config.http, logger);
  const front = locateFront(ctx);
  const publicApp = createApp({ logger, requestLogLevel: 'debug', limits: config.http, overloaded: () => loop.overloaded, tls: tls.public, http2: true, front: opts.locatePath === false ? undefined : front });
  publicApp.addHook('onClose', async () => loop.stop());
  publicApp.addHook('onSend', async (_req, reply, payload) => {
    reply.headers(CORS_HEADERS);
    return payload;
  });
  publicApp.options('/*', async (_req, reply) => reply.code(204).headers(CORS_PREFLIGHT_HEADERS).send());
  registerPlayRoutes(publicApp, ctx);
  registerSteerRoutes(publicApp, ctx);
  registerLocateRoutes(publicApp, ctx);
  // The demo player (/player/) and its title list (/v1/titles).
  publicApp.register(playerRoutes, { catalog });

  // ---------- admin port ----------
  const adminApp = createApp({ logger, requestLogLevel: 'debug', limits: adminLimits(config.http), tls: tls.admin, http2: true });
  const open = setOpenAdminPaths(new Set<string>(), config.admin);
  adminApp.addHook('onRequest', adminGuard(open, adminToken));
  watchCertificateExpiry(registry, { public: () => listenerServer(publicApp).tlsMaterial, admin: () => listenerServer(adminApp).tlsMaterial });
  registerDashboard({ app: adminApp, openPaths: open, config: () => state.topology.config, clock, logger, adminToken, dispatcher: originAdmin, health, registry, playStarts: metrics.playStarts });
  registerOpsRoutes({ app: adminApp, edges: () => state.topology.edges, adminToken, dispatcher: originAdmin, clock, logger, health });
  registerAdminRoutes(adminApp, ctx);

  // Reload (steering-reload.ts): prepared — everything that can refuse the file — then applied.
  const callers = [originAdmin, realFetcher, realSeenFetcher, catalog];
  const followLogLevel = opts.followLogLevel === true;
  const reloadParts = {
    logger, followLogLevel, publicApp, adminApp, openPaths: open, callers, health, seenPlays, metrics, holdings, loads: state.loads, catalog, mpdCache,
    swapDecisionState(p: { topology: Topology; tls: typeof tls; clientTls: typeof clientTls }, prev: Topology) {
      tls = p.tls;
      clientTls = p.clientTls;
      state.swap(p.topology, prev, health.eligibleIds(), health.snapshot());
    },
  };
  const reload = async (next: ClusterConfig): Promise<ReloadOutcome> => {
    const prev = state.topology;
    const served = { public: listenerServer(publicApp).tlsMaterial, admin: listenerServer(adminApp).tlsMaterial };
    const p = prepareSteeringReload({ topology: prev, tls, clientTls, served }, next, reloadParts.followLogLevel);
    await applySteeringReload(p, prev, reloadParts);
    return { applied: p.applied, needsRestart: p.needsRestart };
  };

  let started = false;
  return {
    publicApp,
    adminApp,
    health,
    get ring() {
      return state.topology.ring;
    },
    plays,
    catalog,
    topology: () => state.topology,
    reload,
    async start() {
      await catalog.start();
      if (!catalog.current()) logger.warn('origin catalog not loaded yet; plays answer 503 until it is');
      await health.pollOnce();
      health.start();
      seenPlays.start();
      const pub = opts.listen?.public ?? listenAddress(st.url);
      const adm = opts.listen?.admin ?? listenAddress(st.adminUrl);
      await publicApp.listen({ host: pub.host, port: pub.port });
      await adminApp.listen({ host: adm.host, port: adm.port });
      started = true;
      const urls = { publicUrl: boundUrl(publicApp), adminUrl: boundUrl(adminApp) };
      if (opts.publicUrl === undefined && opts.listen?.public) publicUrl = urls.publicUrl;
      logger.info({ ...urls, edges: state.topology.edges.length, eligible: state.eligible.size }, 'steering listening');
      return urls;
    },
    async close() {
      await health.stop();
      await seenPlays.stop();
      if (started) await Promise.all([publicApp.close(), adminApp.close()]);
      await plays.close();
      await catalog.close();
      await realFetcher?.close();
      await realSeenFetcher?.close();
      await originAdmin.close();
    },
  };
}

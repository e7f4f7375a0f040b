import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { adminTokenFromEnv, setOpenAdminPaths } from '../common/admin-auth.js';
import { type Clock, systemClock } from '../common/clock.js';
import { type ClusterConfig, listenAddress } from '../common/config.js';
import { adminGuard, adminLimits, boundUrl, createApp, listenerServer } from '../common/http-app.js';
import type { ReloadOutcome } from '../common/reload.js';
import { loadServiceTls } from '../common/tls.js';
import { watchCertificateExpiry } from '../common/tls-metrics.js';
import { LoopMonitor } from '../common/loop-monitor.js';
import type { Logger } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import { Catalog } from './catalog.js';
import { catalogPoll } from './catalog-poll.js';
import { catalogSource } from './catalog-source.js';
import type { PlanRunner } from './fill-plan-runner.js';
import { createOriginMetrics } from './metrics.js';
import { OriginAuth } from './origin-auth.js';
import { type OriginContext, type OriginState, startedPlays, startedServed } from './origin-context.js';
import { createOriginPlans } from './origin-plans.js';
import { reloadOrigin } from './origin-reload.js';
import { openOriginData } from './open-origin-data.js';
import type { PlayStore } from './play-store.js';
import type { FileWeights } from './file-weights.js';
import type { ServedStore } from './served-store.js';
import { registerServeReportRoute } from './serve-report-route.js';
import { originStorage } from './storage/open-storage.js';
import { weightsToday } from './weights-today.js';
import { registerAdminRoutes } from './routes/admin-routes.js';
import { registerFillRoutes } from './routes/fill-routes.js';
import { type ServedTotals, registerObjectRoutes } from './routes/object-routes.js';
import { registerPlayRoutes } from './routes/play-routes.js';

export interface ListenOverride {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
}

export interface OriginServerOptions {
  config: ClusterConfig;
  logger: Logger;
  clock?: Clock;
  /** Defaults to a fresh registry with process metrics. */
  registry?: Registry;
  /** Listen somewhere other than config.origin.url / adminUrl. */
  listen?: { public?: ListenOverride; admin?: ListenOverride };
  /** Admin bearer token; defaults to REELCDN_ADMIN_TOKEN. */
  adminToken?: string;
  /** How often to look for a catalog changed by `reelcdn ingest` (ms, clock time). 0 = never. Default 2000. */
  catalogPollMs?: number;
  /** Debounce of plays.json writes (ms). Default 1000. */
  playFlushMs?: number;
  /** New plays or serve reports replan at most this often (ms). Default 60000. */
  replanMs?: number;
  /** Where fill plans are computed. Default: a worker thread (fill-plan-runner.ts). */
  planRunner?: PlanRunner;
}

export interface OriginServer {
  publicApp: FastifyInstance;
  adminApp: FastifyInstance;
  /** Loads the catalog and the play counts, then listens; resolves to the bound URLs. */
  start(): Promise<{ publicUrl: string; adminUrl: string }>;
  /** Stops listening (in-flight answers finish), stops polling, saves play counts. */
  close(): Promise<void>;
  /** Re-reads catalog.json now; a file that does not verify leaves the current catalog in place. */
  reloadCatalog(): Promise<void>;
  /** The catalog being served. */
  catalog(): Catalog;
  /** The play counts (available after start()). */
  plays(): PlayStore;
  /** What edges reported they served (available after start()). */
  served(): ServedStore;
  /** Per-file weights from the edges' serve reports, for planning today (file-weights.ts). */
  fileWeights(): FileWeights;
  /** Who may read /o/: `auth.setSigning(config.signing)` swaps the keys (reload). */
  auth: OriginAuth;
  /** The origin's metrics (the reloader counts its reloads here). */
  registry: Registry;
  /**
   * Takes a reloaded cluster file (src/common/reload.ts): the certificates are read and checked
   * first — a ConfigError then, and nothing changed — then keys, certificates, the edges and
   * fill settings the plans are made for, the admin port's open paths, the log level.
   */
  reload(next: ClusterConfig): Promise<ReloadOutcome>;
}

/** Builds the origin's parts (context, routes, plans, poll) and wires them; each lives in its own module. */
export function createOriginServer(opts: OriginServerOptions): OriginServer {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  const storage = originStorage(config.origin);
  const registry = opts.registry ?? createRegistry('origin');
  const startedAt = clock.monotonic(); // uptime is an interval
  const state: OriginState = { catalog: Catalog.empty(), catalogStamp: '', cluster: config };
  const ctx: OriginContext = {
    boot: config,
    logger,
    clock,
    storage,
    registry,
    metrics: createOriginMetrics(registry, () => state.catalog),
    state,
  };
  const served: ServedTotals = { requests: 0, bytes: 0 };
  const catalog = catalogSource(ctx);

  // Public port: objects only, for edges — a token or a verified client certificate (origin-auth.ts).
  const auth = new OriginAuth(config.signing);
  // A loop over its delay budget for a sustained spell sheds public requests (503 + Retry-After).
  const loop = LoopMonitor.fromConfig(config.http, logger);
  const tls = loadServiceTls(config.origin, 'origin');
  const publicApp = createApp({ logger, requestLogLevel: 'debug', limits: config.http, overloaded: () => loop.overloaded, tls: tls.public });
  publicApp.addHook('onClose', async () => loop.stop());
  registerObjectRoutes(publicApp, ctx, { auth, catalog, served });

  // Admin port.
  const adminApp = createApp({ logger, limits: adminLimits(config.http), tls: tls.admin });
  const open = setOpenAdminPaths(new Set<string>(), config.admin);
  watchCertificateExpiry(registry, { public: () => listenerServer(publicApp).tlsMaterial, admin: () => listenerServer(adminApp).tlsMaterial });
  adminApp.addHook('onRequest', adminGuard(open, opts.adminToken ?? adminTokenFromEnv()));
  registerAdminRoutes(adminApp, ctx, { startedAt, served });
  registerPlayRoutes(adminApp, ctx);
  // Edges' serve reports: what they served per title and file, the planner's file weights.
  registerServeReportRoute(adminApp, {
    store: () => state.servedStore,
    keys: () => state.cluster.signing.keys,
    isEdge: (id) => state.cluster.edges.some((e) => e.id === id),
    fileSize: (title, file) => state.catalog.file(title, file)?.size,
    clock,
    registry,
    logger,
  });
  const plans = createOriginPlans(ctx, opts);
  registerFillRoutes(adminApp, ctx, plans);
  const poll = catalogPoll(ctx, catalog, plans, opts.catalogPollMs ?? 2000);

  return {
    publicApp,
    adminApp,
    registry,
    reload: async (next) => reloadOrigin(ctx, { publicApp, adminApp, auth, plans, openAdminPaths: open }, next),
    async start() {
      await openOriginData(ctx, catalog, opts.playFlushMs);
      await plans.open();
      const pub = opts.listen?.public ?? listenAddress(config.origin.url);
      const adm = opts.listen?.admin ?? listenAddress(config.origin.adminUrl);
      await publicApp.listen({ host: pub.host, port: pub.port });
      await adminApp.listen({ host: adm.host, port: adm.port });
      poll.start();
      const urls = { publicUrl: boundUrl(publicApp), adminUrl: boundUrl(adminApp) };
      logger.info({ ...urls, titles: state.catalog.size }, 'origin listening');
      return urls;
    },
    async close() {
      poll.stop();
      await Promise.all([publicApp.close(), adminApp.close()]);
      await state.playStore?.close();
      await state.servedStore?.close();
      await plans.close();
      await plans.flush();
    },
    reloadCatalog: catalog.reload,
    auth,
    catalog: () => state.catalog,
    plays: () => startedPlays(state),
    served: () => startedServed(state),
    fileWeights: () => weightsToday(state, clock),
  };
}

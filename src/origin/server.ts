import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { adminTokenFromEnv, setOpenAdminPaths } from '../common/admin-auth.js';
import { type Clock, type TimerHandle, systemClock } from '../common/clock.js';
import { type ClusterConfig, listenAddress } from '../common/config.js';
import { adminGuard, adminLimits, boundUrl, createApp, listenerServer, sendError } from '../common/http-app.js';
import { sameTlsMaterial, swapCertificateIfChanged } from '../common/listener-server.js';
import { type ReloadOutcome, changedFields } from '../common/reload.js';
import { loadServiceTls } from '../common/tls.js';
import { watchCertificateExpiry } from '../common/tls-metrics.js';
import { LoopMonitor } from '../common/loop-monitor.js';
import type { Logger } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import { CATALOG_FILE, Catalog, type CatalogResponse, loadCatalog } from './catalog.js';
import { FillPlans } from './fill-plans.js';
import type { PlanRunner } from './fill-plan-runner.js';
import { createOriginMetrics } from './metrics.js';
import { OBJECT_PREFIX, objectHandler } from './object-route.js';
import { ORIGIN_REFUSALS, OriginAuth } from './origin-auth.js';
import { PlayStore } from './play-store.js';
import { parsePlaysBody, utcDay } from './plays.js';
import type { FileWeights } from './file-weights.js';
import { ServedStore } from './served-store.js';
import { registerServeReportRoute } from './serve-report-route.js';
import { SliceDigests } from './slice-digests.js';
import { DirStorage } from './storage/dir-storage.js';
import { originStorage } from './storage/open-storage.js';
import { S3Storage } from './storage/s3-storage.js';
import { STORE_FAILURES, entryFileKey, rangeSource } from './storage/storage.js';
import { packageVersion } from './version.js';

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

const MANIFEST_TYPES = new Set(['application/vnd.apple.mpegurl', 'application/dash+xml']);

export function createOriginServer(opts: OriginServerOptions): OriginServer {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  const dataDir = config.origin.dataDir;
  // The catalog, the titles, the play counts, the serve sums and the standing fill plan (a folder, or a bucket replicas share).
  const storage = originStorage(config.origin);
  const registry = opts.registry ?? createRegistry('origin');
  const pollMs = opts.catalogPollMs ?? 2000;
  const startedAt = clock.monotonic(); // uptime is an interval

  let catalog = Catalog.empty();
  let catalogStamp = '';
  let playStore: PlayStore | undefined;
  let servedStore: ServedStore | undefined;
  let pollTimer: TimerHandle | undefined;
  let closed = false;
  let reloading: Promise<void> | undefined;

  const metrics = createOriginMetrics(registry, () => catalog);
  /** Totals since start for /health (the steering dashboard's origin egress); metrics have them by label. */
  const served = { requests: 0, bytes: 0 };

  /** Identity of catalog.json as stored: inode, size and time on disk (a rename changes the inode), the ETag on S3. */
  const stampOf = async (): Promise<string> => {
    try {
      return (await storage.stat(CATALOG_FILE))?.tag ?? 'absent';
    } catch {
      return 'absent';
    }
  };

  const reloadCatalog = (): Promise<void> => {
    // One reload at a time; concurrent callers share it.
    reloading ??= (async () => {
      try {
        const stamp = await stampOf();
        const next = await loadCatalog(storage);
        catalog = next;
        catalogStamp = stamp;
        logger.info({ titles: next.size, bytes: next.bytes }, 'catalog loaded');
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'catalog not reloaded; serving the previous one');
      } finally {
        reloading = undefined;
      }
    })();
    return reloading;
  };

  const schedulePoll = () => {
    if (pollMs <= 0 || closed) return;
    pollTimer = clock.setTimeout(() => {
      void (async () => {
        if ((await stampOf()) !== catalogStamp) await reloadCatalog();
        // Replicas sharing the play counts, serve sums and standing fill plan (S3) take in each other's saves.
        await playStore?.refresh().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'play counts not refreshed'));
        await servedStore?.refresh().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'serve sums not refreshed'));
        await plans.refresh().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'fill standing plan not refreshed'));
        schedulePoll();
      })();
    }, pollMs);
  };

  // Public port: objects only, for edges — a token or a verified client certificate (origin-auth.ts).
  const auth = new OriginAuth(config.signing);
  for (const reason of ORIGIN_REFUSALS) metrics.refused.inc({ reason }, 0); // every series from the start, at 0
  for (const reason of STORE_FAILURES) metrics.storeErrors.inc({ reason }, 0);
  /** When each kind of store failure was last logged: a throttled store fails many reads at once. */
  const storeErrorLogged = new Map<string, number>();
  // A loop over its delay budget for a sustained spell sheds public requests (503 + Retry-After).
  const loop = LoopMonitor.fromConfig(config.http, logger);
  const tls = loadServiceTls(config.origin, 'origin');
  // The file the origin started with (what restart-only fields still are) and the one last applied.
  const boot = config;
  let last = config;
  const publicApp = createApp({ logger, requestLogLevel: 'debug', limits: config.http, overloaded: () => loop.overloaded, tls: tls.public });
  publicApp.addHook('onClose', async () => loop.stop());
  publicApp.addHook('onResponse', async (req, reply) => {
    metrics.requests.inc({ method: req.method, status: String(reply.statusCode) });
    served.requests++;
  });
  publicApp.route({
    method: ['GET', 'HEAD'],
    url: `${OBJECT_PREFIX}*`,
    exposeHeadRoute: false,
    handler: objectHandler({
      storage,
      catalog: () => catalog,
      onBytes: (type, n) => {
        metrics.bytes.inc({ class: MANIFEST_TYPES.has(type) ? 'manifest' : 'media' }, n);
        served.bytes += n;
      },
      // A stat, not a read, when nothing changed: a file genuinely missing must not re-read the catalog on every request.
      refreshCatalog: async () => {
        if ((await stampOf()) !== catalogStamp) await reloadCatalog();
      },
      auth,
      nowSec: () => clock.now() / 1000,
      onRefused: (reason, path, req) => {
        metrics.refused.inc({ reason });
        // No token is ever logged. A request without one is most likely a stranger (info); a bad
        // one is most likely an edge whose keys or clock are off, which an operator must hear of.
        const line = { reqId: req.id, path, reason, remote: req.ip };
        if (reason === 'missing token') logger.info(line, 'origin refused a request');
        else logger.warn(line, 'origin refused a request');
      },
      onStoreError: (err, req) => {
        metrics.storeErrors.inc({ reason: err.reason });
        const now = clock.monotonic();
        if (now - (storeErrorLogged.get(err.reason) ?? -Infinity) < 1000) return;
        storeErrorLogged.set(err.reason, now);
        logger.warn({ reqId: req.id, reason: err.reason, err: err.message }, 'the object store failed a read: answered 503 (logged at most once a second per reason)');
      },
    }),
  });

  // Admin port.
  const adminApp = createApp({ logger, limits: adminLimits(config.http), tls: tls.admin });
  const open = setOpenAdminPaths(new Set<string>(), config.admin);
  watchCertificateExpiry(registry, { public: () => listenerServer(publicApp).tlsMaterial, admin: () => listenerServer(adminApp).tlsMaterial });
  adminApp.addHook('onRequest', adminGuard(open, opts.adminToken ?? adminTokenFromEnv()));

  adminApp.get('/health', async () => ({
    status: 'ok',
    version: packageVersion(),
    uptimeSec: Math.floor((clock.monotonic() - startedAt) / 1000),
    titles: catalog.size,
    bytes: catalog.bytes,
    served: { ...served },
  }));
  adminApp.get('/metrics', async (_req, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
  adminApp.get('/v1/catalog', async (): Promise<CatalogResponse> => ({ titles: catalog.titles() }));
  adminApp.post('/v1/plays', async (req, reply) => {
    const parsed = parsePlaysBody(req.body);
    if (!parsed.ok) return sendError(reply, 400, parsed.error);
    if (!playStore) return sendError(reply, 503, 'starting');
    playStore.record(parsed.plays);
    for (const p of parsed.plays) metrics.plays.inc({ isp: p.isp });
    return reply.code(204).send();
  });

  // Edges' serve reports: what they served per title and file, the planner's file weights.
  let clusterNow = config;
  registerServeReportRoute(adminApp, {
    store: () => servedStore,
    keys: () => clusterNow.signing.keys,
    isEdge: (id) => clusterNow.edges.some((e) => e.id === id),
    fileSize: (title, file) => catalog.file(title, file)?.size,
    clock,
    registry,
    logger,
  });
  const fileWeights = (): FileWeights => {
    if (!servedStore || !playStore) throw new Error('origin not started');
    const c = catalog;
    const store = playStore;
    // A title's plays as steering confirmed them, all ISPs: what its reads are divided by.
    const byDay = new Map<string, Map<string, number>>();
    const plays = (day: string, title: string) => {
      let m = byDay.get(day);
      if (!m) {
        byDay.set(day, (m = new Map()));
        for (const titles of Object.values(store.countsFor(day))) for (const [t, n] of Object.entries(titles)) m.set(t, (m.get(t) ?? 0) + n);
      }
      return m.get(title);
    };
    const now = clock.now();
    return servedStore.weights(utcDay(now), clusterNow.origin.fill.halfLifeDays, (t, f) => c.file(t, f)?.size, {
      catalogStamp: c,
      plays,
      // Plays arrive all the time: weights are recomputed at most once a minute for them.
      playsStamp: Math.floor(now / 60_000),
    });
  };
  const digests = new SliceDigests();

  for (const outcome of ['made', 'stale', 'failed']) metrics.fillPlans.inc({ outcome }, 0);
  // Plans are made in a worker thread, only when their inputs moved (fill-plans.ts): `/o/` never waits for one.
  const plans = new FillPlans({
    config,
    clock,
    catalog: () => catalog,
    // The bytes `catalog` was verified from, when they are still what is stored (a stat's tag is the read's).
    catalogText: async (c) => {
      const doc = await storage.readDocument(CATALOG_FILE);
      return doc !== undefined && c === catalog && doc.tag === catalogStamp ? doc.text : undefined;
    },
    plays: () => {
      if (!playStore) throw new Error('origin not started');
      return playStore;
    },
    replanMs: opts.replanMs,
    ...(opts.planRunner ? { runner: opts.planRunner } : {}),
    served: () => servedStore,
    standing: { storage, key: 'fill-standing.json' },
    logger,
    onPlan: (outcome, seconds, _why, cpuSeconds) => {
      metrics.fillPlans.inc({ outcome });
      if (outcome === 'failed') return;
      metrics.fillPlanSeconds.observe(seconds);
      metrics.fillPlanCpuSeconds.inc(cpuSeconds);
    },
  });
  adminApp.get('/v1/manifests/:edgeId', async (req, reply) => {
    const { edgeId } = req.params as { edgeId: string };
    let manifest;
    try {
      manifest = await plans.manifestFor(edgeId);
    } catch (err) {
      return sendError(reply, 503, (err as Error).message);
    }
    if (!manifest) return sendError(reply, 404, `no edge "${edgeId}" in the cluster file`);
    const etag = `"${manifest.version}"`;
    reply.header('etag', etag).header('cache-control', 'no-cache');
    if (req.headers['if-none-match'] === etag) return reply.code(304).send();
    // Prefix ranges carry the digests of their slices (read from the files once, remembered).
    const c = catalog;
    try {
      return reply.send(await digests.complete(manifest, (t, f) => {
        const entry = c.get(t);
        const file = c.file(t, f);
        if (!entry || !file) return undefined;
        const key = entryFileKey(entry, f);
        return storage instanceof DirStorage ? storage.pathOf(key) : rangeSource(storage, key, file.size);
      }));
    } catch (err) {
      logger.error({ edgeId, err: (err as Error).message }, 'fill manifest: slice digests unreadable');
      return sendError(reply, 503, `slice digests unavailable: ${(err as Error).message}`);
    }
  });
  adminApp.get('/v1/placements', async (_req, reply) => {
    try {
      return { placements: (await plans.current()).placements };
    } catch (err) {
      return sendError(reply, 503, (err as Error).message);
    }
  });

  async function reload(next: ClusterConfig): Promise<ReloadOutcome> {
    // Everything that can refuse the file, before anything changes.
    const nextTls = loadServiceTls(next.origin, 'origin');
    const needsRestart = changedFields(boot, next, {
      'origin.url': (c) => c.origin.url,
      'origin.adminUrl': (c) => c.origin.adminUrl,
      'origin.dataDir': (c) => c.origin.dataDir,
      'origin.storage': (c) => c.origin.storage ?? { kind: 'dir' },
      // A listener option (requestCert), not a secure context's.
      'origin.tls.requireClientCert': (c) => c.origin.tls?.requireClientCert ?? false,
      http: (c) => c.http,
    });
    const applied = changedFields(last, next, {
      signing: (c) => c.signing,
      'origin.tls': (c) => c.origin.tls,
      'origin.adminTls': (c) => c.origin.adminTls,
      'origin.fill': (c) => c.origin.fill,
      // The fill plans: which edges get a manifest, with what disk, and the titles each ISP pins.
      edges: (c) => c.edges.map((e) => ({ id: e.id, isp: e.isp, url: e.url, diskBytes: e.diskBytes })),
      isps: (c) => c.isps.map((i) => ({ id: i.id, pinnedTitles: i.pinnedTitles })),
      admin: (c) => c.admin,
      'log.level': (c) => c.log.level,
    });
    const note = (list: string[], f: string) => {
      if (!list.includes(f)) list.push(f);
    };
    const publicServer = listenerServer(publicApp);
    const adminServer = listenerServer(adminApp);
    // Certificates, re-issued in place or at a new path, count by their bytes.
    const publicChanged = !sameTlsMaterial(publicServer.tlsMaterial, nextTls.public);
    // Under a listener that asks for client certificates, a context without the CA would refuse
    // every edge: the public certificate waits for the restart requireClientCert waits for.
    const publicNext = needsRestart.includes('origin.tls.requireClientCert') ? undefined : nextTls.public;
    if (publicNext === undefined) {
      const i = applied.indexOf('origin.tls');
      if (i >= 0) applied.splice(i, 1);
      if (i >= 0 || publicChanged) note(needsRestart, 'origin.tls');
    } else if (publicChanged) note(applied, 'origin.tls');
    if (!sameTlsMaterial(adminServer.tlsMaterial, nextTls.admin)) note(applied, 'origin.adminTls');
    // Manifests keep naming the origin's URL as it listens, until a restart.
    const planned: ClusterConfig = { ...next, origin: { ...next.origin, url: boot.origin.url } };

    // ---- the swap: nothing below reads a file or throws ----
    if (applied.includes('signing')) auth.setSigning(next.signing);
    // New connections get the new certificates, open ones keep theirs.
    swapCertificateIfChanged(publicServer, publicNext);
    swapCertificateIfChanged(adminServer, nextTls.admin);
    plans.reconfigure(planned);
    if (applied.includes('admin')) setOpenAdminPaths(open, next.admin);
    if (applied.includes('log.level')) logger.level = next.log.level;
    last = next;
    clusterNow = next;
    return { applied, needsRestart };
  }

  return {
    publicApp,
    adminApp,
    registry,
    reload,
    async start() {
      // A fresh origin has no data folder yet; plays.json will be written into it.
      await mkdir(dataDir, { recursive: true });
      // A broken catalog at start is fatal (and clear); later ones only keep the old catalog.
      catalogStamp = await stampOf();
      catalog = await loadCatalog(storage);
      if (storage instanceof S3Storage && !(await storage.honoursConditionalWrites().catch(() => true))) {
        logger.warn({ storage: storage.location }, 'the store ignores conditional writes: run one ingest and one origin replica at a time (docs/operations.md, "Origin on S3")');
      }
      playStore = await PlayStore.open({
        storage,
        key: 'plays.json',
        clock,
        debounceMs: opts.playFlushMs,
        logger,
      });
      servedStore = await ServedStore.open({
        storage,
        key: 'served.json',
        clock,
        sliceBytes: Math.min(...config.edges.map((e) => e.sliceBytes), 64 * 1024 * 1024),
        logger,
      });
      await plans.open();
      const pub = opts.listen?.public ?? listenAddress(config.origin.url);
      const adm = opts.listen?.admin ?? listenAddress(config.origin.adminUrl);
      await publicApp.listen({ host: pub.host, port: pub.port });
      await adminApp.listen({ host: adm.host, port: adm.port });
      schedulePoll();
      const urls = { publicUrl: boundUrl(publicApp), adminUrl: boundUrl(adminApp) };
      logger.info({ ...urls, titles: catalog.size }, 'origin listening');
      return urls;
    },
    async close() {
      closed = true;
      if (pollTimer) clock.clearTimeout(pollTimer);
      await Promise.all([publicApp.close(), adminApp.close()]);
      await playStore?.close();
      await servedStore?.close();
      await plans.close();
      await plans.flush();
    },
    reloadCatalog,
    auth,
    catalog: () => catalog,
    plays: () => {
      if (!playStore) throw new Error('origin not started');
      return playStore;
    },
    served: () => {
      if (!servedStore) throw new Error('origin not started');
      return servedStore;
    },
    fileWeights,
  };
}

import { type AddressInfo, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { adminTokenFromEnv, setOpenAdminPaths } from '../../common/admin-auth.js';
import { systemClock, type Clock } from '../../common/clock.js';
import type { ClusterConfig, EdgeConfig } from '../../common/config.js';
import { edgeField, listenAddress } from '../../common/config.js';
import { adminGuard, adminLimits, createApp, listenerServer } from '../../common/http-app.js';
import type { ReloadOutcome } from '../../common/reload.js';
import type { Logger } from '../../common/logger.js';
import { createRegistry } from '../../common/metrics.js';
import { type ClientTls, type ServiceTlsMaterial, clusterClientTls, loadServiceTls } from '../../common/tls.js';
import { watchCertificateExpiry } from '../../common/tls-metrics.js';
import { VERSION } from '../../common/version.js';
import { DiskTier, type DiskEvent, type PreparedSlice, type Representation } from '../disk-tier.js';
import { EdgeMetrics } from '../edge-metrics.js';
import { FillAgent } from '../fill-agent.js';
import { newSeenPlays, registerPlaysRoute } from '../play-seen-routes.js';
import type { PurgeSelector } from '../../common/purge-selector.js';
import { registerAdminRoutes } from '../routes/admin-routes.js';
import { registerFillRoutes } from '../routes/fill-routes.js';
import { applyNodeShare } from '../edge-reload.js';
import { type EdgeView, prepareEdgeReload, withEdge } from '../reload-plan.js';
import { type EdgeHealth, type EdgeStatus, fillHealth } from '../edge-health.js';
import { ClaimTable, type ClaimVerdict } from './claim-table.js';
import * as M from './messages.js';
import { type PurgeCounts, purgeNode } from './node-purge.js';
import { type NodeHealth, mergeHealth } from './node-health.js';
import { NodeQoeCounts } from './node-qoe.js';
import { NodeSessions, SESSIONS_FLUSH_MS, type SessionBatch, sharedMonotonicMs } from './node-sessions.js';
import { type MetricData, type WorkerScrape, monotonicOnly, nodeMetricsText } from './node-metrics.js';
import { type Rpc, RpcClosed } from './rpc.js';
import { Supervisor } from './supervisor.js';

/** What a worker answers to STATS. */
export interface WorkerStats extends Omit<WorkerScrape, 'worker' | 'restarts'> {
  health: EdgeHealth;
}

export interface EdgeNodeOptions {
  config: ClusterConfig;
  edge: EdgeConfig;
  workers: number;
  logger: Logger;
  clock?: Clock;
  adminToken?: string;
  /** Overrides the admin listen address from the cluster file. */
  adminListen?: { host: string; port: number };
  /** Overrides the public listen address from the cluster file (every worker binds it). */
  publicListen?: { host: string; port: number };
}

/**
 * Port 0 (tests, ad-hoc runs) means "any free port": chosen here once, so that every worker binds
 * the same one.
 */
async function resolvePort(addr: { host: string; port: number }): Promise<{ host: string; port: number }> {
  if (addr.port !== 0) return addr;
  const probe = createServer();
  await new Promise<void>((resolve, reject) => probe.once('error', reject).listen({ host: addr.host, port: 0 }, resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return { host: addr.host, port };
}

/** How long /health and /metrics wait for a worker before leaving it out. */
const STATS_TIMEOUT_MS = 2000;

/** How long a reload waits for each worker's answer. */
const RELOAD_TIMEOUT_MS = 10_000;

/**
 * An edge node of several worker processes (`reelcdn edge --workers N`, N ≥ 2). This primary
 * holds what the node has once: the disk tier (the workers hold replicas of its index and commit
 * the slices they write through it), the slice claims that make one upstream fetch per slice,
 * the fill agent, the admin port, the seen-plays ring. The workers hold the public port
 * (node:cluster hands them connections in turn), their memory tiers and everything on the
 * answer's path. Why processes and not threads: docs/architecture.md.
 */
export class EdgeNode {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly disk: DiskTier;
  private readonly claims = new ClaimTable();
  private readonly fill: FillAgent;
  private readonly seen = newSeenPlays();
  /** The primary's own series (disk, fill, reloads); /metrics adds the workers'. */
  readonly registry;
  private readonly metrics: EdgeMetrics;
  private readonly supervisor: Supervisor;
  /** The admin port (routes may be added before start: POST /reload). */
  readonly adminApp: FastifyInstance;
  /** The file the node started with (what restart-only fields still are) and the one last applied. */
  private readonly boot: EdgeView;
  private last: EdgeView;
  private tls: ServiceTlsMaterial;
  private clientTls: ClientTls | undefined;
  private readonly openPaths = new Set<string>();
  /** Workers that received their disk snapshot: they get every later disk event. */
  private readonly replicas = new Map<number, Rpc>();
  private readonly startedAt: number;
  private draining = false;
  /** An operator's drain (POST /drain): steered away from, still serving. `draining` is the stop. */
  private drained = false;
  private publicUrl?: string;
  private publicListen?: { host: string; port: number };
  private readyWaiters: (() => void)[] = [];
  private readyCount = 0;
  private lastLoopDelayMs = 0;
  private lastStatus: EdgeStatus = 'ok';
  private startFailed?: (err: Error) => void;
  /** Each live worker's last metrics, kept for a scrape it misses and for after it dies. */
  private readonly lastScrape = new Map<number, { pid: number; metrics: MetricData[] }>();
  /** Counters of workers that died, still part of the node's sums. */
  private readonly retired: MetricData[][] = [];
  private busyPoll?: NodeJS.Timeout;
  /** The node's qoe block, carried so that it only goes up (a late worker, a restarted one). */
  private readonly qoeCounts = new NodeQoeCounts();
  /** The node's one session table, fed by the workers' sightings (node-sessions.ts). */
  private readonly sessions: NodeSessions;
  private sessionsSettle?: NodeJS.Timeout;
  /** The status the workers were last told (NODE_STATUS). */
  private toldStatus: EdgeStatus = 'ok';

  constructor(private readonly opts: EdgeNodeOptions) {
    const { config, edge } = opts;
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger;
    this.startedAt = this.clock.monotonic();
    this.registry = createRegistry('edge', edge.id);
    // Read once, here: the workers are handed these bytes (INIT, RELOAD) and read no certificate file.
    const tls = loadServiceTls(edge, edgeField(config, edge.id));
    this.tls = tls;
    this.clientTls = clusterClientTls(config, tls.identity);
    this.boot = { config, edge };
    this.last = this.boot;
    this.disk = new DiskTier({
      dir: edge.dataDir,
      capacityBytes: edge.diskBytes,
      sliceBytes: edge.sliceBytes,
      logger: this.logger,
      onEvict: (bytes) => this.metrics.cacheEvents().evicted?.('disk', bytes),
      onChange: (e: DiskEvent) => this.broadcast(M.DISK_EVENT, e),
    });
    // The primary's share of the node's series: the disk tier and the fill. Answers and memory
    // tiers are the workers'; this registry reports zero for them.
    this.metrics = new EdgeMetrics(this.registry, () => {
      const d = this.disk.stats();
      return { memory: 0, memoryCap: 0, disk: d.usedBytes, diskCap: d.capacityBytes, connections: 0 };
    });
    const sessionSeen = this.metrics.watchSessions(() => this.sessions.table.activeSessions(sharedMonotonicMs()));
    this.sessions = new NodeSessions({ onOutcome: sessionSeen });
    this.fill = new FillAgent({
      config,
      edge,
      disk: this.disk,
      clock: this.clock,
      logger: this.logger,
      adminToken: opts.adminToken ?? adminTokenFromEnv(),
      tls: this.clientTls,
      // Fill yields to clients: the workers' loops say when they are busy.
      busy: () => this.lastLoopDelayMs > 40,
      onBytes: (source, bytes) => this.metrics.fillBytes.inc({ source }, bytes),
      onPublished: (key) => this.broadcast(M.ADOPT, key),
    });
    this.metrics.watchStatus(edge.isp, VERSION, () => {
      const p = this.fill.progress();
      return { status: this.draining || this.drained ? 'draining' : this.lastStatus, fillWindowOpen: p.windowOpen, nextFillWindowStart: p.nextWindowStart };
    });
    this.metrics.watchFill(() => {
      const p = this.fill.progress();
      return { filesDone: p.files.done, filesTotal: p.files.total, bytesDone: p.bytes.done, bytesTotal: p.bytes.total, held: p.heldTitles.length };
    });

    this.supervisor = new Supervisor({
      count: opts.workers,
      exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)),
      logger: this.logger,
      monotonicNow: () => this.clock.monotonic(),
      onWorker: (index, rpc) => this.wire(index, rpc),
      onExit: (index, code, signal) => {
        this.replicas.delete(index);
        this.claims.workerGone(index);
        this.retire(index);
        // A worker that cannot start (its port taken, a bad data dir) fails the node's start
        // with its reason rather than being restarted forever while start() waits.
        if (this.readyCount < this.opts.workers) this.startFailed?.(new Error(`edge worker ${index} exited while starting (code ${code}, signal ${signal}); see its error above`));
      },
    });

    this.adminApp = createApp({ logger: this.logger, requestLogLevel: 'debug', limits: adminLimits(config.http), tls: tls.admin, http2: true });
    setOpenAdminPaths(this.openPaths, config.admin);
    // The public listener is the workers', serving what this primary handed them.
    watchCertificateExpiry(this.registry, { public: () => this.tls.public, admin: () => listenerServer(this.adminApp).tlsMaterial });
    this.adminApp.addHook('onRequest', adminGuard(this.openPaths, opts.adminToken));
    registerAdminRoutes(
      this.adminApp,
      {
        health: () => this.health(),
        metricsText: async () => ({ contentType: this.registry.contentType, body: await this.metricsText() }),
        purge: (sel) => this.purge(sel),
        setDrained: (on) => {
          const was = this.drained;
          this.drained = on;
          // The workers answer: they say duress and stop prefetching while drained.
          this.broadcast(M.DRAINED, on);
          // Their du and prefetch follow the node's status: draining now; after an undrain, as merged anew.
          if (on) this.setStatus('draining');
          else void this.gather(false).then((ws) => this.setStatus(this.merge(ws).status));
          return was;
        },
      },
      this.logger,
    );
    registerFillRoutes(this.adminApp, this.fill, this.logger);
    registerPlaysRoute(this.adminApp, this.seen);
  }

  /** Calls and notices of one worker (again after each restart). */
  private wire(index: number, rpc: Rpc): void {
    rpc.handle(M.INIT, (): M.InitReply => {
      // From this snapshot on, the worker gets every disk event: nothing is missed in between.
      this.replicas.set(index, rpc);
      // The configuration as last reloaded, not as at boot: a worker restarted since works like the others.
      return {
        config: withEdge(this.last.config, this.last.edge),
        edge: this.last.edge,
        tls: this.tls,
        clientTls: this.clientTls,
        worker: index,
        workers: this.opts.workers,
        publicListen: this.publicListen!,
        snapshot: this.disk.snapshot(),
        drained: this.drained,
        nodeStatus: this.toldStatus,
      };
    });
    rpc.handle(M.CLAIM, ({ key, index: slice }: M.ClaimBody) => {
      // Stored by another worker before this one saw the event: read it from disk.
      if (this.disk.has(key, slice)) return 'stored' as ClaimVerdict;
      return new Promise<ClaimVerdict>((resolve) => this.claims.claim(`${key}#${slice}`, index, resolve));
    });
    rpc.on(M.RELEASE, ({ key, index: slice }: M.ClaimBody) => {
      // On disk already (its claimant found it there, or stored it without a commit of its
      // own): the waiters read it rather than fetch it again, one after the other.
      if (this.disk.has(key, slice)) this.claims.stored(`${key}#${slice}`);
      else this.claims.release(`${key}#${slice}`, index);
    });
    rpc.handle(M.DISK_COMMIT, async (p: PreparedSlice) => {
      const outcome = await this.disk.commit(p);
      // The put event went to every replica first (same channel, earlier): waiters find it there.
      if (outcome === 'stored') this.claims.stored(`${p.key}#${p.index}`);
      return outcome;
    });
    rpc.on(M.DISK_TOUCH_VALIDATED, ({ key, at, cacheControl }: { key: string; at: number; cacheControl?: string }) => this.disk.touchValidated(key, at, cacheControl));
    rpc.on(M.DISK_TOUCHED, (paths: string[]) => this.disk.touched(paths));
    rpc.on(M.DISK_DAMAGED, ({ key, index: slice, path }: { key: string; index: number; path: string }) => this.disk.damaged(key, slice, path));
    rpc.on(M.DISK_DROPPED, ({ key, rep }: { key: string; rep: Representation }) => this.disk.dropIfCurrent(key, rep));
    rpc.on(M.SESSIONS, (b: SessionBatch) => this.sessions.add(b));
    rpc.on(M.PLAYS_SEEN, (ids: string[]) => {
      for (const id of ids) this.seen.record(id);
    });
    rpc.on(M.READY, ({ publicUrl }: { publicUrl: string }) => {
      this.publicUrl ??= publicUrl;
      this.readyCount++;
      for (const w of this.readyWaiters.splice(0)) w();
    });
  }

  private broadcast(t: string, body: unknown): void {
    for (const rpc of this.replicas.values()) rpc.notify(t, body);
  }

  /** Opens the disk tier, starts the workers and the admin port; resolves once every worker listens. */
  async start(autoFill = true): Promise<{ publicUrl: string; adminUrl: string }> {
    const opened = await this.disk.open();
    this.logger.info({ ...opened }, 'disk tier opened');
    await this.fill.open();
    this.publicListen = await resolvePort(this.opts.publicListen ?? listenAddress(this.opts.edge.url));
    this.supervisor.start();
    try {
      await new Promise<void>((resolve, reject) => {
        this.startFailed = reject;
        const check = () => (this.readyCount >= this.opts.workers ? resolve() : this.readyWaiters.push(check));
        check();
      });
    } catch (err) {
      await this.supervisor.drain(async () => {});
      throw err;
    } finally {
      this.startFailed = undefined;
    }
    const adm = this.opts.adminListen ?? listenAddress(this.opts.edge.adminUrl);
    const adminUrl = await this.adminApp.listen({ host: adm.host, port: adm.port });
    if (autoFill) this.fill.start();
    // The fill's view of the workers' loops, refreshed every second.
    this.busyPoll = setInterval(() => {
      void this.gather(false).then((ws) => {
        this.lastLoopDelayMs = ws.reduce((m, w) => Math.max(m, w.stats?.health.eventLoopDelayMs ?? 0), 0);
        this.setStatus(this.merge(ws).status);
      });
    }, 1000);
    this.busyPoll.unref();
    // Sightings older than the settle time go into the table in time order (node-sessions.ts).
    this.sessionsSettle = setInterval(() => this.sessions.settle(sharedMonotonicMs()), SESSIONS_FLUSH_MS);
    this.sessionsSettle.unref();
    const publicUrl = this.publicUrl!;
    this.logger.info({ publicUrl, adminUrl, workers: this.opts.workers, upstream: this.opts.config.origin.url }, 'edge listening');
    return { publicUrl, adminUrl };
  }

  /**
   * Every live worker's stats (undefined for one that did not answer in time). `resetLoopDelay`:
   * a /health read starts each worker's event-loop delay window again; the fill's poll does not.
   */
  private async gather(resetLoopDelay: boolean): Promise<{ index: number; pid: number; restarts: number; stats?: WorkerStats }[]> {
    return Promise.all(
      this.supervisor.live().map(async (w) => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), STATS_TIMEOUT_MS)));
        const stats = await Promise.race([w.rpc.call<WorkerStats>(M.STATS, { resetLoopDelay } satisfies M.StatsBody).catch(() => undefined), timeout]);
        clearTimeout(timer);
        if (stats) {
          this.lastScrape.set(w.index, { pid: w.pid, metrics: stats.metrics });
          this.qoeCounts.answered(w.index, w.pid, stats.health.qoe);
        }
        return { index: w.index, pid: w.pid, restarts: w.restarts, stats };
      }),
    );
  }

  async health(): Promise<NodeHealth> {
    const h = this.merge(await this.gather(true));
    this.setStatus(h.status);
    return h;
  }

  /** The node's merged status; the workers are told when it changes (their CMSD du and prefetch follow it). */
  private setStatus(s: EdgeStatus): void {
    this.lastStatus = s;
    if (s === this.toldStatus) return;
    this.toldStatus = s;
    this.broadcast(M.NODE_STATUS, s);
  }

  private merge(workers: { index: number; pid: number; restarts: number; stats?: WorkerStats }[]): NodeHealth {
    const d = this.disk.stats();
    return mergeHealth(
      {
        id: this.opts.edge.id,
        isp: this.opts.edge.isp,
        version: VERSION,
        uptimeSec: Math.round((this.clock.monotonic() - this.startedAt) / 1000),
        disk: { usedBytes: d.usedBytes, capacityBytes: d.capacityBytes, pinnedBytes: d.pinnedBytes },
        fill: fillHealth(this.fill.progress()),
        upstream: { url: workers.find((w) => w.stats)?.stats?.health.upstream.url ?? this.opts.config.origin.url, inflightSlices: 0 },
        draining: this.draining || this.drained,
        maxConnections: this.last.config.steering.thresholds.maxConnections,
        qoe: this.nodeQoe(),
      },
      this.allSlots(workers).map((w) => ({ worker: w.index, pid: w.pid, restarts: w.restarts, health: w.stats?.health })),
    );
  }

  /** Every worker's last per-request counters, the retired workers', and the node's sessions and startups. */
  private nodeQoe() {
    this.sessions.settle(sharedMonotonicMs());
    return this.qoeCounts.total(this.sessions.table.block());
  }

  /** Live workers, plus a line for each one that is down right now (restarting). */
  private allSlots(live: { index: number; pid: number; restarts: number; stats?: WorkerStats }[]) {
    const byIndex = new Map(live.map((w) => [w.index, w]));
    return Array.from({ length: this.opts.workers }, (_, i) => byIndex.get(i + 1) ?? { index: i + 1, pid: 0, restarts: this.supervisor.restarts(i + 1) });
  }

  async metricsText(): Promise<string> {
    const workers = await this.gather(false);
    const scrapes: WorkerScrape[] = workers.flatMap((w) => (w.stats ? [{ ...w.stats, worker: w.index, restarts: w.restarts }] : []));
    // The node's counters never go back: a worker that did not answer in time counts with what it
    // said last, and one that died with its last word (its successor starts from zero).
    const late = workers.flatMap((w) => (w.stats ? [] : [this.lastScrape.get(w.index)?.metrics ?? []]));
    return nodeMetricsText(this.registry, scrapes, { service: 'edge', node: this.opts.edge.id }, [...late, ...this.retired]);
  }

  /** A worker is gone: its counters so far stay in the node's sums. */
  private retire(index: number): void {
    const last = this.lastScrape.get(index);
    this.lastScrape.delete(index);
    if (last) this.retired.push(monotonicOnly(last.metrics));
    this.qoeCounts.retire(index);
  }

  /** Purges the disk (here) and every worker's memory tier, metadata and fetches (node-purge.ts). */
  purge(sel: PurgeSelector): Promise<PurgeCounts> {
    return purgeNode(sel, this.disk, () =>
      Promise.all(this.supervisor.live().map((w) => w.rpc.call<PurgeCounts>(M.PURGE, sel satisfies M.PurgeBody).catch(() => ({ objects: 0, bytes: 0 })))),
    );
  }

  /**
   * Takes a reloaded cluster file, prepared once here (every certificate of the node read and
   * checked, the public one too): a file that does not validate changes nothing anywhere. Then
   * the primary's share (admin certificate, fill, open paths, log level), and every live worker
   * applies the same prepared reload — the same certificate bytes, no file read again, nothing
   * that can refuse — so the node never runs two files. A worker that dies meanwhile, or starts
   * later, is given this configuration and these certificates (INIT).
   */
  async reload(next: ClusterConfig): Promise<ReloadOutcome> {
    const p = prepareEdgeReload(this.boot, this.last, { tls: this.tls, clientTls: this.clientTls }, next);
    applyNodeShare(p, { adminApp: this.adminApp, fill: this.fill, openPaths: this.openPaths, logger: this.logger }, this.clientTls);
    this.tls = p.tls;
    if (p.clientTlsChanged) this.clientTls = p.clientTls;
    this.last = { config: p.config, edge: p.edge };

    const failures: string[] = [];
    const applied = new Set(p.applied);
    const needsRestart = new Set(p.needsRestart);
    await Promise.all(
      this.supervisor.live().map(async (w) => {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), RELOAD_TIMEOUT_MS)));
        try {
          const o = await Promise.race([w.rpc.call<ReloadOutcome>(M.RELOAD, p satisfies M.ReloadBody), late]);
          if (o === 'late') {
            // Its channel keeps order: it applies this reload when its loop gets to it.
            this.logger.warn({ worker: w.index }, `edge worker ${w.index} has not confirmed the reload within ${RELOAD_TIMEOUT_MS} ms; it applies it when it reads its channel`);
            return;
          }
          for (const f of o.applied) applied.add(f);
          for (const f of o.needsRestart) needsRestart.add(f);
        } catch (err) {
          // A worker that died meanwhile is restarted with this configuration: nothing lost.
          if (!(err instanceof RpcClosed)) failures.push(`worker ${w.index}: ${(err as Error).message}`);
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    // Applying cannot refuse a file; an error here is a bug, told as such.
    if (failures.length > 0) throw new Error(`applying the reload failed in ${failures.join('; ')}`);
    return { applied: [...applied], needsRestart: [...needsRestart] };
  }

  /** Drains: workers finish their answers and exit, then the fill and the admin port stop. */
  async close(): Promise<void> {
    this.draining = true;
    // Workers that go on their own signal now (a process-group SIGTERM) are not restarted.
    this.supervisor.stopRestarting();
    if (this.busyPoll) clearInterval(this.busyPoll);
    if (this.sessionsSettle) clearInterval(this.sessionsSettle);
    await this.fill.stop();
    await this.supervisor.drain((rpc) => rpc.call(M.DRAIN));
    await this.adminApp.close();
    await this.disk.close();
  }
}

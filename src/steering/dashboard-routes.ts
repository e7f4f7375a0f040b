import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import type { Counter, Registry } from 'prom-client';
import { type Dispatcher, request } from 'undici';
import type { Clock, TimerHandle } from '../common/clock.js';
import type { ClusterConfig } from '../common/config.js';
import { sendError } from '../common/http-app.js';
import type { Logger } from '../common/logger.js';
import { DashboardHistory, type EdgeSample, type TierCounts, addTiers, asTierCounts, emptyTiers, ratios } from './dashboard-history.js';
import { type EdgeHealth, isEligible } from './health.js';
import type { HealthPoller } from './health-poller.js';
import { healthReasonKind, watchEdgeHealth } from './metrics.js';
import { QoeHistory, asQoeCounts } from './qoe-history.js';

/** Where the package lives (src/steering or dist/src/steering alike), for public/dashboard. */
const PACKAGE_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
})();

export const DASHBOARD_DIR = join(PACKAGE_ROOT, 'public', 'dashboard');

/** uPlot's dist folder, wherever npm put the package. */
function uplotDist(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('uplot/package.json')), 'dist');
}

export interface DashboardOptions {
  /** Steering's admin app; its guard protects /v1/dashboard. */
  app: FastifyInstance;
  /** The admin guard's open paths: the page and its assets are added (they must load before login). */
  openPaths: Set<string>;
  /** The cluster file, or how to read the current one (it changes on reload). */
  config: ClusterConfig | (() => ClusterConfig);
  clock: Clock;
  logger: Logger;
  adminToken: string | undefined;
  /** How the origin's admin port is reached (its CA over https). Default: undici's global agent. */
  dispatcher?: Dispatcher;
  health: HealthPoller;
  registry: Registry;
  playStarts: Counter<'title' | 'isp'>;
  /** Period of history samples and origin polls (ms). Default clamp(4 × healthIntervalMs, 1000, 5000). */
  sampleMs?: number;
}

interface OriginView {
  reachable: boolean;
  error?: string;
  polledAt?: number;
  /** Monotonic ms of the poll: the egress rate is measured on it, not on the wall clock. */
  polledMono?: number;
  bytesServed?: number;
  requests?: number;
  bytesPerSec?: number;
}

/**
 * The ops dashboard on steering's admin port: `/dashboard` (static page, open),
 * `/dashboard/vendor/uplot/*` (the chart library from node_modules, open) and
 * `GET /v1/dashboard` (JSON, admin token). Steering already polls every edge's /health;
 * this adds a poll of the origin's /health and a one-hour in-memory history.
 */
export function registerDashboard(o: DashboardOptions): void {
  const { app, clock, logger } = o;
  const current = typeof o.config === 'function' ? o.config : () => o.config as ClusterConfig;
  const sampleMs = o.sampleMs ?? Math.min(5000, Math.max(1000, 4 * current().steering.healthIntervalMs));
  const history = new DashboardHistory();
  // What players experienced (the edges' CMCD counters), per interval over the same hour.
  const qoe = new QoeHistory();
  watchEdgeHealth(o.registry, () => current().edges, () => o.health.snapshot());

  o.openPaths.add('/dashboard');
  o.openPaths.add('/dashboard/');
  app.register(fastifyStatic, { root: DASHBOARD_DIR, prefix: '/dashboard/', index: ['index.html'], cacheControl: false, maxAge: 0 });
  app.register(fastifyStatic, { root: uplotDist(), prefix: '/dashboard/vendor/uplot/', decorateReply: false });
  app.get('/dashboard', (_req, reply) => reply.header('cache-control', 'no-cache').sendFile('index.html', DASHBOARD_DIR));

  // ---- origin egress ----
  // The origin's admin URL as steering started: a reload reports origin.adminUrl as needing a
  // restart (the catalog and play reports keep the old one too), so the dashboard does not follow it alone.
  const originAdminUrl = current().origin.adminUrl;
  let origin: OriginView = { reachable: false, error: 'not polled yet' };
  const pollOrigin = async (): Promise<void> => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (o.adminToken) headers.authorization = `Bearer ${o.adminToken}`;
    const now = clock.now();
    const mono = clock.monotonic();
    try {
      const res = await request(`${originAdminUrl}/health`, { headers, dispatcher: o.dispatcher, headersTimeout: 1000, bodyTimeout: 1000, signal: AbortSignal.timeout(1500) });
      const body = (await res.body.json()) as { served?: { bytes?: unknown; requests?: unknown } };
      if (res.statusCode !== 200 || typeof body.served?.bytes !== 'number') throw new Error(`HTTP ${res.statusCode}`);
      const bytes = body.served.bytes;
      const prev = origin;
      const rate =
        prev.reachable && prev.bytesServed !== undefined && prev.polledMono !== undefined && mono > prev.polledMono && bytes >= prev.bytesServed
          ? ((bytes - prev.bytesServed) * 1000) / (mono - prev.polledMono)
          : undefined;
      origin = { reachable: true, polledAt: now, polledMono: mono, bytesServed: bytes, requests: typeof body.served.requests === 'number' ? body.served.requests : undefined, bytesPerSec: rate };
    } catch (err) {
      const e = err as Error & { code?: string };
      origin = { reachable: false, polledAt: now, error: e.code ?? e.message };
    }
  };

  const edgeSamples = (): EdgeSample[] =>
    current().edges.map((e) => {
      const h = o.health.get(e.id)!;
      const r = h.lastReport as (Record<string, unknown> & { bytesPerSec?: number }) | undefined;
      return { id: e.id, isp: e.isp, state: h.state, tiers: asTierCounts(r?.byTier), bytesPerSec: isEligible(h) ? (r?.bytesPerSec ?? 0) : 0 };
    });

  // An edge from before CMCD has no qoe block: no counters, shown as "no CMCD data".
  const qoeSamples = () =>
    current().edges.map((e) => {
      const r = o.health.get(e.id)?.lastReport as (Record<string, unknown> & { uptimeSec?: unknown }) | undefined;
      return { id: e.id, isp: e.isp, qoe: asQoeCounts(r?.qoe), uptimeSec: typeof r?.uptimeSec === 'number' ? r.uptimeSec : undefined };
    });

  // ---- sampling: starts when the admin port listens, stops when it closes ----
  let timer: TimerHandle | undefined;
  let running = false;
  let inflight: Promise<void> | undefined;
  const tick = () => {
    if (!running) return;
    inflight = pollOrigin()
      .then(() => {
        const mono = clock.monotonic();
        history.add({ at: clock.now(), mono, edges: edgeSamples(), originBytes: origin.reachable ? origin.bytesServed : undefined });
        qoe.add(mono, qoeSamples());
      })
      .catch((err) => logger.warn({ err: (err as Error).message }, 'dashboard sample failed'))
      .finally(() => {
        inflight = undefined;
        if (running) timer = clock.setTimeout(tick, sampleMs);
      });
  };
  app.addHook('onReady', async () => {
    running = true;
    tick();
  });
  app.addHook('onClose', async () => {
    running = false;
    if (timer) clock.clearTimeout(timer);
    await inflight;
  });

  // ---- the data ----
  app.get('/v1/dashboard', async (req, reply) => {
    const sinceRaw = (req.query as { since?: string }).since;
    const since = sinceRaw === undefined ? undefined : Number(sinceRaw);
    if (since !== undefined && !Number.isFinite(since)) return sendError(reply, 400, 'since must be a number (ms since the epoch)');
    const snap = o.health.snapshot();
    const now = clock.now();
    const config = current();

    const isps = new Map<string, { id: string; edges: string[]; up: number; tiers: TierCounts }>();
    const cluster = emptyTiers();
    const edges = config.edges.map((e) => {
      const h = snap.get(e.id) as EdgeHealth;
      const r = h.lastReport as Record<string, unknown> | undefined;
      const tiers = asTierCounts(r?.byTier);
      const isp = isps.get(e.isp) ?? isps.set(e.isp, { id: e.isp, edges: [], up: 0, tiers: emptyTiers() }).get(e.isp)!;
      isp.edges.push(e.id);
      if (isEligible(h)) isp.up++;
      if (tiers) {
        addTiers(isp.tiers, tiers);
        addTiers(cluster, tiers);
      }
      return {
        id: e.id,
        isp: e.isp,
        url: e.url,
        state: h.state,
        eligible: isEligible(h),
        reason: h.reason,
        reasonKind: healthReasonKind(h.reason),
        since: h.since,
        lastPollAt: h.lastPollAt ?? null,
        /** Whether the numbers below come from this poll or an older one (the edge stopped answering). */
        stale: h.failures > 0 || h.lastReport === undefined,
        report: r
          ? {
              status: r.status ?? null,
              connections: r.connections ?? null,
              requestsPerSec: r.requestsPerSec ?? null,
              bytesPerSec: r.bytesPerSec ?? null,
              errorRatio: r.errorRatio ?? null,
              memory: r.memory ?? null,
              disk: r.disk ?? null,
              fill: r.fill ?? null,
              uptimeSec: r.uptimeSec ?? null,
            }
          : null,
        tiers: tiers ?? null,
        hitRatio: tiers ? ratios(tiers) : { requests: null, bytes: null },
      };
    });

    const byTitle = new Map<string, { title: string; plays: number; byIsp: Record<string, number> }>();
    for (const v of (await o.playStarts.get()).values) {
      const title = String(v.labels.title);
      const t = byTitle.get(title) ?? byTitle.set(title, { title, plays: 0, byIsp: {} }).get(title)!;
      t.plays += v.value;
      t.byIsp[String(v.labels.isp)] = (t.byIsp[String(v.labels.isp)] ?? 0) + v.value;
    }
    const topTitles = [...byTitle.values()].sort((a, b) => b.plays - a.plays || a.title.localeCompare(b.title)).slice(0, 10);

    return reply.header('cache-control', 'no-store').send({
      now,
      sampleMs,
      healthIntervalMs: config.steering.healthIntervalMs,
      cluster: { tiers: cluster, hitRatio: ratios(cluster), edges: edges.length, eligible: edges.filter((e) => e.eligible).length },
      isps: [...isps.values()].map((i) => ({ ...i, hitRatio: ratios(i.tiers) })),
      edges,
      origin: { ...origin, polledMono: undefined, url: config.origin.url },
      topTitles,
      history: history.columns(since),
      qoe: qoe.window(clock.monotonic(), config.edges),
    });
  });
}

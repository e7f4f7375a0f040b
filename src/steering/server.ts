import type { AddressInfo } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Agent, request } from 'undici';
import { Counter, type Registry } from 'prom-client';
import { adminTokenFromEnv, setOpenAdminPaths } from '../common/admin-auth.js';
import { type Clock, systemClock } from '../common/clock.js';
import { type ClusterConfig, type EdgeConfig, listenAddress } from '../common/config.js';
import { CORS_HEADERS, CORS_PREFLIGHT_HEADERS } from '../common/cors.js';
import { adminGuard, adminLimits, boundUrl, createApp, listenerServer, sendError } from '../common/http-app.js';
import type { ReloadOutcome } from '../common/reload.js';
import { SwappableAgent } from '../common/swappable-agent.js';
import { clusterClientTls, connectFor, loadServiceTls } from '../common/tls.js';
import { watchCertificateExpiry } from '../common/tls-metrics.js';
import { LoopMonitor } from '../common/loop-monitor.js';
import type { Logger } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import { PLAY_QUERY_PARAM, newPlayId, parsePlayId } from '../common/play-id.js';
import { contentTypeFor } from '../common/mime.js';
import { isValidTitle, parseObjectPath } from '../common/paths.js';
import type { Ring } from '../common/ring.js';
import { signQuery } from '../common/signing.js';
import { TRACE_QUERY_PARAM, childTraceparent, requestTraceparent } from '../common/trace.js';
import { CatalogSource, OriginUnavailableError } from './catalog.js';
import { renderMpd } from './dash-rewrite.js';
import { registerDashboard } from './dashboard-routes.js';
import { type EdgeHealth, isEligible, isLastResort } from './health.js';
import { type HealthFetcher, HealthPoller, undiciHealthFetcher } from './health-poller.js';
import { Holdings } from './holdings.js';
import { isMultivariant, rewriteMedia, rewriteMultivariant } from './hls-rewrite.js';
import { ManifestRewriteError } from './manifest-paths.js';
import { createLocatePath } from './locate-path.js';
import { EDGE_STATE_VALUE, createSteeringMetrics } from './metrics.js';
import { MpdCache, tokenPeriodSec } from './mpd-cache.js';
import { registerOpsRoutes } from './ops-routes.js';
import { PlayGate } from './play-gate.js';
import { PlayReporter, type PlayRecord } from './play-reporter.js';
import { playerRoutes } from './player-routes.js';
import { type LoadBounds, LoadTracker, computeBounds } from './bounded-load.js';
import { DecisionBudget } from './decision-budget.js';
import { ExplainInputError, explain } from './explain.js';
import { TitleLadders } from './ladder.js';
import { type HintOutcome, InfoLineBudget, applyPlayerHints, isDeferrable, isLowThroughput, overBudgetAnswer, parsePlayerHints, steeringTtlFor } from './player-hints.js';
import { type DecisionContext, type RankedEdge, decideForClient } from './ranking.js';
import { type SeenPlaysFetcher, SeenPlaysPoller, undiciSeenPlaysFetcher } from './seen-plays-poller.js';
import { degradedIsps, manifestCmsdDynamic } from './isp-duress.js';
import { buildSteeringManifest, steeringManifestUrl } from './steer-manifest.js';
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

/** The decision for one client and title. */
interface Decision {
  /** The client address decided on (socket or trusted X-Forwarded-For). */
  client: string;
  isp: string | undefined;
  edges: EdgeConfig[];
  /** The same edges with the rule that placed each (hints and explain read it). */
  ranked: RankedEdge<EdgeConfig>[];
  /** A stable number for the client address (ranking's spread, the decision budget's client key). */
  spreadKey: number;
}

export function createSteeringServer(opts: SteeringServerOptions): SteeringServer {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  const registry = opts.registry ?? createRegistry('steering');
  const adminToken = opts.adminToken ?? adminTokenFromEnv();
  const st = config.steering;

  // Everything a request is decided with, from one cluster file: swapped whole by reload.
  let topology = buildTopology(config);
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

  const playAgentTimeout = 5000;
  const plays = new PlayReporter({
    clock,
    logger,
    ...opts.plays,
    send: async (batch: PlayRecord[]) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (adminToken) headers.authorization = `Bearer ${adminToken}`;
      const res = await request(`${config.origin.adminUrl}/v1/plays`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ plays: batch }),
        dispatcher: originAdmin,
        headersTimeout: playAgentTimeout,
        bodyTimeout: playAgentTimeout,
      });
      await res.body.dump();
      if (res.statusCode >= 300) throw new Error(`origin answered HTTP ${res.statusCode} to POST /v1/plays`);
    },
  });

  const metrics = createSteeringMetrics(registry, () => ({ sent: plays.sent, buffered: plays.buffered, dropped: plays.dropped }));

  // A play counts once an edge served its media (and once per client and title per window):
  // manifests alone are free to fetch and would otherwise steer the fill plan.
  const playGate = new PlayGate({
    maxTracked: st.maxTrackedPlays,
    confirmWithinMs: st.playConfirmSeconds * 1000,
    dedupWindowMs: st.playDedupSeconds * 1000,
    newId: newPlayId,
  });
  const realSeenFetcher = opts.seenPlaysFetcher
    ? undefined
    : undiciSeenPlaysFetcher({ timeoutMs: opts.healthTimeoutMs ?? Math.min(1000, st.healthIntervalMs), adminToken, tls: clientTls });
  const seenPlays = new SeenPlaysPoller({
    edges: topology.edges,
    intervalMs: topology.healthIntervalMs,
    clock,
    logger,
    fetcher: opts.seenPlaysFetcher ?? realSeenFetcher!.fetcher,
    onSeen: (ids) => {
      const now = clock.monotonic();
      for (const id of ids) {
        const v = playGate.confirm(id, now);
        metrics.playConfirmations.inc({ outcome: v.outcome });
        if (v.outcome === 'counted') plays.record({ title: v.play.title, isp: v.play.isp, at: v.play.at });
      }
    },
  });
  for (const e of topology.edges) metrics.edgeState.set({ edge: e.id, isp: e.isp }, EDGE_STATE_VALUE.unknown);

  const realFetcher = opts.healthFetcher
    ? undefined
    : undiciHealthFetcher({ timeoutMs: opts.healthTimeoutMs ?? Math.min(1000, st.healthIntervalMs), adminToken, tls: clientTls });
  // Eligible edges are recomputed after each poll, not per request; so are the last resorts
  // (down for their error ratio alone), offered only when no edge at all is eligible.
  let eligible = new Set<string>();
  let lastResort = new Set<string>();
  const withMember = (set: Set<string>, id: string, member: boolean): Set<string> => {
    if (member === set.has(id)) return set;
    const next = new Set(set);
    if (member) next.add(id);
    else next.delete(id);
    return next;
  };
  const holdings = new Holdings();
  const health = new HealthPoller({
    edges: topology.edges,
    params: topology.healthParams,
    intervalMs: topology.healthIntervalMs,
    clock,
    logger,
    fetcher: opts.healthFetcher ?? realFetcher!.fetcher,
    onPoll: (edgeId, result, h) => {
      // The poller reports only edges of the current file (it drops what a reload removed).
      const edge = topology.edgesById.get(edgeId);
      if (edge === undefined) return;
      metrics.edgeState.set({ edge: edgeId, isp: edge.isp }, EDGE_STATE_VALUE[h.state]);
      metrics.pollLatency.observe({ edge: edgeId, outcome: result.ok ? 'ok' : 'error' }, result.latencyMs / 1000);
      if (result.ok) holdings.update(edgeId, Array.isArray(result.report.fill?.heldTitles) ? result.report.fill.heldTitles : undefined);
      eligible = withMember(eligible, edgeId, isEligible(h));
      lastResort = withMember(lastResort, edgeId, isLastResort(h));
      // The latest report is the load; a down edge's is forgotten (it comes back judged by new ones).
      if (h.state === 'down') loads.forget(edgeId);
      else if (result.ok) loads.observe(edgeId, result.report);
      rebalance();
    },
  });

  // Bounded loads: every edge's latest load against its ISP's mean, recomputed per poll (not
  // per request); and the ISPs with an edge down, whose players get the incident TTL.
  const loads = new LoadTracker();
  let bounds: LoadBounds = computeBounds([], loads.all(), eligible, st.balanceFactor);
  let ispsWithDownEdge = new Set<string>();
  let anyEdgeDown = false;
  /** ISPs whose players get `du` in the CMSD-Dynamic of their manifests (isp-duress.ts). */
  let ispsDegraded = new Set<string>();
  function rebalance(): void {
    const topo = topology;
    bounds = computeBounds(topo.edges, loads.all(), eligible, topo.config.steering.balanceFactor);
    const down = new Set<string>();
    for (const e of topo.edges) if (health.get(e.id)?.state === 'down') down.add(e.isp);
    ispsWithDownEdge = down;
    anyEdgeDown = down.size > 0;
    ispsDegraded = degradedIsps(topo.edges, (id) => health.get(id)?.state, eligible, bounds);
  }
  let budget = new DecisionBudget(st.decisionBudget.perSecond, st.decisionBudget.burst);
  const ladders = new TitleLadders(
    {
      manifestsOf: (title) => {
        const t = catalog.current()?.titles.get(title);
        return t ? { manifests: t.entry.manifests, digests: t.digests } : undefined;
      },
      manifestText: (title, file) => catalog.manifest(title, file),
    },
    () => clock.monotonic(),
  );
  const hintOutcomes = new Counter({
    name: 'reelcdn_steering_hints_total',
    help: 'Steering manifest reloads by what the player hints (_HLS_pathway, _DASH_pathway) came to: none, stay, moved-down, moved-over-bound, moved-low-throughput, moved-home, unknown-pathway',
    labelNames: ['outcome'],
    registers: [registry],
  });

  const holdersOf = (title: string) => (opts.holders ? opts.holders(title) : holdings.holders(title));
  /** What every decision reads now: the topology, health and loads of the last poll. */
  const decisionContext = (topo: Topology): DecisionContext<EdgeConfig> => ({
    ispTable: topo.ispTable,
    defaultIsp: topo.defaultIsp,
    trusted: topo.trusted,
    edgesById: topo.edgesById,
    ring: topo.ring,
    eligible,
    lastResort,
    bounds,
    holders: holdersOf,
  });
  const decide = (req: FastifyRequest, topo: Topology, title: string): Decision => {
    const d = decideForClient(decisionContext(topo), req.socket.remoteAddress, req.headers['x-forwarded-for'], title);
    return { client: d.client, isp: d.isp, edges: d.ranked.map((r) => r.edge), ranked: d.ranked, spreadKey: d.spreadKey };
  };

  const signedPath = (title: string, file: string) => `/c/${title}/${file}`;
  // Tokens depend on (path, whole second): memoised so a hot title signs once a second, not per request.
  // A reload with other keys replaces the map (a token of the old active key is never handed out after it).
  let tokenCache = new Map<string, { sec: number; query: string }>();
  const signedQueryFor = (topo: Topology, title: string, file: string) => {
    const path = signedPath(title, file);
    const sec = Math.floor(clock.now() / 1000);
    const cache = tokenCache;
    const hit = cache.get(path);
    if (hit && hit.sec === sec) return hit.query;
    const { keys, activeKey, ttlSeconds } = topo.signing;
    const query = signQuery(keys, activeKey, path, sec, ttlSeconds);
    if (cache.size >= 100_000) cache.clear();
    // A request that read the topology before a reload does not fill the new keys' cache.
    if (topo === topology) cache.set(path, { sec, query });
    return query;
  };
  const edgeFileUrl = (topo: Topology, edge: EdgeConfig, title: string, file: string) => `${edge.url}${signedPath(title, file)}?${signedQueryFor(topo, title, file)}`;

  /**
   * Whether the title (and file) is in the catalog; a miss refreshes the catalog (rate-limited)
   * once. With `arrived` (monotonic ms), 'unknown' only from a catalog fetched since then —
   * else 'not-sure' (a title just ingested is not declared gone from a view older than it).
   */
  const lookup = async (title: string, file?: string, arrived?: number): Promise<'found' | 'unknown' | 'not-sure' | 'no-catalog'> => {
    const has = (v = catalog.current()) => {
      const t = v?.titles.get(title);
      return t !== undefined && (file === undefined || t.files.has(file));
    };
    if (has()) return 'found';
    if (arrived === undefined) {
      const v = await catalog.refreshAfterMiss();
      if (!v) return 'no-catalog';
      return has(v) ? 'found' : 'unknown';
    }
    const { view, fresh } = await catalog.viewAfter(arrived);
    if (!view) return 'no-catalog';
    return has(view) ? 'found' : fresh ? 'unknown' : 'not-sure';
  };

  // ---------- public port ----------
  // A loop over its delay budget for a sustained spell sheds public requests (503 + Retry-After).
  const loop = LoopMonitor.fromConfig(config.http, logger);
  // A 200 of /v1/locate is answered in front of the framework, with the route's decision and
  // bytes (locate-path.ts); everything else, its errors included, goes to the routes below.
  const locateAnswered = new Map<string, { inc(): void }>();
  const locatePath = createLocatePath({
    decide: (peer, forwardedFor, title) => {
      const d = decideForClient(decisionContext(topology), peer, forwardedFor, title);
      return { isp: d.isp, edges: d.ranked.map((r) => r.edge) };
    },
    has: (title, file) => catalog.current()?.titles.get(title)?.files.has(file) === true,
    signedQuery: (title, file) => signedQueryFor(topology, title, file),
    answered: (isp) => {
      // The counter's child per ISP: labels hashed once, not on every answer.
      const key = isp ?? 'none';
      let c = locateAnswered.get(key);
      if (c === undefined) locateAnswered.set(key, (c = metrics.decisions.labels({ kind: 'locate', isp: key, outcome: 'ok' })));
      c.inc();
    },
    logger,
    logLevel: 'debug',
  });
  const publicApp = createApp({
    logger,
    requestLogLevel: 'debug',
    limits: config.http,
    overloaded: () => loop.overloaded,
    tls: tls.public,
    http2: true,
    front: opts.locatePath === false ? undefined : locatePath,
  });
  publicApp.addHook('onClose', async () => loop.stop());
  publicApp.addHook('onSend', async (_req, reply, payload) => {
    reply.headers(CORS_HEADERS);
    return payload;
  });
  publicApp.options('/*', async (_req, reply) => reply.code(204).headers(CORS_PREFLIGHT_HEADERS).send());

  const rawRest = (req: FastifyRequest, prefix: string) => {
    const path = req.url.split('?')[0]!;
    return path.slice(prefix.length);
  };
  type Kind = 'play' | 'steer' | 'locate';
  const count = (kind: Kind, isp: string | undefined, outcome: string) => metrics.decisions.inc({ kind, isp: isp ?? 'none', outcome });

  /** Common checks: path, catalog, healthy edges. Returns the decision or sends the error. */
  const prepare = async (req: FastifyRequest, reply: FastifyReply, topo: Topology, kind: Kind, title: string, file?: string): Promise<Decision | undefined> => {
    // A 410 is permanent for players: a steering manifest's title is declared gone only by a
    // catalog fetched after the request arrived.
    const found = await lookup(title, file, kind === 'steer' ? clock.monotonic() : undefined);
    if (found === 'not-sure') {
      count(kind, undefined, 'catalog_stale');
      sendError(reply, 503, `title "${title}" is not in the catalog steering holds, which cannot be refreshed now`, {
        'retry-after': String(Math.max(1, Math.ceil(catalog.missRefreshMs / 1000))),
      });
      return undefined;
    }
    if (found === 'no-catalog') {
      count(kind, undefined, 'origin_error');
      sendError(reply, 503, 'catalog unavailable: the origin cannot be reached', { 'retry-after': '5' });
      return undefined;
    }
    if (found === 'unknown') {
      // A steering manifest is asked for by players that got it with a play: its title has left
      // the catalog, and 410 tells them to stop reloading it (HLS and DASH-IF content steering).
      if (kind === 'steer') {
        count(kind, undefined, 'gone');
        sendError(reply, 410, `title "${title}" is no longer in the catalog`);
        return undefined;
      }
      count(kind, undefined, 'not_found');
      sendError(reply, 404, file === undefined ? `unknown title "${title}"` : `"${file}" is not a file of "${title}"`);
      return undefined;
    }
    const d = decide(req, topo, title);
    if (d.edges.length === 0) {
      count(kind, d.isp, 'no_edge');
      sendError(reply, 503, 'no healthy edge', { 'retry-after': topo.retryAfter });
      return undefined;
    }
    return d;
  };

  publicApp.get('/v1/play/*', async (req, reply) => {
    const topo = topology;
    const parsed = parseObjectPath(rawRest(req, '/v1/play/'));
    if (!parsed.ok) {
      count('play', undefined, 'bad_request');
      return sendError(reply, 400, parsed.reason);
    }
    const { title, file } = parsed;
    const isHls = file.endsWith('.m3u8');
    if (!isHls && !file.endsWith('.mpd')) {
      count('play', undefined, 'bad_request');
      return sendError(reply, 400, 'only .m3u8 and .mpd manifests are played through steering; use /v1/locate for media');
    }
    const d = await prepare(req, reply, topo, 'play', title, file);
    if (!d) return reply;
    let text: string;
    let digest: string;
    try {
      ({ text, digest } = await catalog.manifestVersion(title, file));
    } catch (err) {
      count('play', d.isp, 'origin_error');
      logger.warn({ title, file, err: (err as Error).message }, 'manifest unavailable');
      return sendError(reply, err instanceof OriginUnavailableError ? 502 : 500, 'manifest unavailable from the origin');
    }
    const q = req.query as Record<string, string | undefined>;
    const pathway = typeof q.pathway === 'string' ? q.pathway : undefined;
    const multivariant = isHls && isMultivariant(text);
    // A multivariant playlist, an MPD, or a media playlist asked for directly starts a play.
    const topLevel = !isHls || multivariant || pathway === undefined;
    // One trace per play: a child of the player's traceparent (header, or `tp` from our own
    // multivariant playlist), carried in every URL we emit because players drop headers.
    const traceparent = childTraceparent(requestTraceparent(req.headers, req.url));
    // The play id rides along with the trace: a new one per play start, else the one our
    // multivariant playlist put in this media playlist's URL.
    const playId = topLevel
      ? playGate.issue({ title, isp: d.isp ?? 'none', client: d.client, at: clock.now() }, clock.monotonic())
      : parsePlayId(q[PLAY_QUERY_PARAM]);
    const tp = `&${TRACE_QUERY_PARAM}=${traceparent}${playId ? `&${PLAY_QUERY_PARAM}=${playId}` : ''}`;
    const steeringUri = steeringManifestUrl(publicUrl, title);
    let body: string | Buffer;
    try {
      if (multivariant) {
        body = rewriteMultivariant(text, {
          manifest: file,
          pathways: d.edges.map((e) => e.id),
          steeringUri,
          mediaPlaylistUrl: (f, p) => `${publicUrl}/v1/play/${title}/${f}?pathway=${encodeURIComponent(p)}${tp}`,
          fileUrl: (f) => `${edgeFileUrl(topo, d.edges[0]!, title, f)}${tp}`,
        });
      } else if (isHls) {
        // The requested pathway while it is healthy, else the best edge now.
        const edge = (pathway !== undefined ? d.edges.find((e) => e.id === pathway) : undefined) ?? d.edges[0]!;
        body = rewriteMedia(text, { manifest: file, fileUrl: (f) => `${edgeFileUrl(topo, edge, title, f)}${tp}` });
      } else {
        const { keys, activeKey, ttlSeconds } = topo.signing;
        // Keyed by the signing tag too: a key whose secret a reload changed keeps its id.
        const keyId = `${activeKey}/${topo.signingTag}`;
        const signed = await mpdCache.signed({ title, file, digest }, keyId, Math.floor(clock.now() / 1000), async () => text, (f, sec) =>
          signQuery(keys, activeKey, signedPath(title, f), sec, ttlSeconds),
        );
        body = renderMpd(signed, { edges: d.edges, steeringUri, query: tp });
      }
    } catch (err) {
      if (!(err instanceof ManifestRewriteError)) throw err;
      count('play', d.isp, 'origin_error');
      logger.error({ title, file, err: err.message }, 'manifest cannot be rewritten');
      return sendError(reply, 502, `manifest cannot be served: ${err.message}`);
    }
    if (topLevel) {
      // Counted for the fill plan only once an edge serves this play's media (playGate).
      metrics.playStarts.inc({ title, isp: d.isp ?? 'none' });
      logger.info({ reqId: req.id, title, file, isp: d.isp ?? null, edge: d.edges[0]!.id, traceparent, playId }, 'play');
    }
    count('play', d.isp, 'ok');
    return reply
      .header('traceparent', traceparent)
      .header('content-type', contentTypeFor(file))
      .header('cache-control', 'no-store')
      .header('x-steering-edge', d.edges[0]!.id)
      .header('cmsd-dynamic', manifestCmsdDynamic(d.isp, ispsDegraded))
      .send(body);
  });

  publicApp.get('/v1/steer/:name', async (req, reply) => {
    const topo = topology;
    const name = (req.params as { name: string }).name;
    const title = name.endsWith('.json') ? name.slice(0, -'.json'.length) : '';
    if (!isValidTitle(title)) {
      count('steer', undefined, 'bad_request');
      return sendError(reply, 400, 'expected /v1/steer/{title}.json');
    }
    const d = await prepare(req, reply, topo, 'steer', title);
    if (!d) return reply;
    const hints = parsePlayerHints(req.query as Record<string, unknown>);
    // The ladder only as known now (read in the background, per manifest version): never waited for.
    const floor = hints?.reports.some((r) => r.throughputBps !== undefined) ? ladders.floorNow(title) : undefined;
    const steered = applyPlayerHints(d.ranked, hints, { isKnownEdge: (id) => topo.edgesById.has(id), isLow: (bps) => isLowThroughput(bps, floor) });
    hintOutcomes.inc({ outcome: steered.outcome });
    const priority = steered.ranked.map((r) => r.edge.id);
    if (hints) logHint(req, title, d, hints, steered.outcome, priority[0]!, floor);
    let ttlSeconds = steeringTtlFor(d.isp, ispsWithDownEdge, anyEdgeDown, topo.steeringTtlSeconds, topo.config.steering.incidentTtlSeconds);
    // Over the budget, reloads give way — after the hints are read: a player that must move
    // (pathway down, over the bound, far below the ladder) is answered at once, and what it
    // spends is what the others give way to. Keyed by the trusted client address.
    const verdict = budget.take(clock.monotonic(), d.spreadKey, !isDeferrable(steered.outcome));
    if (!verdict.ok) {
      if (overBudgetAnswer(hints?.protocol) === '429') {
        count('steer', d.isp, 'over_budget');
        return sendError(reply, 429, 'steering is over its decision budget: keep the current pathway', { 'retry-after': String(verdict.retryAfterSec) });
      }
      count('steer', d.isp, 'deferred');
      ttlSeconds += verdict.retryAfterSec;
    } else {
      count('steer', d.isp, 'ok');
    }
    return reply
      .header('cache-control', 'no-store')
      .header('cmsd-dynamic', manifestCmsdDynamic(d.isp, ispsDegraded))
      .send(buildSteeringManifest({ ttlSeconds, reloadUri: steeringManifestUrl(publicUrl, title), priority }));
  });

  // Moves reach the info log a few a second (hints are the client's to forge); the rest at debug.
  const movedLines = new InfoLineBudget(5);
  /** What a player told us and what came of it: info when it moves the player (sampled), else debug. */
  const logHint = (req: FastifyRequest, title: string, d: Decision, hints: NonNullable<ReturnType<typeof parsePlayerHints>>, outcome: HintOutcome, first: string, floor: number | undefined) => {
    const moved = outcome.startsWith('moved-');
    const line = {
      reqId: req.id,
      title,
      client: d.client,
      isp: d.isp ?? null,
      protocol: hints.protocol,
      pathway: hints.current,
      throughputBps: hints.reports.find((r) => r.pathway === hints.current)?.throughputBps ?? null,
      reports: hints.protocol === 'dash' ? hints.reports : undefined,
      malformed: hints.malformed.length > 0 ? hints.malformed : undefined,
      ladderFloorBps: floor ?? null,
      outcome,
      first,
    };
    const sample = moved ? movedLines.take(clock.monotonic()) : undefined;
    if (sample?.info) logger.info(sample.suppressed > 0 ? { ...line, suppressed: sample.suppressed } : line, 'player hint: moved');
    else logger.debug(line, 'player hint');
  };

  publicApp.get('/v1/locate/*', async (req, reply) => {
    const topo = topology;
    const parsed = parseObjectPath(rawRest(req, '/v1/locate/'));
    if (!parsed.ok) {
      count('locate', undefined, 'bad_request');
      return sendError(reply, 400, parsed.reason);
    }
    const { title, file } = parsed;
    const d = await prepare(req, reply, topo, 'locate', title, file);
    if (!d) return reply;
    count('locate', d.isp, 'ok');
    const traceparent = childTraceparent(requestTraceparent(req.headers, req.url));
    const query = `${signedQueryFor(topo, title, file)}&${TRACE_QUERY_PARAM}=${traceparent}`;
    const path = signedPath(title, file);
    return reply.header('cache-control', 'no-store').header('traceparent', traceparent).send({
      title,
      file,
      isp: d.isp ?? null,
      urls: d.edges.map((e) => ({ edge: e.id, url: `${e.url}${path}?${query}` })),
    });
  });

  // The demo player (/player/) and its title list (/v1/titles).
  publicApp.register(playerRoutes, { catalog });

  // ---------- admin port ----------
  const adminApp = createApp({ logger, requestLogLevel: 'debug', limits: adminLimits(config.http), tls: tls.admin, http2: true });
  const open = setOpenAdminPaths(new Set<string>(), config.admin);
  adminApp.addHook('onRequest', adminGuard(open, adminToken));
  watchCertificateExpiry(registry, { public: () => listenerServer(publicApp).tlsMaterial, admin: () => listenerServer(adminApp).tlsMaterial });
  registerDashboard({ app: adminApp, openPaths: open, config: () => topology.config, clock, logger, adminToken, dispatcher: originAdmin, health, registry, playStarts: metrics.playStarts });
  registerOpsRoutes({ app: adminApp, edges: () => topology.edges, adminToken, dispatcher: originAdmin, clock, logger, health });
  const startedAt = clock.monotonic(); // uptime is an interval
  adminApp.get('/health', async () => {
    const snap = health.snapshot();
    let up = 0;
    for (const h of snap.values()) if (isEligible(h)) up++;
    return {
      status: 'ok',
      id: 'steering',
      uptimeSec: Math.round((clock.monotonic() - startedAt) / 1000),
      edges: { total: snap.size, eligible: up },
      catalogTitles: catalog.current()?.titles.size ?? null,
      plays: {
        sent: plays.sent,
        buffered: plays.buffered,
        dropped: plays.dropped,
        // Play starts waiting for segment traffic, and what edges' confirmations came to.
        pending: playGate.pendingCount,
        ...playGate.totals,
        evicted: playGate.evicted,
      },
    };
  });
  adminApp.get('/metrics', async (_req, reply) => reply.header('content-type', registry.contentType).send(await registry.metrics()));
  adminApp.get('/v1/edges', async () => ({
    edges: topology.edges.map((e) => {
      const h = health.get(e.id)!;
      return {
        id: e.id,
        isp: e.isp,
        url: e.url,
        state: h.state,
        eligible: isEligible(h),
        reason: h.reason,
        since: new Date(h.since).toISOString(),
        failures: h.failures,
        successes: h.successes,
        lastPollAt: h.lastPollAt === undefined ? null : new Date(h.lastPollAt).toISOString(),
        lastLatencyMs: h.lastLatencyMs ?? null,
        // Smoothed load against its ISP's bound (bounded loads), as the last poll left it.
        load: bounds.byEdge.get(e.id) ?? null,
        health: h.lastReport ?? null,
      };
    }),
  }));

  // Why a client goes where it goes: the same decision the public routes make, spelled out.
  adminApp.get('/v1/explain', async (req, reply) => {
    const topo = topology;
    const q = req.query as Record<string, unknown>;
    const ip = typeof q.ip === 'string' ? q.ip : undefined;
    const title = typeof q.title === 'string' ? q.title : undefined;
    const xff = typeof q.xff === 'string' ? q.xff : undefined;
    if (ip === undefined || ip === '') return sendError(reply, 400, 'ip: missing (GET /v1/explain?ip=ADDRESS&title=TITLE[&xff=X-Forwarded-For])');
    if (title === undefined || !isValidTitle(title)) return sendError(reply, 400, `title: ${title === undefined ? 'missing' : `"${title.slice(0, 64)}" is not a title id`}`);
    let explanation;
    try {
      explanation = explain({
        ip,
        forwardedFor: xff,
        title,
        ctx: decisionContext(topo),
        isps: topo.config.isps,
        trustedProxies: topo.config.steering.trustedProxies,
        edges: topo.edges,
        health: health.snapshot(),
        balanceFactor: topo.config.steering.balanceFactor,
      });
    } catch (err) {
      if (err instanceof ExplainInputError) return sendError(reply, 400, err.message);
      throw err;
    }
    const found = await lookup(title);
    if (found === 'no-catalog') return sendError(reply, 503, 'catalog unavailable: the origin cannot be reached', { 'retry-after': '5' });
    if (found === 'unknown') return sendError(reply, 404, `title: "${title}" is not in the catalog`);
    return reply.header('cache-control', 'no-store').send(explanation);
  });

  // Reload (steering-reload.ts): prepared — everything that can refuse the file — then applied.
  const reloadParts = {
    logger,
    followLogLevel: opts.followLogLevel === true,
    publicApp,
    adminApp,
    openPaths: open,
    callers: [originAdmin, realFetcher, realSeenFetcher, catalog],
    health,
    seenPlays,
    metrics,
    holdings,
    loads,
    catalog,
    mpdCache,
    swapDecisionState(p: { topology: Topology; tls: typeof tls; clientTls: typeof clientTls; config: ClusterConfig }, prev: Topology) {
      topology = p.topology;
      tls = p.tls;
      clientTls = p.clientTls;
      eligible = health.eligibleIds();
      lastResort = lastResortIds(health.snapshot());
      rebalance();
      const b = p.config.steering.decisionBudget;
      if (b.perSecond !== prev.config.steering.decisionBudget.perSecond || b.burst !== prev.config.steering.decisionBudget.burst) budget = new DecisionBudget(b.perSecond, b.burst);
      // A token of the old keys is never handed out after the swap.
      if (p.topology.signingTag !== prev.signingTag) tokenCache = new Map();
    },
  };
  const reload = async (next: ClusterConfig): Promise<ReloadOutcome> => {
    const prev = topology;
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
      return topology.ring;
    },
    plays,
    catalog,
    topology: () => topology,
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
      logger.info({ ...urls, edges: topology.edges.length, eligible: eligible.size }, 'steering listening');
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

function lastResortIds(snapshot: ReadonlyMap<string, EdgeHealth>): Set<string> {
  const out = new Set<string>();
  for (const [id, h] of snapshot) if (isLastResort(h)) out.add(id);
  return out;
}

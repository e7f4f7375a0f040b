import { Readable } from 'node:stream';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { systemClock, type Clock } from '../common/clock.js';
import type { ClusterConfig, EdgeConfig } from '../common/config.js';
import { listenAddress } from '../common/config.js';
import { CORS_HEADERS, CORS_PREFLIGHT_HEADERS } from '../common/cors.js';
import { adminTokenFromEnv } from '../common/admin-auth.js';
import { adminGuard, adminLimits, createApp, sendError } from '../common/http-app.js';
import { LoopMonitor } from '../common/loop-monitor.js';
import { createLogger, type Logger } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import { parseObjectPath } from '../common/paths.js';
import { type BodyPart, planResponse, requestView } from '../common/response-plan.js';
import { verifyToken } from '../common/signing.js';
import { requestTraceparent } from '../common/trace.js';
import { VERSION } from '../common/version.js';
import { DiskTier } from './disk-tier.js';
import { type CachedMeta, EdgeCache, type PrimedFetch, RepresentationChanged, type Tier } from './edge-cache.js';
import { EdgeMetrics } from './edge-metrics.js';
import { FillAgent, type FillProgress } from './fill-agent.js';
import { registerSeenPlays } from './play-seen-routes.js';
import { TrafficStats } from './traffic-stats.js';
import { DEFAULT_TIMEOUTS, Upstream, UpstreamError, type UpstreamTarget, type UpstreamTimeouts } from './upstream.js';

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
}

export type EdgeStatus = 'ok' | 'draining' | 'overloaded';

const ONLY_IF_CACHED = /\bonly-if-cached\b/i;

/** Largest answer to an only-if-cached request (peer fill asks one slice at a time). */
const ONLY_IF_CACHED_MAX_BYTES = 64 * 1024 * 1024;

export interface EdgeServer {
  publicApp: FastifyInstance;
  adminApp: FastifyInstance;
  cache: EdgeCache;
  disk: DiskTier;
  metrics: EdgeMetrics;
  fill: FillAgent;
  /** Opens the disk tier and listens; resolves with the bound URLs. */
  start(): Promise<{ publicUrl: string; adminUrl: string }>;
  /** Drains: stops accepting, finishes in-flight answers, closes upstream connections. */
  close(): Promise<void>;
  health(): EdgeHealth;
}

export interface EdgeHealth {
  status: EdgeStatus;
  id: string;
  isp: string;
  version: string;
  uptimeSec: number;
  connections: number;
  requestsPerSec: number;
  bytesPerSec: number;
  errorRatio: number;
  /** Answers over errorRatio's window (10 s): steering ignores the ratio below a minimum volume. */
  windowRequests: number;
  eventLoopDelayMs: number;
  memory: { usedBytes: number; capacityBytes: number };
  disk: { usedBytes: number; capacityBytes: number; pinnedBytes: number };
  hitRatio: { requests: number; bytes: number };
  byTier: Record<Tier, { requests: number; bytes: number }>;
  upstream: { url: string; inflightSlices: number };
  fill: Pick<FillProgress, 'state' | 'windowOpen' | 'nextWindowStart' | 'heldTitles' | 'manifestVersion'> & {
    filesDone: number;
    filesTotal: number;
    bytesDone: number;
    bytesTotal: number;
  };
}

function upstreamTarget(config: ClusterConfig, edge: EdgeConfig, override?: string): UpstreamTarget {
  if (override) return { kind: 'origin', url: override };
  if (edge.parent) {
    const parent = config.edges.find((e) => e.id === edge.parent)!;
    return { kind: 'parent', url: parent.url, signing: config.signing, fallback: { originUrl: config.origin.url, breaker: edge.parentBreaker } };
  }
  return { kind: 'origin', url: config.origin.url };
}

/** The first byte a Range header asks for, to fetch that slice first on a cold object. */
function firstOffset(range: string | undefined): number | undefined {
  const m = range ? /^\s*bytes\s*=\s*(\d{1,15})-/i.exec(range) : null;
  return m ? Number(m[1]) : undefined;
}

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

  // Metrics sample the tiers lazily, so the cache may be created after them.
  let cache!: EdgeCache;
  const disk = new DiskTier({
    dir: edge.dataDir,
    capacityBytes: edge.diskBytes,
    sliceBytes: edge.sliceBytes,
    logger,
    onEvict: (bytes) => metrics.cacheEvents().evicted?.('disk', bytes),
  });
  const metrics = new EdgeMetrics(registry, () => {
    const m = cache.memoryStats();
    const d = disk.stats();
    return { memory: m.usedBytes, memoryCap: m.capacityBytes, disk: d.usedBytes, diskCap: d.capacityBytes, connections };
  });
  const target = upstreamTarget(config, edge, opts.upstreamUrl);
  const upstream = new Upstream(target, clock, opts.upstreamTimeouts ?? DEFAULT_TIMEOUTS, undefined, {
    monotonicNow: () => clock.monotonic(),
    logger,
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

  const publicApp = createApp({ logger, frameworkErrorHeaders: CORS_HEADERS, limits: config.http, overloaded: () => loop.overloaded });
  publicApp.server.on('connection', (socket) => {
    connections++;
    socket.once('close', () => connections--);
  });

  publicApp.addHook('onResponse', async (req, reply) => {
    if (!req.url.startsWith('/c/')) return;
    const tier = reply.getHeader('x-cache') as Tier | undefined;
    const bytes = req.method === 'HEAD' ? 0 : Number(reply.getHeader('content-length') ?? 0);
    // An only-if-cached miss answers 504 as RFC 9111 asks: no failure of this node.
    const onlyIfCachedMiss = reply.statusCode === 504 && ONLY_IF_CACHED.test(String(req.headers['cache-control'] ?? ''));
    stats.record(reply.statusCode, bytes, tier, onlyIfCachedMiss);
    const s = seriesFor(tier ?? 'none', reply.statusCode);
    s.requests.inc();
    if (bytes > 0) s.bytes.inc(bytes);
    s.duration.observe(reply.elapsedTime / 1000);
  });
  // Labelled children resolved once per (tier, status), not hashed from label objects per request.
  type Series = {
    requests: ReturnType<EdgeMetrics['requests']['labels']>;
    bytes: ReturnType<EdgeMetrics['responseBytes']['labels']>;
    duration: ReturnType<EdgeMetrics['duration']['labels']>;
  };
  const series = new Map<string, Series>();
  function seriesFor(tier: string, status: number) {
    const k = `${tier}|${status}`;
    let s = series.get(k);
    if (!s) {
      s = {
        requests: metrics.requests.labels(tier, String(status)),
        bytes: metrics.responseBytes.labels(tier),
        duration: metrics.duration.labels(tier),
      };
      series.set(k, s);
    }
    return s;
  }

  publicApp.options('/c/*', async (_req, reply) => reply.code(204).headers(CORS_PREFLIGHT_HEADERS).send());
  const handler = (req: FastifyRequest, reply: FastifyReply) => serveObject(req, reply);
  // HEAD is registered before GET so fastify does not add its own HEAD route, whose onSend
  // overwrites Content-Length with 0 when the body is empty (ours always is for HEAD).
  publicApp.head('/c/*', handler);
  publicApp.get('/c/*', handler);

  async function serveObject(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    reply.headers(CORS_HEADERS);
    const q = req.url.indexOf('?');
    const path = q < 0 ? req.url : req.url.slice(0, q);
    const parsed = parseObjectPath(path.slice('/c/'.length));
    if (!parsed.ok) return sendError(reply, 400, parsed.reason);

    if (config.signing.required) {
      const params = new URLSearchParams(q < 0 ? '' : req.url.slice(q + 1));
      const verdict = verifyToken(config.signing.keys, path, { e: params.get('e'), k: params.get('k'), t: params.get('t') }, clock.now() / 1000);
      if (!verdict.ok) return sendError(reply, 403, `forbidden: ${verdict.reason}`);
    }

    // The header, or the `tp` query parameter steering puts in the URLs it signs (players drop headers).
    const traceparent = requestTraceparent(req.headers, req.url);
    if (traceparent) reply.header('traceparent', traceparent);
    // RFC 9111 §5.2.1.7: answer from the cache or 504 — peers filling from us never make us go upstream.
    if (ONLY_IF_CACHED.test(String(req.headers['cache-control'] ?? ''))) {
      return serveOnlyIfCached(req, reply, parsed.title, parsed.file);
    }
    return answerObject(req, reply, parsed.title, parsed.file, traceparent, true);
  }

  /**
   * Resolves the object's representation and answers from it. The tier (X-Cache) is settled
   * before headers go out: cached bytes are read first (a slice failing its checksum makes the
   * answer a MISS), and a miss waits for upstream's answer head, so a dead upstream is a clean
   * 502/504 and an object that changed is resolved again rather than promised in its old version.
   */
  async function answerObject(
    req: FastifyRequest,
    reply: FastifyReply,
    title: string,
    file: string,
    traceparent: string | undefined,
    mayRetry: boolean,
  ): Promise<FastifyReply> {
    let resolved;
    try {
      resolved = await cache.resolve(title, file, firstOffset(req.headers.range), traceparent);
    } catch (err) {
      return sendUpstreamError(reply, err);
    }
    if (resolved.kind === 'not-found') return sendError(reply, 404, 'not found');

    const meta = resolved.meta;
    const plan = planResponse(requestView(req.method, req.headers), meta);
    const ranges = plan.body.flatMap((p) => (p.kind === 'bytes' ? [p.range] : []));
    let primed = resolved.primed;
    // No body bytes needed: answered from what we know of the object.
    let tier: Tier = ranges.length === 0 ? 'HIT-MEM' : primed && !primed.joined ? 'MISS' : cache.tierFor(meta, ranges);
    let pieces: Buffer[] | undefined;
    if (plan.body.length === 1 && (tier === 'HIT-MEM' || tier === 'HIT-DISK')) {
      // Hot path: one range inside one memory slice goes out without a stream.
      const buf = tier === 'HIT-MEM' ? cache.memorySlice(meta, ranges[0]!) : undefined;
      // Else cached single range: whole buffers, no generator-driven stream.
      pieces = buf ? [buf] : await cache.cachedPieces(meta, ranges[0]!);
      // A slice that failed its checksum was dropped: this answer goes upstream after all.
      if (!pieces) tier = cache.tierFor(meta, ranges);
    }
    if (!pieces && tier === 'MISS' && !primed) {
      try {
        primed = await cache.prime(meta, ranges[0]!, traceparent);
      } catch (err) {
        if (err instanceof RepresentationChanged && mayRetry) return answerObject(req, reply, title, file, traceparent, false);
        return sendUpstreamError(reply, err);
      }
    }
    reply.code(plan.status).headers(plan.headers).header('x-cache', tier);
    if (resolved.stale) reply.header('warning', '110 - "Response is Stale"');
    if (plan.body.length === 0) return reply.send();
    if (pieces) return reply.send(pieces.length === 1 ? pieces[0] : bufferStream(pieces));
    return reply.send(Readable.from(bodyOf(meta, plan.body, primed, traceparent), { objectMode: false, highWaterMark: 1 }));
  }

  function sendUpstreamError(reply: FastifyReply, err: unknown): FastifyReply {
    if (err instanceof RepresentationChanged) return sendError(reply, 502, err.message);
    const status = err instanceof UpstreamError ? err.status : 502;
    return sendError(reply, status, `bad gateway: ${(err as Error).message}`);
  }

  /**
   * Answers from the memory and disk tiers alone. The bytes are read (and their checksums
   * checked) before any header goes out, so a slice that turns out damaged is a clean 504.
   */
  async function serveOnlyIfCached(req: FastifyRequest, reply: FastifyReply, title: string, file: string): Promise<FastifyReply> {
    const notCached = () => sendError(reply, 504, 'not cached (only-if-cached)');
    const meta = cache.peek(title, file);
    if (!meta) return notCached();
    const plan = planResponse(requestView(req.method, req.headers), meta);
    const ranges = plan.body.flatMap((p) => (p.kind === 'bytes' ? [p.range] : []));
    const tier = ranges.length > 0 ? cache.tierFor(meta, ranges) : 'HIT-MEM';
    if (tier === 'MISS' || tier === 'HIT-FILL') return notCached();
    // Held in memory whole before answering: bounded, peers ask one slice at a time.
    if (ranges.reduce((n, r) => n + r.end - r.start, 0) > ONLY_IF_CACHED_MAX_BYTES) {
      return sendError(reply, 504, `only-if-cached answers at most ${ONLY_IF_CACHED_MAX_BYTES} bytes; ask for a smaller range`);
    }
    const body: Buffer[] = [];
    for (const part of plan.body) {
      if (part.kind === 'literal') body.push(part.data);
      else {
        const pieces = await cache.cachedPieces(meta, part.range, Infinity);
        if (!pieces) return notCached();
        body.push(...pieces);
      }
    }
    reply.code(plan.status).headers(plan.headers).header('x-cache', tier);
    return reply.send(body.length === 0 ? undefined : body.length === 1 ? body[0] : bufferStream(body));
  }

  /** A readable of buffers already in hand: pushed at once, no async iteration per piece. */
  function bufferStream(pieces: Buffer[]): Readable {
    const s = new Readable({ read() {} });
    for (const p of pieces) s.push(p);
    s.push(null);
    return s;
  }

  async function* bodyOf(meta: CachedMeta, body: BodyPart[], primed: PrimedFetch | undefined, traceparent?: string) {
    for (const part of body) {
      if (part.kind === 'literal') yield part.data;
      else yield* cache.read(meta, part.range, primed, traceparent);
    }
  }

  // ---- admin port ----
  const adminApp = createApp({ logger, requestLogLevel: 'debug', limits: adminLimits(config.http) });
  const open = new Set<string>();
  if (config.admin.openHealth) open.add('/health');
  if (config.admin.openMetrics) open.add('/metrics');
  adminApp.addHook('onRequest', adminGuard(open, opts.adminToken));
  // Play ids of the media served, read by steering, which counts a play only once its segments flow.
  registerSeenPlays(publicApp, adminApp, opts.seenPlaysCapacity);

  function status(): EdgeStatus {
    if (draining) return 'draining';
    if (loop.overloaded || connections > config.steering.thresholds.maxConnections) return 'overloaded';
    return 'ok';
  }

  function health(): EdgeHealth {
    const t = stats.snapshot();
    const m = cache.memoryStats();
    const d = disk.stats();
    const h: EdgeHealth = {
      status: status(),
      id: edge.id,
      isp: edge.isp,
      version: VERSION,
      uptimeSec: Math.round((clock.monotonic() - startedAt) / 1000),
      connections,
      requestsPerSec: t.requestsPerSec,
      bytesPerSec: t.bytesPerSec,
      errorRatio: t.errorRatio,
      windowRequests: t.windowRequests,
      eventLoopDelayMs: Math.round((loopDelay.percentile(99) / 1e6) * 10) / 10,
      memory: { usedBytes: m.usedBytes, capacityBytes: m.capacityBytes },
      disk: { usedBytes: d.usedBytes, capacityBytes: d.capacityBytes, pinnedBytes: d.pinnedBytes },
      hitRatio: t.hitRatio,
      byTier: t.byTier,
      upstream: { url: upstream.target.url, inflightSlices: cache.inflight },
      fill: (() => {
        const p = fill.progress();
        return {
          state: p.state,
          windowOpen: p.windowOpen,
          nextWindowStart: p.nextWindowStart,
          heldTitles: p.heldTitles,
          manifestVersion: p.manifestVersion,
          filesDone: p.files.done,
          filesTotal: p.files.total,
          bytesDone: p.bytes.done,
          bytesTotal: p.bytes.total,
        };
      })(),
    };
    loopDelay.reset();
    return h;
  }

  adminApp.get('/health', async (_req, reply) => {
    const h = health();
    return reply.code(h.status === 'draining' ? 503 : 200).send(h);
  });
  adminApp.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  adminApp.post('/purge', async (req, reply) => {
    const body = (req.body ?? {}) as { title?: unknown; file?: unknown };
    if (typeof body.title !== 'string' || body.title === '') return sendError(reply, 400, 'body must be JSON {"title": "...", "file"?: "..."}');
    if (body.file !== undefined && typeof body.file !== 'string') return sendError(reply, 400, 'file must be a string');
    const check = parseObjectPath(`${body.title}/${body.file ?? 'x'}`);
    if (!check.ok) return sendError(reply, 400, check.reason);
    const result = cache.purge(body.title, body.file as string | undefined);
    logger.info({ title: body.title, file: body.file, ...result }, 'purged');
    return reply.send({ purged: result.objects, bytes: result.bytes });
  });

  adminApp.get('/fill', async (_req, reply) => reply.send(fill.progress()));
  adminApp.post('/fill', async (req, reply) => {
    const wait = (req.query as { wait?: string }).wait === '1';
    const run = fill.runOnce({ force: true });
    if (wait) {
      try {
        return reply.send(await run);
      } catch (err) {
        return sendError(reply, 502, `fill failed: ${(err as Error).message}`);
      }
    }
    run.catch((err) => logger.error({ err: (err as Error).message }, 'fill pass failed'));
    return reply.code(202).send(fill.progress());
  });

  return {
    publicApp,
    adminApp,
    cache,
    disk,
    metrics,
    fill,
    health,
    async start() {
      await disk.open();
      cache.loadFromDisk();
      await fill.open();
      if (opts.autoFill ?? true) fill.start();
      const pub = opts.listen?.public ?? listenAddress(edge.url);
      const adm = opts.listen?.admin ?? listenAddress(edge.adminUrl);
      const publicUrl = await publicApp.listen({ host: pub.host, port: pub.port });
      const adminUrl = await adminApp.listen({ host: adm.host, port: adm.port });
      logger.info({ publicUrl, adminUrl, upstream: upstream.target.url }, 'edge listening');
      return { publicUrl, adminUrl };
    },
    async close() {
      draining = true;
      clearInterval(fillLoopReset);
      fillLoopDelay.disable();
      await fill.stop();
      // server.close() closes the connections idle at that moment only; a keep-alive
      // connection whose answer finishes later would hold the drain for keepAliveTimeout.
      const sweep = setInterval(() => publicApp.server.closeIdleConnections(), 50);
      try {
        await publicApp.close();
      } finally {
        clearInterval(sweep);
      }
      await upstream.close();
      await adminApp.close();
      loopDelay.disable();
      loop.stop();
    },
  };
}

import type { Readable } from 'node:stream';
import { Pool, errors as undiciErrors } from 'undici';
import type { Clock } from '../common/clock.js';
import type { Logger } from '../common/logger.js';
import { type ClientTls, connectFor } from '../common/tls.js';
import { signedOriginPath } from '../common/origin-signing.js';
import { signQuery } from '../common/signing.js';
import { EDGE_HOP_HEADER } from '../common/serve-report-wire.js';
import { type BreakerSettings, type BreakerState, type BreakerTransition, CircuitBreaker } from './circuit-breaker.js';
import { type LaneTicket, LaneTimeout, PrefetchLane, laneFor } from './prefetch-lane.js';

/** The cluster's keys: every upstream request is signed with the active one. */
export interface UpstreamSigning {
  keys: Record<string, string>;
  activeKey: string;
  ttlSeconds: number;
}

/**
 * Where misses go: the origin (`/o/…`, signed: the origin serves edges only) or a parent edge
 * (`/c/…`, signed like a client).
 */
export interface UpstreamTarget {
  kind: 'origin' | 'parent';
  url: string;
  /** The cluster's keys, to sign each request (a parent's as steering would, the origin's briefly). */
  signing: UpstreamSigning;
  /**
   * For a parent: the origin, asked (signed, `/o/…`) when the parent fails a request and
   * while the breaker keeps the parent bypassed. Without it a dead parent fails every miss.
   */
  fallback?: { originUrl: string; breaker: BreakerSettings };
}

export interface UpstreamOptions {
  /** Monotonic ms for the breaker's cool-down (default performance.now). */
  monotonicNow?: () => number;
  logger?: Logger;
  /** Told of each breaker transition and of each request sent to the origin instead of the parent. */
  events?: { breakerTransition?(t: BreakerTransition): void; fallback?(): void };
  /** Trust and identity for an https:// origin or parent (clusterClientTls). */
  tls?: ClientTls;
}

export interface UpstreamTimeouts {
  connectMs: number;
  headersMs: number;
  bodyMs: number;
}

export const DEFAULT_TIMEOUTS: UpstreamTimeouts = { connectMs: 2_000, headersMs: 5_000, bodyMs: 10_000 };

export interface UpstreamRequest {
  title: string;
  file: string;
  /** Half-open byte range wanted. */
  start: number;
  end: number;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  traceparent?: string;
  /** Sent for a prefetch (no client waits on it): it goes out only when clients leave room (prefetch-lane.ts). */
  prefetch?: LaneTicket;
}

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | undefined>;
  body: AsyncIterable<Buffer>;
  /** Discards the rest of the body. */
  dump(): Promise<void>;
}

/** Why an upstream fetch failed, spoken as the status the client gets. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly status: 502 | 504,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }

  /** What fastify's error handler reads: an upstream failure that escapes is never a 500. */
  get statusCode(): number {
    return this.status;
  }

  /** Its message is for the client: it says what failed upstream, nothing of ours. */
  readonly expose = true;
}

/** One HTTP server misses can go to, with its own keep-alive pool. */
interface Route {
  kind: 'origin' | 'parent';
  base: URL;
  pool: Pool;
}

/**
 * Where misses go, with one keep-alive undici Pool per server; timeouts turn into 502/504.
 * With a parent and a fallback, a parent that fails a request (connect error, timeout, 5xx)
 * has that request retried at the origin, and a circuit breaker sends misses straight to the
 * origin while the parent looks down — the cache above never knows which one answered.
 */
export class Upstream {
  private readonly primary: Route;
  private readonly origin?: Route;
  private readonly breaker?: CircuitBreaker;
  private signing: UpstreamSigning;
  /** Who holds the pool's connections: prefetches only take what clients leave (prefetch-lane.ts). */
  readonly lane: PrefetchLane;

  constructor(
    readonly target: UpstreamTarget,
    private readonly clock: Clock,
    private readonly timeouts: UpstreamTimeouts = DEFAULT_TIMEOUTS,
    private readonly connections = 32,
    private readonly opts: UpstreamOptions = {},
  ) {
    const route = (kind: Route['kind'], url: string): Route => {
      const base = new URL(url);
      return { kind, base, pool: this.newPool(base, opts.tls) };
    };
    this.signing = target.signing;
    this.lane = new PrefetchLane(laneFor(connections, timeouts.headersMs));
    this.primary = route(target.kind, target.url);
    if (target.kind === 'parent' && target.fallback) {
      this.origin = route('origin', target.fallback.originUrl);
      this.breaker = new CircuitBreaker(target.fallback.breaker, opts.monotonicNow ?? (() => performance.now()), (t) => {
        const line = { parent: target.url, from: t.from, to: t.to, reason: t.reason };
        if (t.to === 'closed') this.opts.logger?.info(line, 'parent breaker closed: misses go to the parent again');
        else if (t.to === 'open') this.opts.logger?.warn(line, 'parent breaker open: misses go to the origin');
        else this.opts.logger?.info(line, 'parent breaker half-open: probing the parent');
        this.opts.events?.breakerTransition?.(t);
      });
    }
  }

  /** The parent breaker's state; undefined when misses go to the origin alone. */
  get breakerState(): BreakerState | undefined {
    return this.breaker?.state;
  }

  private newPool(base: URL, tls: ClientTls | undefined): Pool {
    return new Pool(base.origin, {
      connections: this.connections,
      keepAliveTimeout: 30_000,
      headersTimeout: this.timeouts.headersMs,
      bodyTimeout: this.timeouts.bodyMs,
      connect: connectFor(tls, this.timeouts.connectMs),
    });
  }

  /**
   * New connections trust and show these (reload: a re-issued certificate, another CA file);
   * requests under way finish on the pools they started on, which then close.
   */
  setTls(tls: ClientTls | undefined): void {
    for (const route of [this.primary, this.origin]) {
      if (route === undefined) continue;
      const old = route.pool;
      route.pool = this.newPool(route.base, tls);
      void old.close().catch(() => {});
    }
  }

  /** Signs the next requests with these keys (reload); requests already sent keep their token. */
  setSigning(signing: UpstreamSigning): void {
    this.signing = signing;
  }

  pathFor(title: string, file: string): string {
    return this.pathOn(this.primary, title, file);
  }

  private pathOn(route: Route, title: string, file: string): string {
    const basePath = route.base.pathname.replace(/\/+$/, '');
    const s = this.signing;
    const nowSec = this.clock.now() / 1000;
    if (route.kind === 'origin') return `${basePath}${signedOriginPath(s, title, file, nowSec)}`;
    const path = `${basePath}/c/${title}/${file}`;
    return `${path}?${signQuery(s.keys, s.activeKey, path, nowSec, s.ttlSeconds)}`;
  }

  /**
   * Sends `req` (to the parent, else or meanwhile the origin). Each request holds its place in
   * the lane until its response's body is over (read to its end, dumped or destroyed).
   */
  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    let release: () => void;
    try {
      release = req.prefetch ? await this.lane.prefetch(req.prefetch) : this.lane.client();
    } catch (err) {
      if (err instanceof LaneTimeout) throw new UpstreamError(err.message, 504);
      throw err;
    }
    let res: UpstreamResponse;
    try {
      res = await this.route(req);
    } catch (err) {
      release();
      throw err;
    }
    whenBodyOver(res.body, release);
    return res;
  }

  private async route(req: UpstreamRequest): Promise<UpstreamResponse> {
    if (!this.breaker || !this.origin) return this.send(this.primary, req);
    const permit = this.breaker.admit();
    if (!permit) return this.viaOrigin(req);
    let res: UpstreamResponse;
    try {
      res = await this.send(this.primary, req);
    } catch (err) {
      this.breaker.failed(permit);
      this.opts.logger?.debug({ parent: this.target.url, err: (err as Error).message }, 'parent failed a request: asking the origin');
      return this.viaOrigin(req);
    }
    if (res.status >= 500) {
      // An overloaded or broken parent is as good as a dead one for this miss.
      this.breaker.failed(permit);
      await res.dump();
      return this.viaOrigin(req);
    }
    this.breaker.succeeded(permit);
    return res;
  }

  private viaOrigin(req: UpstreamRequest): Promise<UpstreamResponse> {
    this.opts.events?.fallback?.();
    return this.send(this.origin!, req);
  }

  private async send(route: Route, req: UpstreamRequest): Promise<UpstreamResponse> {
    const headers: Record<string, string> = { range: `bytes=${req.start}-${req.end - 1}` };
    if (req.ifNoneMatch) headers['if-none-match'] = req.ifNoneMatch;
    if (req.ifModifiedSince) headers['if-modified-since'] = req.ifModifiedSince;
    if (req.traceparent) headers.traceparent = req.traceparent;
    // A parent's serve report leaves out its children's misses: their clients were counted below.
    if (route.kind === 'parent') headers[EDGE_HOP_HEADER] = '1';
    try {
      const res = await route.pool.request({ method: 'GET', path: this.pathOn(route, req.title, req.file), headers });
      const flat: Record<string, string | undefined> = {};
      for (const [k, v] of Object.entries(res.headers)) flat[k] = Array.isArray(v) ? v.join(', ') : v;
      return {
        status: res.statusCode,
        headers: flat,
        body: res.body as AsyncIterable<Buffer>,
        dump: async () => {
          await res.body.dump().catch(() => {});
        },
      };
    } catch (err) {
      throw toUpstreamError(err);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.primary.pool.close().catch(() => {}), this.origin?.pool.close().catch(() => {})]);
  }
}

/** Calls `done` once `body` (undici's Readable) is over: ended and closed, dumped, or destroyed. */
function whenBodyOver(body: AsyncIterable<Buffer>, done: () => void): void {
  const b = body as Partial<Readable>;
  if (typeof b.once !== 'function' || b.closed === true || b.destroyed === true) return done();
  b.once('close', done);
}

/** Maps undici's failures onto what the client should hear. */
export function toUpstreamError(err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  if (
    err instanceof undiciErrors.HeadersTimeoutError ||
    err instanceof undiciErrors.BodyTimeoutError ||
    err instanceof undiciErrors.ConnectTimeoutError
  ) {
    return new UpstreamError(`upstream timed out (${(err as Error).message})`, 504);
  }
  const code = (err as { code?: string }).code;
  return new UpstreamError(`upstream unreachable (${code ?? (err as Error).message})`, 502);
}

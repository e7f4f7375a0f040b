import { Pool, errors as undiciErrors } from 'undici';
import type { Clock } from '../common/clock.js';
import { signQuery } from '../common/signing.js';

/** Where misses go: the origin (`/o/…`) or a parent edge (`/c/…`, signed like a client). */
export interface UpstreamTarget {
  kind: 'origin' | 'parent';
  url: string;
  /** For a parent: the cluster's keys, to sign the request as steering would. */
  signing?: { keys: Record<string, string>; activeKey: string; ttlSeconds: number };
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
}

/** One keep-alive undici Pool per upstream; timeouts turn into 502/504. */
export class Upstream {
  private readonly pool: Pool;
  private readonly base: URL;

  constructor(
    readonly target: UpstreamTarget,
    private readonly clock: Clock,
    timeouts: UpstreamTimeouts = DEFAULT_TIMEOUTS,
    connections = 32,
  ) {
    this.base = new URL(target.url);
    this.pool = new Pool(this.base.origin, {
      connections,
      keepAliveTimeout: 30_000,
      headersTimeout: timeouts.headersMs,
      bodyTimeout: timeouts.bodyMs,
      connect: { timeout: timeouts.connectMs },
    });
  }

  pathFor(title: string, file: string): string {
    const basePath = this.base.pathname.replace(/\/+$/, '');
    if (this.target.kind === 'origin') return `${basePath}/o/${title}/${file}`;
    const path = `${basePath}/c/${title}/${file}`;
    const s = this.target.signing!;
    return `${path}?${signQuery(s.keys, s.activeKey, path, this.clock.now() / 1000, s.ttlSeconds)}`;
  }

  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const headers: Record<string, string> = { range: `bytes=${req.start}-${req.end - 1}` };
    if (req.ifNoneMatch) headers['if-none-match'] = req.ifNoneMatch;
    if (req.ifModifiedSince) headers['if-modified-since'] = req.ifModifiedSince;
    if (req.traceparent) headers.traceparent = req.traceparent;
    try {
      const res = await this.pool.request({ method: 'GET', path: this.pathFor(req.title, req.file), headers });
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
    await this.pool.close().catch(() => {});
  }
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

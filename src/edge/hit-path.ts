import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { CORS_HEADERS } from '../common/cors.js';
import { logAccess, requestId } from '../common/http-app.js';
import { parseObjectPath } from '../common/paths.js';
import { parsePlayId } from '../common/play-id.js';
import { type ByteRange, contentRange, parseRange } from '../common/range.js';
import { planResponse, requestView } from '../common/response-plan.js';
import { parseTraceparent } from '../common/trace.js';
import { type CachedMeta, type PrimedFetch, RepresentationChanged, type Tier } from './edge-cache.js';
import { HeaderBook } from './hit-path-headers.js';
import { type ObjectService, ONLY_IF_CACHED, firstOffset, upstreamFailure } from './routes/object-routes.js';

export interface HitPathOptions {
  svc: ObjectService;
  /** Where play ids of the media served go (steering's GET /plays). */
  plays?: { record(id: string): void };
  /** Level of the access-log line; a public port logs at info. */
  logLevel?: 'info' | 'debug';
}

/** The query parameters the hit path reads, as URLSearchParams.get would read them (first occurrence). */
export interface ObjectQuery {
  e: string | undefined;
  k: string | undefined;
  t: string | undefined;
  /** traceparent steering put in the URL. */
  tp: string | undefined;
  /** play id steering put in the URL. */
  pl: string | undefined;
}

/**
 * Reads `e`, `k`, `t`, `tp` and `pl` from `url`'s query (`q`: index of its '?', or -1) into
 * `out`. Plain `name=value` pairs are read in place; a query with percent-encoding, '+' or a
 * leading '?' is left to URLSearchParams, so the values are always the ones it would give.
 */
export function readObjectQuery(url: string, q: number, out: ObjectQuery): void {
  out.e = out.k = out.t = out.tp = out.pl = undefined;
  if (q < 0 || q === url.length - 1) return;
  if (url.indexOf('%', q) >= 0 || url.indexOf('+', q) >= 0 || url.charCodeAt(q + 1) === 63 /* ? */) {
    const p = new URLSearchParams(url.slice(q + 1));
    out.e = p.get('e') ?? undefined;
    out.k = p.get('k') ?? undefined;
    out.t = p.get('t') ?? undefined;
    out.tp = p.get('tp') ?? undefined;
    out.pl = p.get('pl') ?? undefined;
    return;
  }
  let i = q + 1;
  while (i <= url.length) {
    let amp = url.indexOf('&', i);
    if (amp < 0) amp = url.length;
    let eq = url.indexOf('=', i);
    if (eq < 0 || eq > amp) eq = amp;
    const len = eq - i;
    if (len === 1 || len === 2) {
      const value = eq < amp ? url.slice(eq + 1, amp) : '';
      const c = url.charCodeAt(i);
      if (len === 1) {
        if (c === 101 /* e */) out.e ??= value;
        else if (c === 107 /* k */) out.k ??= value;
        else if (c === 116 /* t */) out.t ??= value;
      } else {
        const d = url.charCodeAt(i + 1);
        if (c === 116 /* t */ && d === 112 /* p */) out.tp ??= value;
        else if (c === 112 /* p */ && d === 108 /* l */) out.pl ??= value;
      }
    }
    i = amp + 1;
  }
}

const CORS_FLAT: readonly string[] = Object.entries(CORS_HEADERS).flat();
const TEXT = 'text/plain; charset=utf-8';
const STALE_WARNING = '110 - "Response is Stale"';

/** One request the hit path answers: what its access-log line and counters need. */
class Answer {
  status = 0;
  tier: Tier | undefined = undefined;
  /** Content-Length of the answer (the GET's for HEAD): the log's `bytes`. */
  length = 0;
  closed = false;
  counted = false;
  reqId: string | undefined = undefined;
  /** Set as the response's 'close' listener: the answer is counted when it ends, however it ends. */
  readonly onClose: () => void;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly start: number,
    readonly head: boolean,
    readonly range: string | undefined,
    readonly traceparent: string | undefined,
    readonly playId: string | undefined,
    readonly remote: string | undefined,
    done: (a: Answer) => void,
  ) {
    this.onClose = () => {
      this.closed = true;
      if (this.status !== 0) done(this);
    };
  }
}

/**
 * The public port's answer to GET and HEAD of `/c/{title}/{file}` without the framework: a raw
 * `node:http` listener placed in front of fastify (AppOptions.front). It claims a request only
 * when it can answer it whole — a well-formed path, a valid token, one range at most, no
 * only-if-cached — and leaves the rest (400, 403, multipart ranges, peer fills, OPTIONS, other
 * paths) to fastify's routes, which answer as they always did. What it claims gets the same
 * answer those routes would give, in fewer steps: headers built once per representation
 * (HeaderBook), tokens verified once per URL (TokenVerifier), answers counted in plain numbers
 * (AnswerSink) and logged in the same access-log line.
 */
export function createHitPath(opts: HitPathOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { cache, signing, tokens, clock, logger, answers } = opts.svc;
  const plays = opts.plays;
  const level = opts.logLevel ?? 'info';
  const headers = new HeaderBook();
  // Filled and read synchronously for one request at a time.
  const query: ObjectQuery = { e: undefined, k: undefined, t: undefined, tp: undefined, pl: undefined };

  function done(a: Answer): void {
    if (a.counted) return;
    a.counted = true;
    const ms = performance.now() - a.start;
    answers.answered(a.status, a.tier, a.head ? 0 : a.length, ms / 1000, false);
    if (plays && a.playId !== undefined && !a.head && (a.status === 200 || a.status === 206)) {
      const id = parsePlayId(a.playId);
      if (id) plays.record(id);
    }
    if (logger.isLevelEnabled(level)) {
      logAccess(logger, level, idOf(a), a.req.method!, a.req.url!, a.range, a.status, a.tier, a.length, ms, a.remote, a.traceparent);
    }
  }

  function idOf(a: Answer): string {
    return (a.reqId ??= requestId(a.req));
  }

  /** Writes the head; the answer is counted once its response has closed. */
  function writeHead(a: Answer, status: number, tier: Tier | undefined, length: number, h: readonly string[]): void {
    a.status = status;
    a.tier = tier;
    a.length = length;
    if (!a.res.headersSent) a.res.writeHead(status, h as string[]);
    if (a.closed) done(a); // the client left before the answer was ready
  }

  /** A one-line plain-text answer, as the framework's sendError writes it. */
  function sendText(a: Answer, status: number, reason: string): void {
    const body = `${reason}\n`;
    const length = Buffer.byteLength(body);
    const h = [...CORS_FLAT];
    if (a.traceparent) h.push('traceparent', a.traceparent);
    h.push('content-type', TEXT, 'content-length', String(length));
    writeHead(a, status, undefined, length, h);
    a.res.end(body);
  }

  /**
   * An error that escaped an answer, told as the framework's error handler tells it: with the
   * status it carries (500 for a bug, whose message stays in the log), over the headers the
   * answer had set (`head`, X-Cache included) but for Content-Type and Content-Length.
   */
  function failed(a: Answer, err: Error & { statusCode?: number; expose?: boolean }, head?: readonly string[]): void {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    const url = a.req.url!.split('?')[0];
    if (err.expose) logger.warn({ reqId: idOf(a), url, status, err: err.message }, 'request failed');
    else if (status >= 500) logger.error({ err, reqId: idOf(a), url }, 'request failed');
    if (a.res.headersSent) {
      a.res.destroy();
      return;
    }
    const reason = status >= 500 && !err.expose ? 'internal error' : err.message;
    if (!head) return sendText(a, status, reason);
    const body = `${reason}\n`;
    const length = Buffer.byteLength(body);
    const h = [...head];
    for (let i = 0; i < h.length; i += 2) {
      if (h[i] === 'content-type') h[i + 1] = TEXT;
      else if (h[i] === 'content-length') h[i + 1] = String(length);
    }
    writeHead(a, status, h[h.indexOf('x-cache') + 1] as Tier, length, h);
    a.res.end(body);
  }

  /**
   * Resolves the representation and answers from it, in the order the object routes do: the
   * tier (X-Cache) is settled before headers go out — cached bytes read first (a slice failing
   * its checksum makes the answer a MISS), a miss waits for upstream's answer head — so a dead
   * upstream is a clean 502/504 and a changed object is resolved again, not promised in its old version.
   */
  async function answer(a: Answer, title: string, file: string, mayRetry: boolean): Promise<void> {
    let resolved;
    try {
      resolved = await cache.resolve(title, file, firstOffset(a.range), a.traceparent);
    } catch (err) {
      const f = upstreamFailure(err);
      return sendText(a, f.status, f.reason);
    }
    if (resolved.kind === 'not-found') return sendText(a, 404, 'not found');
    const meta = resolved.meta;
    const rh = headers.of(meta);
    const h = a.req.headers;

    // What to send: the status, the bytes (none for HEAD, 304, 412, 416) and, off the common
    // case, the headers planResponse gives.
    let status: number;
    /** The bytes the body carries: none for HEAD. */
    let range: ByteRange | undefined;
    /** The one range of a 206 (its Content-Range, also on HEAD). */
    let partial: ByteRange | undefined;
    let planned: Record<string, string> | undefined;
    const conditional =
      h['if-match'] !== undefined ||
      h['if-none-match'] !== undefined ||
      h['if-modified-since'] !== undefined ||
      h['if-unmodified-since'] !== undefined ||
      (a.range !== undefined && h['if-range'] !== undefined);
    const wanted = conditional ? undefined : parseRange(a.range, meta.size);
    if (wanted && wanted.kind === 'none') {
      status = 200;
      range = a.head || meta.size === 0 ? undefined : { start: 0, end: meta.size };
    } else if (wanted && wanted.kind === 'ranges' && wanted.ranges.length === 1) {
      status = 206;
      partial = wanted.ranges[0]!;
      range = a.head ? undefined : partial;
    } else {
      const plan = planResponse(requestView(a.req.method!, h), meta);
      status = plan.status;
      planned = plan.headers;
      const part = plan.body[0];
      range = part && part.kind === 'bytes' ? part.range : undefined;
      // As the framework sends an answer without a body: Content-Length 0, but on 304 and HEAD.
      if (range === undefined && status !== 304 && !a.head) planned['content-length'] = '0';
    }

    let primed: PrimedFetch | undefined = resolved.primed;
    // No body bytes needed: answered from what we know of the object.
    let tier: Tier = range === undefined ? 'HIT-MEM' : primed && !primed.joined ? 'MISS' : cache.tierFor(meta, [range]);
    let body: Buffer | Buffer[] | undefined;
    if (range !== undefined && (tier === 'HIT-MEM' || tier === 'HIT-DISK')) {
      // One range inside one memory slice goes out as it is; else whole cached buffers, no stream.
      body = (tier === 'HIT-MEM' ? cache.memorySlice(meta, range) : undefined) ?? (await cache.cachedPieces(meta, range));
      // A slice that failed its checksum was dropped: this answer goes upstream after all.
      if (!body) tier = cache.tierFor(meta, [range]);
    }
    if (body === undefined && range !== undefined && tier === 'MISS' && !primed) {
      try {
        primed = await cache.prime(meta, range, a.traceparent);
      } catch (err) {
        if (err instanceof RepresentationChanged && mayRetry) return answer(a, title, file, false);
        const f = upstreamFailure(err);
        return sendText(a, f.status, f.reason);
      }
    }

    let out: readonly string[];
    let length: number;
    if (planned === undefined && status === 200 && !a.traceparent && !resolved.stale) {
      out = rh.whole200(tier);
      length = meta.size;
    } else {
      let list: string[];
      if (planned === undefined) {
        list = [...rh.common];
        if (a.traceparent) list.push('traceparent', a.traceparent);
        if (status === 206) {
          length = partial!.end - partial!.start;
          list.push('content-range', contentRange(partial!, meta.size), 'content-length', String(length));
        } else {
          length = meta.size;
          list.push('content-length', rh.sizeText);
        }
      } else {
        list = [...CORS_FLAT];
        if (a.traceparent) list.push('traceparent', a.traceparent);
        for (const name in planned) list.push(name, planned[name]!);
        length = Number(planned['content-length'] ?? 0);
      }
      list.push('x-cache', tier);
      if (resolved.stale) list.push('warning', STALE_WARNING);
      out = list;
    }
    if (range !== undefined && body === undefined) return stream(a, meta, range, primed, status, tier, length, out);
    writeHead(a, status, tier, length, out);
    if (range === undefined) {
      a.res.end();
    } else if (Buffer.isBuffer(body)) {
      a.res.end(body);
    } else {
      // Cached pieces: one writev.
      a.res.cork();
      for (const piece of body!) a.res.write(piece);
      a.res.end(); // uncorks fully
    }
  }

  /**
   * A body that is not all cached: slice by slice as the tiers and upstream deliver it, at the
   * client's pace; a client that leaves stops the reading. The head goes out with the first
   * bytes, so a fetch that fails before any (one this answer joined) is still a clean error; a
   * failure after them (the object changed upstream, upstream broke off) cuts the answer — never
   * finished with other bytes.
   */
  async function stream(
    a: Answer,
    meta: CachedMeta,
    range: ByteRange,
    primed: PrimedFetch | undefined,
    status: number,
    tier: Tier,
    length: number,
    head: readonly string[],
  ): Promise<void> {
    const res = a.res;
    const chunks = cache.read(meta, range, primed, a.traceparent);
    let next: IteratorResult<Buffer>;
    try {
      next = await chunks.next();
    } catch (err) {
      return failed(a, err as Error, head);
    }
    writeHead(a, status, tier, length, head);
    try {
      while (!next.done) {
        if (res.destroyed) {
          await chunks.return(undefined);
          return;
        }
        if (!res.write(next.value)) await drained(res);
        next = await chunks.next();
      }
    } catch {
      res.destroy();
      return;
    }
    res.end();
  }

  return function hitPath(req: IncomingMessage, res: ServerResponse): boolean {
    const start = performance.now();
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') return false;
    const url = req.url!;
    if (!url.startsWith('/c/')) return false;
    const h = req.headers;
    const cc = h['cache-control'];
    // Peer fills (only-if-cached) and multipart ranges are rare: the object routes answer them.
    if (cc !== undefined && ONLY_IF_CACHED.test(cc)) return false;
    const range = h.range;
    if (range !== undefined && range.includes(',')) return false;
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const parsed = parseObjectPath(path.slice(3));
    if (!parsed.ok) return false; // 400 from the object routes
    readObjectQuery(url, q, query);
    if (signing.required && !tokens.verify(path, query.e, query.k, query.t, clock.now() / 1000).ok) return false; // 403 from the object routes
    // The header, or the `tp` query parameter steering puts in the URLs it signs (players drop headers).
    const traceparent = parseTraceparent(h.traceparent) ?? (query.tp !== undefined ? parseTraceparent(query.tp) : undefined);
    const a = new Answer(req, res, start, method === 'HEAD', range, traceparent, query.pl, req.socket.remoteAddress, done);
    res.once('close', a.onClose);
    answer(a, parsed.title, parsed.file, true).catch((err: Error) => failed(a, err));
    return true;
  };
}

/** Resolves when `res` can take more, or has closed (a client gone never drains). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const go = () => {
      res.off('drain', go);
      res.off('close', go);
      resolve();
    };
    res.on('drain', go);
    res.on('close', go);
  });
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { type Cmcd, readCmcd, withoutCmcdQuery } from '../common/cmcd.js';
import { CORS_HEADERS } from '../common/cors.js';
import { requestId } from '../common/http-app.js';
import { logRequestLine } from '../common/logger.js';
import { objectKey, parseObjectPath } from '../common/paths.js';
import { parsePlayId } from '../common/play-id.js';
import { type ByteRange, contentRange, parseRange } from '../common/range.js';
import { planResponse, requestView } from '../common/response-plan.js';
import { parseTraceparent } from '../common/trace.js';
import { type CachedMeta, type HeldObject, type PrimedFetch, RepresentationChanged, type Tier } from './edge-cache.js';
import { type SliceLease, releaseAll, releaseWhenClosed } from './disk-tier.js';
import { HeaderBook, type Plan, type RepresentationHeaders } from './hit-path-headers.js';
import { CMSD_DYNAMIC, pushCmsdHeaders } from './cmsd-header.js';
import { MIN_MEASURED_BYTES, PacedTransfer, endMeasured } from './client-throughput.js';
import { type Prefetcher, askPrefetcher, asksNext } from './prefetch-hook.js';
import { ServedFile, type ServedSink } from './serve-report.js';
import { EDGE_HOP_HEADER } from '../common/serve-report-wire.js';
import { type ObjectService, ONLY_IF_CACHED, firstOffset, upstreamFailure } from './routes/object-routes.js';

export interface HitPathOptions {
  svc: ObjectService;
  /** Where play ids of the media served go (steering's GET /plays). */
  plays?: { record(id: string): void };
  /** Where the bodies served are told, per title and file (the serve report, serve-report.ts). */
  served?: ServedSink;
  /** Level of the access-log line; a public port logs at info. */
  logLevel?: 'info' | 'debug';
  /** Told of answers whose CMCD names the next object or range (default: the service's). */
  prefetcher?: Prefetcher;
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
  /** The object's size and the first byte of the body, once an answer from it is planned (-1: none). */
  size = 0;
  bodyStart = -1;
  closed = false;
  counted = false;
  reqId: string | undefined = undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly start: number,
    readonly head: boolean,
    readonly range: string | undefined,
    readonly traceparent: string | undefined,
    /** The URL asked, as remembered (its object, play id, logged path). */
    readonly u: KnownUrl,
    readonly remote: string | undefined,
    /** What the player said (CMCD), if anything. */
    readonly cmcd: Cmcd | undefined,
  ) {}
}

/** The answer a response carries until it closes (see `finish`). */
const ANSWER = Symbol('reelcdn.answer');
type AnsweringResponse = ServerResponse & { [ANSWER]?: Answer };

/**
 * The whole answer went to the kernel as end() wrote it: HTTP/1 over plain TCP, whose writes
 * complete in place. It is then counted at once, with no 'close' listener; over TLS and HTTP/2
 * the write completes on a later tick, and the answer is counted at its response's 'close'.
 */
function sentAll(req: IncomingMessage, res: ServerResponse): boolean {
  const socket = res.socket;
  return req.httpVersionMajor === 1 && res.writableEnded && socket !== null && !socket.destroyed && socket.writableLength === 0;
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
export function createHitPath(opts: HitPathOptions): HitPath {
  const { cache, signing, tokens, clock, logger, answers } = opts.svc;
  const plays = opts.plays;
  const served = opts.served;
  const level = opts.logLevel ?? 'info';
  const { cmcd: cmcdSink, cmsd } = opts.svc;
  const prefetcher = opts.prefetcher ?? opts.svc.prefetcher;
  const headers = new HeaderBook();
  const urls = new UrlBook();
  // Filled and read synchronously for one request at a time.
  const query: ObjectQuery = { e: undefined, k: undefined, t: undefined, tp: undefined, pl: undefined };

  /**
   * A URL seen for the first time (or whose token was near its expiry): its path parsed, its
   * token verified; remembered if both hold. Undefined: the object routes answer it (400, 403).
   */
  function admit(url: string, nowSec: number): KnownUrl | undefined {
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const parsed = parseObjectPath(path.slice(3));
    if (!parsed.ok) return undefined;
    readObjectQuery(url, q, query);
    let expiry = Infinity;
    if (signing.required) {
      if (!tokens.verify(path, query.e, query.k, query.t, nowSec).ok) return undefined;
      expiry = Number(query.e);
    }
    const known: KnownUrl = {
      title: parsed.title,
      file: parsed.file,
      key: objectKey(parsed.title, parsed.file),
      expiry,
      keys: tokens.generation,
      traceparent: query.tp !== undefined ? parseTraceparent(query.tp) : undefined,
      play: query.pl !== undefined ? parsePlayId(query.pl) : undefined,
      served: new ServedFile(parsed.title, parsed.file),
      held: undefined,
      headers: undefined,
      headersOf: undefined,
    };
    urls.add(url, known);
    return known;
  }

  function done(a: Answer): void {
    if (a.counted) return;
    a.counted = true;
    const ms = performance.now() - a.start;
    answers.answered(a.status, a.tier, a.head ? 0 : a.length, ms / 1000, false);
    const u = a.u;
    if (!a.head && (a.status === 200 || a.status === 206)) {
      if (plays && u.play !== undefined) plays.record(u.play);
      if (served && a.bodyStart >= 0 && a.req.headers[EDGE_HOP_HEADER] === undefined) {
        if (served.servedTo) served.servedTo(u.served, a.size, a.bodyStart, a.length, u.play);
        else served.served(u.title, u.file, a.size, a.bodyStart, a.length, u.play);
      }
    }
    if (logger.isLevelEnabled(level)) {
      // The path without the query: tokens are never logged.
      const url = a.req.url!;
      const q = url.indexOf('?');
      logRequestLine(logger, level, idOf(a), a.req.method!, q < 0 ? url : url.slice(0, q), a.range, a.status, a.tier, a.length, Math.round(ms * 10) / 10, a.remote, a.traceparent, true, a.cmcd);
    }
  }

  /** Every response's 'close' listener while it answers: one function, no closure per request. */
  function answerClosed(this: AnsweringResponse): void {
    const a = this[ANSWER];
    if (a === undefined) return;
    a.closed = true;
    if (a.status !== 0) done(a);
  }

  /** Counts and logs `a` at once if it was answered in full and its bytes are with the kernel, else once its response closes. */
  function finish(a: Answer, rest: Promise<void> | undefined): void {
    if (rest === undefined && a.status !== 0 && sentAll(a.req, a.res)) return done(a);
    // However it ends ('close' is emitted once, never before this tick ends).
    (a.res as AnsweringResponse)[ANSWER] = a;
    a.res.on('close', answerClosed);
    rest?.catch((err: Error) => failed(a, err));
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

  /**
   * The player named its next object or range: the prefetcher may fetch it while this answer
   * goes out. Called once the answer's body is with the socket (ended, or its first bytes
   * written), so the prefetcher's work never comes before this answer's first byte.
   */
  function considerNext(a: Answer): void {
    const cmcd = a.cmcd;
    if (prefetcher === undefined || !asksNext(cmcd) || (a.status !== 200 && a.status !== 206)) return;
    askPrefetcher(prefetcher, { title: a.u.title, file: a.u.file, cmcd, remote: a.remote, traceparent: a.traceparent, head: a.head, answerBytes: a.length }, logger);
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
  async function answer(a: Answer, mayRetry: boolean): Promise<void> {
    let resolved;
    try {
      resolved = await cache.resolve(a.u.title, a.u.file, firstOffset(a.range), a.traceparent);
    } catch (err) {
      const f = upstreamFailure(err);
      return sendText(a, f.status, f.reason);
    }
    if (resolved.kind === 'not-found') return sendText(a, 404, 'not found');
    return answerFrom(a, resolved.meta, undefined, resolved.stale, resolved.primed, mayRetry);
  }

  /**
   * Answers from a representation (`held`: as the URL keeps it). Synchronous (undefined) when
   * memory holds the bytes or none are needed — a hot hit allocates no promise — else the
   * promise of the rest.
   */
  function answerFrom(
    a: Answer,
    meta: CachedMeta,
    held: HeldObject | undefined,
    stale: boolean,
    primed: PrimedFetch | undefined,
    mayRetry: boolean,
  ): Promise<void> | undefined {
    const p = plan(a, meta);
    const range = p.range;
    if (range === undefined) return send(a, meta, stale, p, 'HIT-MEM', undefined); // nothing to read
    if (primed && !primed.joined) return answerSlow(a, meta, stale, primed, mayRetry, p, 'MISS');
    // One range inside one memory slice: HIT-MEM without asking each tier; the slice goes out as it is.
    const slice = held !== undefined ? cache.heldSlice(held, range) : cache.memorySlice(meta, range);
    if (slice) return send(a, meta, stale, p, 'HIT-MEM', slice);
    return answerSlow(a, meta, stale, primed, mayRetry, p, cache.tierFor(meta, [range]));
  }

  async function answerSlow(
    a: Answer,
    meta: CachedMeta,
    stale: boolean,
    primed: PrimedFetch | undefined,
    mayRetry: boolean,
    p: Plan,
    tier: Tier,
  ): Promise<void> {
    const range = p.range!;
    let body: Buffer[] | undefined;
    if (tier === 'HIT-MEM' || tier === 'HIT-DISK') {
      // Cached: whole buffers, no stream. A slice that failed its checksum was dropped: this
      // answer goes upstream after all.
      const held: SliceLease[] = [];
      body = await cache.cachedPieces(meta, range, 4, held);
      // Pooled disk buffers go back once the socket is done with them (at once if unused).
      if (body) releaseWhenClosed(a.res, held);
      else releaseAll(held);
      if (!body) tier = cache.tierFor(meta, [range]);
    }
    if (!body && tier === 'MISS' && !primed) {
      try {
        primed = await cache.prime(meta, range, a.traceparent);
      } catch (err) {
        if (err instanceof RepresentationChanged && mayRetry) return answer(a, false);
        const f = upstreamFailure(err);
        return sendText(a, f.status, f.reason);
      }
    }
    if (body) return send(a, meta, stale, p, tier, body);
    const out = head(a, meta, stale, p, tier);
    return stream(a, meta, range, primed, p.status, tier, a.length, out);
  }

  /** Status, bytes and (off the common case) planResponse's headers of an answer from `meta`. */
  function plan(a: Answer, meta: CachedMeta): Plan {
    const h = a.req.headers;
    const conditional =
      h['if-match'] !== undefined ||
      h['if-none-match'] !== undefined ||
      h['if-modified-since'] !== undefined ||
      h['if-unmodified-since'] !== undefined ||
      (a.range !== undefined && h['if-range'] !== undefined);
    if (!conditional) {
      if (a.range === undefined) return a.head ? headersOf(a.u, meta).head200 : headersOf(a.u, meta).get200;
      const wanted = parseRange(a.range, meta.size);
      if (wanted.kind === 'none') return a.head ? headersOf(a.u, meta).head200 : headersOf(a.u, meta).get200;
      if (wanted.kind === 'ranges' && wanted.ranges.length === 1) {
        const partial = wanted.ranges[0]!;
        return { status: 206, range: a.head ? undefined : partial, partial, planned: undefined };
      }
    }
    const full = planResponse(requestView(a.req.method!, h), meta);
    const part = full.body[0];
    const range = part && part.kind === 'bytes' ? part.range : undefined;
    // As the framework sends an answer without a body: Content-Length 0, but on 304 and HEAD.
    if (range === undefined && full.status !== 304 && !a.head) full.headers['content-length'] = '0';
    return { status: full.status, range, partial: undefined, planned: full.headers };
  }

  /** The headers of `meta`, as the URL keeps them. */
  function headersOf(u: KnownUrl, meta: CachedMeta): RepresentationHeaders {
    if (u.headersOf !== meta) {
      u.headers = headers.of(meta, u.file);
      u.headersOf = meta;
    }
    return u.headers!;
  }

  /** The head of an answer: the representation's prebuilt headers and what varies; its Content-Length in `a.length`. */
  function head(a: Answer, meta: CachedMeta, stale: boolean, p: Plan, tier: Tier): readonly string[] {
    a.size = meta.size;
    a.bodyStart = p.range ? p.range.start : -1;
    const rh = headersOf(a.u, meta);
    // A player (CMCD) may get an `etp` of its own; every other answer the node's value, a string made once.
    const own = a.cmcd !== undefined ? cmsd?.own(a.remote) : undefined;
    const dynamic = own ?? cmsd?.shared();
    if (p.planned === undefined && p.status === 200 && !a.traceparent && !stale && dynamic !== undefined) {
      a.length = meta.size;
      return own === undefined ? rh.whole200(tier, dynamic) : rh.whole200Own(tier, own);
    }
    let list: string[];
    let length: number;
    if (p.planned === undefined) {
      list = [...rh.common];
      if (a.traceparent) list.push('traceparent', a.traceparent);
      if (p.status === 206) {
        length = p.partial!.end - p.partial!.start;
        list.push('content-range', contentRange(p.partial!, meta.size), 'content-length', String(length));
      } else {
        length = meta.size;
        list.push('content-length', rh.sizeText);
      }
    } else {
      list = [...CORS_FLAT];
      if (a.traceparent) list.push('traceparent', a.traceparent);
      for (const name in p.planned) list.push(name, p.planned[name]!);
      length = Number(p.planned['content-length'] ?? 0);
      // As the object routes: CMSD on answers that carry the object.
      pushCmsdHeaders(list, p.status, meta, a.u.file, dynamic);
    }
    list.push('x-cache', tier);
    // The representation's common headers have its CMSD-Static; 200 and 206 only come this way.
    if (p.planned === undefined && dynamic !== undefined) list.push(CMSD_DYNAMIC, dynamic);
    if (stale) list.push('warning', STALE_WARNING);
    a.length = length;
    return list;
  }

  /** Sends an answer whose body (if any) is in hand. */
  function send(a: Answer, meta: CachedMeta, stale: boolean, p: Plan, tier: Tier, body: Buffer | Buffer[] | undefined): undefined {
    const out = head(a, meta, stale, p, tier);
    writeHead(a, p.status, tier, a.length, out);
    const throughput = cmsd?.throughput;
    if (body === undefined) a.res.end();
    // A player's large body: written so that the part its client paces is measured (its `etp`).
    else if (a.cmcd !== undefined && throughput !== undefined && a.length >= MIN_MEASURED_BYTES) {
      endMeasured(a.res, body, new PacedTransfer(a.res, a.length, a.remote, throughput));
    } else if (Buffer.isBuffer(body)) a.res.end(body);
    else {
      // Cached pieces: one writev.
      a.res.cork();
      for (const piece of body) a.res.write(piece);
      a.res.end(); // uncorks fully
    }
    considerNext(a);
    return undefined;
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
    // Told once the body's first bytes are written (or, for none, once it ended).
    let told = false;
    try {
      while (!next.done) {
        if (res.destroyed) {
          await chunks.return(undefined);
          return;
        }
        const more = res.write(next.value);
        if (!told) {
          told = true;
          considerNext(a);
        }
        if (!more) await drained(res);
        next = await chunks.next();
      }
    } catch {
      res.destroy();
      return;
    }
    res.end();
    if (!told) considerNext(a);
  }

  const hitPath = function hitPath(req: IncomingMessage, res: ServerResponse): boolean {
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
    const now = clock.now();
    const nowSec = now / 1000;
    // CMCD differs with every request of a player: its URLs are remembered without it (it is
    // neither in the token nor in the cache key), so they keep their place and the book its room.
    // One search of the URL for it, whatever the request carries.
    const inQuery = url.indexOf('CMCD=') >= 0;
    const known = inQuery ? withoutCmcdQuery(url) : url;
    let u = urls.get(known);
    // Admitted under keys a reload has since replaced: checked again (a dropped key stops here).
    if (u === undefined || u.expiry < nowSec || u.keys !== tokens.generation) {
      u = admit(known, nowSec);
      if (u === undefined) return false; // 400 or 403 from the object routes
    }
    // Read only once the token holds (a refused request's CMCD is never parsed). A URL without
    // `CMCD=` is not searched again: readCmcd then reads the four headers alone.
    const cmcd = readCmcd(inQuery ? url : '', h);
    if (cmcd !== undefined) cmcdSink?.record(cmcd);
    // The header, or the `tp` query parameter steering puts in the URLs it signs (players drop headers).
    const traceparent = (h.traceparent !== undefined ? parseTraceparent(h.traceparent) : undefined) ?? u.traceparent;
    const a = new Answer(req, res, start, method === 'HEAD', range, traceparent, u, req.socket.remoteAddress, cmcd);
    // A fresh representation is known without waiting (what cache.resolve would answer at once):
    // the one this URL holds while the cache has not let it go, else looked up.
    let held = u.held;
    if (held === undefined || !cache.stillHeld(held, now)) held = u.held = cache.hold(u.key);
    let rest: Promise<void> | undefined;
    try {
      rest = held !== undefined ? answerFrom(a, held.meta, held, false, undefined, true) : answer(a, true);
    } catch (err) {
      failed(a, err as Error);
    }
    finish(a, rest);
    return true;
  } as HitPath;
  hitPath.urlsKept = () => urls.size;
  return hitPath;
}

/** The hit path's listener, and how many URLs it remembers (tests: its book stays bounded). */
export type HitPath = ((req: IncomingMessage, res: ServerResponse) => boolean) & { urlsKept(): number };

/** URLs remembered by default: the hot URLs of a busy edge, many times over. */
const URLS_KEPT = 16_384;

/**
 * What a URL says, once its path parsed and its token verified, and what answering it again
 * needs without a lookup: its object as the cache holds it, that representation's headers, its
 * file's counters in the serve report.
 */
interface KnownUrl {
  readonly title: string;
  readonly file: string;
  /** objectKey(title, file): one string, hashed once. */
  readonly key: string;
  /** Unix seconds its token is valid until (Infinity when signing is not required). */
  readonly expiry: number;
  /** The verifier's generation it was admitted under (TokenVerifier.generation). */
  readonly keys: number;
  /** From its `tp` parameter, if valid. */
  readonly traceparent: string | undefined;
  /** Its `pl` parameter if it is a well-formed play id. */
  readonly play: string | undefined;
  readonly served: ServedFile;
  /** The representation it was last answered from (the cache's, shared by the object's URLs). */
  held: HeldObject | undefined;
  /** The headers of the representation `headersOf`. */
  headers: RepresentationHeaders | undefined;
  headersOf: CachedMeta | undefined;
}

/**
 * Whole request URLs (path and query) already admitted: a URL asked again — a player's ranges
 * of one segment, a hot object — skips the path parsing, the query reading and the token check,
 * all pure functions of the URL; only the expiry is checked again, on every request, so a
 * remembered token still stops at its `e` — and the keys' generation, so a reload that drops a
 * key (or turns signing on) stops the URLs it had admitted. Bounded, oldest out. A URL is
 * kept without its CMCD parameter (withoutCmcdQuery), which changes with every request a player
 * makes and is in neither the token nor the cache key.
 */
class UrlBook {
  private readonly byUrl = new Map<string, KnownUrl>();

  get(url: string): KnownUrl | undefined {
    return this.byUrl.get(url);
  }

  get size(): number {
    return this.byUrl.size;
  }

  add(url: string, known: KnownUrl): void {
    if (this.byUrl.size >= URLS_KEPT) this.byUrl.delete(this.byUrl.keys().next().value!);
    this.byUrl.set(url, known);
  }
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

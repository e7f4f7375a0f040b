import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { readCmcd } from '../../common/cmcd.js';
import type { Clock } from '../../common/clock.js';
import type { SigningConfig } from '../../common/config.js';
import { CORS_HEADERS, CORS_PREFLIGHT_HEADERS } from '../../common/cors.js';
import { sendError } from '../../common/http-app.js';
import { type Logger, noteLoggedCmcd } from '../../common/logger.js';
import { parseObjectPath } from '../../common/paths.js';
import { type BodyPart, planResponse, requestView } from '../../common/response-plan.js';
import type { TokenVerifier } from '../../common/signing.js';
import { requestTraceparent } from '../../common/trace.js';
import { type CachedMeta, type EdgeCache, type PrimedFetch, RepresentationChanged, type Tier } from '../edge-cache.js';
import { type SliceLease, releaseAll, releaseWhenClosed } from '../disk-tier.js';
import { UpstreamError } from '../upstream.js';
import type { CmcdSink } from '../edge-metrics.js';
import { type CmsdDynamicHeader, pushCmsdHeaders } from '../cmsd-header.js';
import { MIN_MEASURED_BYTES, PacedTransfer, measuredStream } from '../client-throughput.js';
import { type Prefetcher, askPrefetcher, asksNext } from '../prefetch-hook.js';

/** The cache as the public routes use it: lookups and reads, no administration. */
export type ObjectSource = Pick<EdgeCache, 'resolve' | 'peek' | 'hold' | 'stillHeld' | 'heldSlice' | 'tierFor' | 'memorySlice' | 'cachedPieces' | 'prime' | 'read'>;

/** Where each answer to a /c/ request is counted (traffic stats for /health, metrics). */
export interface AnswerSink {
  /**
   * One answer. `tier`: its X-Cache, undefined for answers without one (errors); `bytes`: body
   * bytes (0 for HEAD); `onlyIfCachedMiss`: a 504 RFC 9111 asks for, no failure of the node.
   */
  answered(status: number, tier: Tier | undefined, bytes: number, seconds: number, onlyIfCachedMiss: boolean): void;
}

/** Everything the public object routes depend on. */
export interface ObjectService {
  cache: ObjectSource;
  signing: Pick<SigningConfig, 'required'>;
  /** Verifies tokens against the cluster's signing keys. */
  tokens: TokenVerifier;
  clock: Clock;
  logger: Logger;
  answers: AnswerSink;
  /** Where the CMCD of requests goes, once their token is checked (QoE and metrics). */
  cmcd?: CmcdSink;
  /** CMSD-Dynamic of answers (and the per-client throughput estimate behind its `etp`). */
  cmsd?: CmsdDynamicHeader;
  /** Told of each answer whose CMCD names the next object or range (nor, nrr), once its head is out. */
  prefetcher?: Prefetcher;
}

export const ONLY_IF_CACHED = /\bonly-if-cached\b/i;

/** Largest answer to an only-if-cached request (peer fill asks one slice at a time). */
export const ONLY_IF_CACHED_MAX_BYTES = 64 * 1024 * 1024;

/** The first byte a Range header asks for, to fetch that slice first on a cold object. */
export function firstOffset(range: string | undefined): number | undefined {
  const m = range ? /^\s*bytes\s*=\s*(\d{1,15})-/i.exec(range) : null;
  return m ? Number(m[1]) : undefined;
}

/** The status and reason of an answer whose upstream failed before any header went out. */
export function upstreamFailure(err: unknown): { status: number; reason: string } {
  if (err instanceof RepresentationChanged) return { status: 502, reason: err.message };
  const status = err instanceof UpstreamError ? err.status : 502;
  return { status, reason: `bad gateway: ${(err as Error).message}` };
}

/**
 * OPTIONS, HEAD and GET of `/c/{title}/{file}` on a public instance, and the count of every
 * answer under /c/ (hooks are added to the instance itself, so they see its 404s and 503s too).
 */
export function registerObjectRoutes(app: FastifyInstance, svc: ObjectService): void {
  const { cache, signing, tokens, clock } = svc;

  app.addHook('onResponse', async (req, reply) => {
    if (!req.url.startsWith('/c/')) return;
    const tier = reply.getHeader('x-cache') as Tier | undefined;
    const bytes = req.method === 'HEAD' ? 0 : Number(reply.getHeader('content-length') ?? 0);
    const onlyIfCachedMiss = reply.statusCode === 504 && ONLY_IF_CACHED.test(String(req.headers['cache-control'] ?? ''));
    svc.answers.answered(reply.statusCode, tier, bytes, reply.elapsedTime / 1000, onlyIfCachedMiss);
  });

  app.options('/c/*', async (_req, reply) => reply.code(204).headers(CORS_PREFLIGHT_HEADERS).send());
  const handler = (req: FastifyRequest, reply: FastifyReply) => serveObject(req, reply);
  // HEAD is registered before GET so fastify does not add its own HEAD route, whose onSend
  // overwrites Content-Length with 0 when the body is empty (ours always is for HEAD).
  app.head('/c/*', handler);
  app.get('/c/*', handler);

  async function serveObject(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    reply.headers(CORS_HEADERS);
    const q = req.url.indexOf('?');
    const path = q < 0 ? req.url : req.url.slice(0, q);
    const parsed = parseObjectPath(path.slice('/c/'.length));
    if (!parsed.ok) return sendError(reply, 400, parsed.reason);

    if (signing.required) {
      const params = new URLSearchParams(q < 0 ? '' : req.url.slice(q + 1));
      const verdict = tokens.verify(path, params.get('e'), params.get('k'), params.get('t'), clock.now() / 1000);
      if (!verdict.ok) return sendError(reply, 403, `forbidden: ${verdict.reason}`);
    }
    // What the player says (never part of the token or the cache key), counted once its URL is known good.
    const cmcd = readCmcd(req.url, req.headers);
    if (cmcd !== undefined) {
      svc.cmcd?.record(cmcd);
      noteLoggedCmcd(req.raw, cmcd);
    }

    // The header, or the `tp` query parameter steering puts in the URLs it signs (players drop headers).
    const traceparent = requestTraceparent(req.headers, req.url);
    if (traceparent) reply.header('traceparent', traceparent);
    // RFC 9111 §5.2.1.7: answer from the cache or 504 — peers filling from us never make us go upstream.
    if (ONLY_IF_CACHED.test(String(req.headers['cache-control'] ?? ''))) {
      return serveOnlyIfCached(req, reply, parsed.title, parsed.file);
    }
    const prefetcher = svc.prefetcher;
    const next =
      prefetcher !== undefined && asksNext(cmcd)
        ? () => askPrefetcher(prefetcher, { title: parsed.title, file: parsed.file, cmcd, remote: req.socket.remoteAddress, traceparent, head: req.method === 'HEAD', answerBytes: Number(reply.getHeader('content-length')) }, svc.logger)
        : undefined;
    return answerObject(req, reply, parsed.title, parsed.file, traceparent, true, cmcd !== undefined, next);
  }

  /**
   * Resolves the object's representation and answers from it. The tier (X-Cache) is settled
   * before headers go out: cached bytes are read first (a slice failing its checksum makes the
   * answer a MISS), and a miss waits for upstream's answer head, so a dead upstream is a clean
   * 502/504 and an object that changed is resolved again rather than promised in its old version.
   * `player`: the request carried CMCD (its CMSD-Dynamic may tell `etp`, and its large cached
   * body is measured for it). `next`: called once an answer carrying the object has been handed
   * to the socket (the prefetch hook).
   */
  async function answerObject(
    req: FastifyRequest,
    reply: FastifyReply,
    title: string,
    file: string,
    traceparent: string | undefined,
    mayRetry: boolean,
    player = false,
    next?: () => void,
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
      const held: SliceLease[] = [];
      pieces = buf ? [buf] : await cache.cachedPieces(meta, ranges[0]!, 4, held);
      if (pieces) releaseWhenClosed(reply.raw, held);
      else releaseAll(held);
      // A slice that failed its checksum was dropped: this answer goes upstream after all.
      if (!pieces) tier = cache.tierFor(meta, ranges);
    }
    if (!pieces && tier === 'MISS' && !primed) {
      try {
        primed = await cache.prime(meta, ranges[0]!, traceparent);
      } catch (err) {
        if (err instanceof RepresentationChanged && mayRetry) return answerObject(req, reply, title, file, traceparent, false, player, next);
        return sendUpstreamError(reply, err);
      }
    }
    reply.code(plan.status).headers(plan.headers).header('x-cache', tier);
    const cmsd: string[] = [];
    pushCmsdHeaders(cmsd, plan.status, meta, file, svc.cmsd?.valueFor(req.socket.remoteAddress, player));
    for (let i = 0; i < cmsd.length; i += 2) reply.header(cmsd[i]!, cmsd[i + 1]);
    if (resolved.stale) reply.header('warning', '110 - "Response is Stale"');
    let sent: FastifyReply;
    const throughput = svc.cmsd?.throughput;
    if (plan.body.length === 0) sent = reply.send();
    else if (pieces && player && throughput !== undefined && sizeOf(pieces) >= MIN_MEASURED_BYTES) {
      // A player's large cached body: as a stream, so that the part its client paces is measured (its `etp`).
      const m = new PacedTransfer(reply.raw, sizeOf(pieces), req.socket.remoteAddress, throughput);
      sent = reply.send(measuredStream(pieces, reply.raw, m));
    } else if (pieces) sent = reply.send(pieces.length === 1 ? pieces[0] : bufferStream(pieces));
    else sent = reply.send(Readable.from(bodyOf(meta, plan.body, primed, traceparent), { objectMode: false, highWaterMark: 1 }));
    if (next !== undefined && (plan.status === 200 || plan.status === 206)) afterBodyHanded(reply.raw, next);
    return sent;
  }

  function sendUpstreamError(reply: FastifyReply, err: unknown): FastifyReply {
    const f = upstreamFailure(err);
    return sendError(reply, f.status, f.reason);
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
    const held: SliceLease[] = [];
    for (const part of plan.body) {
      if (part.kind === 'literal') body.push(part.data);
      else {
        const pieces = await cache.cachedPieces(meta, part.range, Infinity, held);
        if (!pieces) {
          releaseAll(held);
          return notCached();
        }
        body.push(...pieces);
      }
    }
    reply.code(plan.status).headers(plan.headers).header('x-cache', tier);
    releaseWhenClosed(reply.raw, held);
    return reply.send(body.length === 0 ? undefined : body.length === 1 ? body[0] : bufferStream(body));
  }

  async function* bodyOf(meta: CachedMeta, body: BodyPart[], primed: PrimedFetch | undefined, traceparent?: string) {
    for (const part of body) {
      if (part.kind === 'literal') yield part.data;
      else yield* cache.read(meta, part.range, primed, traceparent);
    }
  }
}

/**
 * Calls `then` once `res`'s body is with the socket: ended (a body in hand) or piping started (a
 * stream), whichever fastify does — it writes after reply.send returns — or the response closed.
 */
function afterBodyHanded(res: NodeJS.EventEmitter, then: () => void): void {
  const go = () => {
    res.off('pipe', go);
    res.off('prefinish', go);
    res.off('close', go);
    then();
  };
  res.once('pipe', go);
  res.once('prefinish', go);
  res.once('close', go);
}

function sizeOf(pieces: readonly Buffer[]): number {
  let n = 0;
  for (const p of pieces) n += p.length;
  return n;
}

/** A readable of buffers already in hand: pushed at once, no async iteration per piece. */
function bufferStream(pieces: Buffer[]): Readable {
  const s = new Readable({ read() {} });
  for (const p of pieces) s.push(p);
  s.push(null);
  return s;
}

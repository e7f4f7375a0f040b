import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { flushLogs, logRequestLine, loggedCmcdOf, type LoggedCmcd, type Logger } from './logger.js';
import { adminTokenFromEnv, isAuthorized } from './admin-auth.js';
import { requestTraceparent } from './trace.js';
import { ConnectionGuard, type ConnectionLimits } from './connection-guard.js';
import { DEFAULT_HTTP_LIMITS } from './config.js';
import { type ListenerServer, createListenerServer } from './listener-server.js';
import type { TlsMaterial } from './tls.js';

export interface AppOptions {
  logger: Logger;
  /** Extra headers on answers fastify gives before any hook runs (CORS on a public port). */
  frameworkErrorHeaders?: Record<string, string>;
  /** Logs one line per request at this level ('debug' keeps busy nodes quiet). */
  requestLogLevel?: 'info' | 'debug';
  /** Connection cap and timeouts of this port (`http` in the cluster file). Default DEFAULT_HTTP_LIMITS. */
  limits?: ConnectionLimits;
  /**
   * While this says so, requests get 503 with Retry-After instead of waiting on a loop that is
   * over its delay budget. Public ports only: admin ports must keep answering /health.
   */
  overloaded?: () => boolean;
  /**
   * A raw request listener in front of the framework: it answers the requests it claims
   * (returns true) without routing or hooks; the others go to fastify's routes. It never sees
   * a request fastify must refuse: on a refused connection, while overloaded or while closing.
   */
  front?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Serve HTTPS with this certificate (swappable later through `secureServer(app)`). */
  tls?: TlsMaterial;
  /** With `tls`: offer HTTP/2 in ALPN next to HTTP/1.1. */
  http2?: boolean;
}

/** Admin ports answer a few pollers and operators: a small cap of their own, apart from the public one. */
export const ADMIN_MAX_CONNECTIONS = 1024;

/**
 * Whether `front` answered the request. A listener outside the framework has no error handler
 * above it: a bug there must not take the process down. Before any header went out the route
 * answers instead (it knows the same request); after, the connection is closed.
 */
function claimedByFront(front: (req: IncomingMessage, res: ServerResponse) => boolean, req: IncomingMessage, res: ServerResponse, log: Logger): boolean {
  try {
    return front(req, res);
  } catch (err) {
    frontErrors++;
    // One line for the first and every thousandth: a bug hit by every request must not flood the log.
    if (frontErrors === 1 || frontErrors % 1000 === 0) log.error({ err, url: (req.url ?? '').split('?')[0], failures: frontErrors }, 'front path failed; the route answers');
    if (!res.headersSent) return false;
    res.destroy();
    return true;
  }
}
let frontErrors = 0;

/** An admin port's limits: the cluster file's timeouts, the admin cap. */
export function adminLimits(limits: ConnectionLimits): ConnectionLimits {
  return { ...limits, maxConnections: ADMIN_MAX_CONNECTIONS };
}

/**
 * A fastify instance with the conventions every ReelCDN port shares: a request id,
 * one log line per request (path without the query: tokens are never logged),
 * errors that never leak a stack, and no 500 for a client's mistake.
 */
export function createApp(opts: AppOptions): FastifyInstance {
  const limits = opts.limits ?? DEFAULT_HTTP_LIMITS;
  const front = opts.front;
  let guard: ConnectionGuard | undefined;
  let closing = false;
  const app = Fastify({
    logger: false,
    bodyLimit: 8 * 1024 * 1024,
    requestIdHeader: 'x-request-id',
    genReqId: nextRequestId,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // Only for the https:// in the URL listen() resolves to: the server is ours (below).
    ...(opts.tls ? { https: {} } : {}),
    // The server fastify would make (plain, TLS, or TLS with HTTP/2), with `front` before its routing.
    serverFactory: (handler) =>
      createListenerServer({ limits, tls: opts.tls, http2: opts.http2 }, front
        ? (req, res) => {
            if (closing || guard!.isRefused(req.socket) || overloaded?.() || !claimedByFront(front, req, res, opts.logger)) handler(req, res);
          }
        : handler) as unknown as import('node:http').Server,
    routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: 2048 },
    // A URL fastify cannot even route (bad percent-encoding) is still a clear 400 with our headers.
    frameworkErrors: (err, _req, res) => {
      const reply = res as unknown as FastifyReply;
      reply
        .code(400)
        .headers(opts.frameworkErrorHeaders ?? {})
        .type('text/plain; charset=utf-8')
        .send(`bad request: ${err.message}\n`);
    },
  });
  // fastify answers 503 to requests arriving once close() began: those must reach it.
  // server.close() closes the connections idle at that moment only: a keep-alive connection
  // whose answer finishes later would hold the drain for keepAliveTimeout, so idle ones are
  // swept until the server is closed.
  let sweep: NodeJS.Timeout | undefined;
  app.addHook('preClose', (done) => {
    closing = true;
    sweep = setInterval(() => app.server.closeIdleConnections(), 50);
    sweep.unref();
    done();
  });
  app.addHook('onClose', (_app, done) => {
    clearInterval(sweep);
    done();
  });
  const level = opts.requestLogLevel ?? 'info';
  const log = opts.logger;
  guard = new ConnectionGuard(app.server, limits, { logger: log, headers: opts.frameworkErrorHeaders, secure: opts.tls !== undefined });
  const retryAfter = String(limits.retryAfterSec);
  const overloaded = opts.overloaded;

  // First hook of every route: shedding must cost less than the work it spares.
  app.addHook('onRequest', (req, reply, done) => {
    if (guard!.isRefused(req.raw.socket)) {
      // Already answered 503 on the raw socket; nothing more goes out on it.
      reply.hijack();
      req.raw.socket.destroy();
      return;
    }
    if (overloaded?.()) {
      reply.code(503).headers(opts.frameworkErrorHeaders ?? {}).header('retry-after', retryAfter);
      // HTTP/2 has no Connection header (node drops it with a warning): the stream just ends.
      if (req.raw.httpVersionMajor === 1) reply.header('connection', 'close');
      reply.type('text/plain; charset=utf-8').send('overloaded\n');
      return;
    }
    done();
  });

  app.addHook('onResponse', async (req, reply) => {
    if (!log.isLevelEnabled(level)) return;
    logAccess(
      log,
      level,
      req.id,
      req.method,
      req.url,
      req.headers.range,
      reply.statusCode,
      reply.getHeader('x-cache') as string | undefined,
      Number(reply.getHeader('content-length') ?? 0),
      reply.elapsedTime,
      req.socket.remoteAddress,
      // From the header or the `tp` query parameter, else the one this answer started (steering).
      requestTraceparent(req.headers, req.url) ?? (reply.getHeader('traceparent') as string | undefined),
      loggedCmcdOf(req.raw),
    );
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; expose?: boolean }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    const url = req.url.split('?')[0];
    // An expected failure (an upstream down, say) is told as it is, and logged without a stack.
    if (err.expose) log.warn({ reqId: req.id, url, status, err: err.message }, 'request failed');
    else if (status >= 500) log.error({ err, reqId: req.id, url }, 'request failed');
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    reply
      .code(status)
      .type('text/plain; charset=utf-8')
      .send(status >= 500 && !err.expose ? 'internal error\n' : `${err.message}\n`);
  });

  app.setNotFoundHandler((_req, reply) => {
    reply.code(404).type('text/plain; charset=utf-8').send('not found\n');
  });

  return app;
}

/**
 * The access-log line of one request, whoever answered it (fastify's routes or a `front`
 * listener): the path without the query (tokens are never logged), `ms` to the answer's end.
 */
export function logAccess(
  log: Logger,
  level: 'info' | 'debug',
  reqId: string,
  method: string,
  url: string,
  range: string | undefined,
  status: number,
  tier: string | undefined,
  bytes: number,
  elapsedMs: number,
  remote: string | undefined,
  traceparent: string | undefined,
  /** What the request's CMCD said, as the route that read it noted (noteLoggedCmcd). */
  cmcd?: LoggedCmcd,
): void {
  const q = url.indexOf('?');
  logRequestLine(log, level, reqId, method, q < 0 ? url : url.slice(0, q), range, status, tier, bytes, Math.round(elapsedMs * 10) / 10, remote, traceparent, false, cmcd);
}

// Request ids: a random per-process prefix and a counter — unique across a cluster's logs,
// and far cheaper per request than a UUID.
const REQ_PREFIX = randomUUID().slice(0, 8);
let reqCounter = 0;
/** A request's id: the client's X-Request-Id if it sent one (as fastify takes it), else a new one. */
export function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && given !== '' ? given : nextRequestId();
}

function nextRequestId(): string {
  reqCounter = (reqCounter + 1) % Number.MAX_SAFE_INTEGER;
  return `${REQ_PREFIX}-${reqCounter.toString(36)}`;
}

/** The URL an app listens on (after listen()), https:// when it serves TLS. */
export function boundUrl(app: FastifyInstance): string {
  const a = app.server.address() as import('node:net').AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return `${listenerServer(app).tlsSerial === undefined ? 'http' : 'https'}://${host}:${a.port}`;
}

/** The server under an app, to swap its certificate (reload) or read its connections. */
export function listenerServer(app: FastifyInstance): ListenerServer {
  return app.server as unknown as ListenerServer;
}

/** Sends a short plain-text error: one line, the reason. */
export function sendError(reply: FastifyReply, status: number, reason: string, headers: Record<string, string> = {}): FastifyReply {
  return reply.code(status).headers(headers).type('text/plain; charset=utf-8').send(`${reason}\n`);
}

/**
 * An onRequest guard for admin routes: the bearer token from REELCDN_ADMIN_TOKEN,
 * except for the paths the cluster file made open. An open path ending in `/` opens
 * everything under it (static assets such as the dashboard's page, which must load
 * before the user has typed the token); dot segments never match a prefix.
 */
export function adminGuard(openPaths: Set<string>, token = adminTokenFromEnv()) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const path = req.url.split('?')[0]!;
    if (openPaths.has(path)) return;
    if (!/(^|\/)(\.|%2e)/i.test(path)) {
      for (const p of openPaths) if (p.endsWith('/') && path.startsWith(p)) return;
    }
    if (!isAuthorized(req.headers.authorization, token)) {
      reply.header('www-authenticate', 'Bearer realm="reelcdn-admin"');
      return sendError(reply, 401, token ? 'admin token required' : 'admin token not configured (set REELCDN_ADMIN_TOKEN)');
    }
  };
}

/** Closes a server on SIGTERM/SIGINT: stop accepting, let in-flight answers finish, then exit 0. */
export function drainOnSignal(log: Logger, close: () => Promise<void>, graceMs = 30_000): void {
  let closing = false;
  const onSignal = (sig: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal: sig }, 'draining');
    const force = setTimeout(() => {
      log.warn('drain timed out, exiting');
      process.exit(0);
    }, graceMs);
    force.unref();
    close()
      .then(async () => {
        log.info('drained, exiting');
        // Every access-log line out before the process goes (the exit handler would write
        // those not yet handed to write(2), but not one a write still has in flight).
        await flushLogs();
        process.exit(0);
      })
      .catch((err) => {
        log.error({ err }, 'error while draining');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  // Children of `reelcdn demo` hold a pipe from their parent: when it dies, however it dies, they drain too.
  if (process.env.REELCDN_EXIT_WITH_PARENT === '1') {
    process.stdin.on('close', () => onSignal('parent exited'));
    process.stdin.on('end', () => onSignal('parent exited'));
    process.stdin.resume();
  }
}

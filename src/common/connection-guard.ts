import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { admitConnection } from './admission.js';
import type { Logger } from './logger.js';

/** The HTTP limits of one listening port (see `http` in the cluster file). */
export interface ConnectionLimits {
  /** Open connections this port keeps; past it, idle keep-alive ones are shed, then newcomers refused. */
  maxConnections: number;
  /** Time a client has to send a request's headers (slowloris), ms. */
  headersTimeoutMs: number;
  /** Time a client has to send a whole request, ms. */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection is kept, ms. */
  keepAliveTimeoutMs: number;
  /** Retry-After of a refused connection or a shed request, seconds. */
  retryAfterSec: number;
}

export interface GuardOptions {
  logger?: Logger;
  /**
   * The server speaks TLS: connections are counted once their handshake is done (the socket a
   * request sees is the TLS one), and a refused HTTP/2 connection is closed without an answer.
   */
  secure?: boolean;
  /** Extra headers on the 503 of a refused connection (CORS on a public port, so players can read it). */
  headers?: Record<string, string>;
}

/**
 * Caps a server's open connections. Tracks which are idle between requests (in the order they
 * became idle) so the longest-idle one is shed first when a newcomer arrives at the cap; with
 * none idle, the newcomer gets a 503 with Retry-After and is closed.
 */
export class ConnectionGuard {
  private readonly open = new Set<Socket>();
  /** Keep-alive connections between requests, longest idle first (Set keeps insertion order). */
  private readonly idle = new Set<Socket>();
  private readonly inflight = new Map<Socket, number>();
  private readonly refusedSockets = new WeakSet<Socket>();
  private readonly refusal: string;
  refused = 0;
  shed = 0;

  constructor(
    server: EventEmitter,
    private readonly limits: ConnectionLimits,
    private readonly opts: GuardOptions = {},
  ) {
    const body = 'too many connections\n';
    const extra = Object.entries(opts.headers ?? {})
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    this.refusal =
      `HTTP/1.1 503 Service Unavailable\r\nRetry-After: ${limits.retryAfterSec}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`;
    // Before http's own listener, so a refused socket is known before any request on it is parsed.
    server.prependListener(opts.secure ? 'secureConnection' : 'connection', (socket: Socket) => this.onConnection(socket));
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
  }

  /** Connections counted against the cap now. */
  get connections(): number {
    return this.open.size;
  }

  /** Whether a request arrived on a connection already refused (it must not be served). */
  isRefused(socket: Socket): boolean {
    return this.refusedSockets.has(socket);
  }

  private onConnection(socket: Socket): void {
    const verdict = admitConnection(this.open.size, this.limits.maxConnections, this.idle.values().next().value);
    if (verdict.kind === 'refuse') {
      this.refused++;
      this.refusedSockets.add(socket);
      socket.on('error', () => {});
      // An HTTP/2 client cannot read an HTTP/1 answer: it sees the connection closed.
      if ((socket as Socket & { alpnProtocol?: string | false }).alpnProtocol === 'h2') socket.destroy();
      else socket.end(this.refusal);
      // A client that never reads its answer does not hold the socket open.
      setTimeout(() => socket.destroy(), 2000).unref();
      if (this.refused === 1 || this.refused % 1000 === 0) {
        this.opts.logger?.warn({ refused: this.refused, open: this.open.size, max: this.limits.maxConnections }, 'connection cap reached: refusing');
      }
      return;
    }
    if (verdict.kind === 'shed-idle') {
      this.shed++;
      this.forget(verdict.victim);
      verdict.victim.destroy();
    }
    this.open.add(socket);
    socket.once('close', () => this.forget(socket));
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    if (!this.open.has(socket)) return;
    this.idle.delete(socket);
    this.inflight.set(socket, (this.inflight.get(socket) ?? 0) + 1);
    res.once('close', () => {
      const n = (this.inflight.get(socket) ?? 1) - 1;
      if (n > 0) this.inflight.set(socket, n);
      else {
        this.inflight.delete(socket);
        if (this.open.has(socket) && !socket.destroyed) this.idle.add(socket);
      }
    });
  }

  private forget(socket: Socket): void {
    this.open.delete(socket);
    this.idle.delete(socket);
    this.inflight.delete(socket);
  }
}

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
   * The server speaks TLS: a newcomer past the cap is closed before its handshake (no answer
   * can be read before one), and a connection is closed when no request follows its handshake.
   */
  secure?: boolean;
  /** Extra headers on the 503 of a refused connection (CORS on a public port, so players can read it). */
  headers?: Record<string, string>;
}

/** What the guard knows of one connection; hung on the socket, so a request finds it (even through an h2 stream's socket proxy). */
interface Conn {
  socket: Socket;
  /** An HTTP/2 connection's session: it owns the socket's handle, so closing it is closing the connection. */
  session?: { destroy(): void };
  inflight: number;
  /** Until a first request arrives on a TLS connection: it is closed after headersTimeout. */
  firstRequest?: NodeJS.Timeout;
}

const CONN = Symbol('reelcdn.connection');
type Tagged = Socket & { [CONN]?: Conn; alpnProtocol?: string | false; _parent?: Socket };
/** The connection a response is counted on, until it closes. */
type TaggedResponse = ServerResponse & { [CONN]?: Conn };

/**
 * Caps a server's open connections. Tracks which are idle between requests (in the order they
 * became idle) so the longest-idle one is shed first when a newcomer arrives at the cap; with
 * none idle, the newcomer gets a 503 with Retry-After and is closed.
 *
 * Over TLS a connection is counted from its first byte: sockets still in their handshake count
 * against the cap (a newcomer past it is closed before any handshake work), a handshake has
 * headersTimeout to finish (the server's handshakeTimeout), and a connection that sends no
 * request within headersTimeout of its handshake is closed — node's own header timeout only
 * starts with a request's first bytes. HTTP/2 sessions are idle while no stream is open.
 */
export class ConnectionGuard {
  private readonly open = new Set<Socket>();
  /** TLS sockets accepted and still in their handshake. */
  private readonly handshaking = new Set<Socket>();
  /** Keep-alive connections between requests, longest idle first (Set keeps insertion order). */
  private readonly idle = new Set<Socket>();
  private readonly refusedSockets = new WeakSet<Socket>();
  private readonly refusal: string;
  refused = 0;
  shed = 0;
  /** Every response's 'close' listener: one function, no closure per request. */
  private readonly responseClosed: (this: TaggedResponse) => void;

  constructor(
    server: EventEmitter,
    private readonly limits: ConnectionLimits,
    private readonly opts: GuardOptions = {},
  ) {
    const guard = this;
    this.responseClosed = function (this: TaggedResponse) {
      const conn = this[CONN];
      if (conn === undefined) return;
      this[CONN] = undefined;
      conn.inflight--;
      if (conn.inflight === 0 && guard.open.has(conn.socket) && !conn.socket.destroyed) guard.idle.add(conn.socket);
    };
    const body = 'too many connections\n';
    const extra = Object.entries(opts.headers ?? {})
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    this.refusal =
      `HTTP/1.1 503 Service Unavailable\r\nRetry-After: ${limits.retryAfterSec}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`;
    // Before the server's own listeners, so a refused socket is known before any request on it is parsed.
    if (opts.secure) {
      server.prependListener('connection', (socket: Socket) => this.onTcp(socket));
      server.prependListener('secureConnection', (socket: Socket) => this.onSecure(socket));
    } else {
      server.prependListener('connection', (socket: Socket) => this.onPlain(socket));
    }
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
    server.on('session', (session: { socket: Tagged; destroy(): void }) => {
      const conn = session.socket[CONN];
      if (conn !== undefined) conn.session = session;
    });
  }

  /** Connections counted against the cap now (TLS: handshaking ones too). */
  get connections(): number {
    return this.open.size + this.handshaking.size;
  }

  /** Whether a request arrived on a connection already refused (it must not be served). */
  isRefused(socket: Socket): boolean {
    return this.refusedSockets.has(socket);
  }

  /** The cap's verdict for a newcomer; false: refused (the caller answers it), true: admitted. */
  private admit(): boolean {
    const verdict = admitConnection(this.connections, this.limits.maxConnections, this.idle.values().next().value);
    if (verdict.kind === 'refuse') {
      this.refused++;
      if (this.refused === 1 || this.refused % 1000 === 0) {
        this.opts.logger?.warn({ refused: this.refused, open: this.connections, max: this.limits.maxConnections }, 'connection cap reached: refusing');
      }
      return false;
    }
    if (verdict.kind === 'shed-idle') {
      this.shed++;
      const victim = verdict.victim as Tagged;
      this.forget(victim);
      close(victim);
    }
    return true;
  }

  private onPlain(socket: Socket): void {
    if (!this.admit()) {
      this.refuse(socket);
      return;
    }
    this.track(socket);
  }

  /** A TLS connection's first byte: refused before the handshake costs anything, else counted while it shakes hands. */
  private onTcp(socket: Socket): void {
    if (!this.admit()) {
      this.refusedSockets.add(socket);
      socket.destroy();
      return;
    }
    this.handshaking.add(socket);
    socket.once('close', () => this.handshaking.delete(socket));
  }

  private onSecure(tlsSocket: Tagged): void {
    // node's TLSSocket keeps the TCP socket it wraps as _parent; no public name for it.
    if (tlsSocket._parent !== undefined) this.handshaking.delete(tlsSocket._parent);
    const conn = this.track(tlsSocket);
    conn.firstRequest = setTimeout(() => {
      if (this.open.has(tlsSocket)) close(tlsSocket);
    }, this.limits.headersTimeoutMs);
    conn.firstRequest.unref();
  }

  private track(socket: Tagged): Conn {
    const conn: Conn = { socket, inflight: 0 };
    socket[CONN] = conn;
    this.open.add(socket);
    socket.once('close', () => this.forget(socket));
    return conn;
  }

  private refuse(socket: Socket): void {
    this.refusedSockets.add(socket);
    socket.on('error', () => {});
    socket.end(this.refusal);
    // A client that never reads its answer does not hold the socket open.
    setTimeout(() => socket.destroy(), 2000).unref();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    // An HTTP/2 request's socket is a proxy of the session's: the tag reads through it.
    const conn = (req.socket as Tagged)[CONN];
    if (conn === undefined || !this.open.has(conn.socket)) return;
    if (conn.firstRequest !== undefined) {
      clearTimeout(conn.firstRequest);
      conn.firstRequest = undefined;
    }
    this.idle.delete(conn.socket);
    conn.inflight++;
    (res as TaggedResponse)[CONN] = conn;
    res.on('close', this.responseClosed); // emitted once
  }

  private forget(socket: Tagged): void {
    const conn = socket[CONN];
    if (conn?.firstRequest !== undefined) clearTimeout(conn.firstRequest);
    this.open.delete(socket);
    this.idle.delete(socket);
  }
}

/** Closes a connection now: through its HTTP/2 session if it has one (the session holds the socket's handle). */
function close(socket: Tagged): void {
  const session = socket[CONN]?.session;
  if (session !== undefined) session.destroy();
  else socket.destroy();
}

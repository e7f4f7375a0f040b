import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type Http2Session, createSecureServer } from 'node:http2';
import type { Socket } from 'node:net';
import type { ConnectionLimits } from './connection-guard.js';
import { type TlsMaterial, secureContextOptions } from './tls.js';

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

export interface ListenerServerOptions {
  limits: ConnectionLimits;
  tls?: TlsMaterial;
  /** With `tls`: ALPN offers h2 before http/1.1; clients without ALPN get HTTP/1.1. */
  http2?: boolean;
}

/**
 * The node server under a port: plain HTTP/1.1, HTTPS, or HTTPS with HTTP/2 and HTTP/1.1 on one
 * port. All three answer through one (req, res) listener; HTTP/2 requests arrive as node's
 * compatibility objects. `closeIdleConnections()` works on every kind (fastify calls it on close).
 */
export type ListenerServer = Server & {
  /** Serial of the certificate new connections get (TLS only). */
  tlsSerial?: string;
  /** What new connections get (TLS only): swapCertificateIfChanged compares against it. */
  tlsMaterial?: TlsMaterial;
};

export function createListenerServer(opts: ListenerServerOptions, listener: RequestListener): ListenerServer {
  const { limits, tls } = opts;
  const http1 = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Node checks header and request timeouts only this often (30 s by default): a trickled
    // header would outlive headersTimeout by up to that much.
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
  };
  // A client that never finishes its handshake holds a socket like one that never sends its headers.
  const handshakeTimeout = limits.headersTimeoutMs;
  let server: ListenerServer;
  if (tls === undefined) {
    server = createServer(http1, listener) as ListenerServer;
  } else if (!opts.http2) {
    server = createHttpsServer({ ...http1, ...secureContextOptions(tls), handshakeTimeout }, listener) as unknown as ListenerServer;
  } else {
    server = http2Server({ ...secureContextOptions(tls), handshakeTimeout }, http1, limits, listener);
  }
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.headersTimeout = limits.headersTimeoutMs;
  if (tls !== undefined) {
    server.tlsSerial = tls.serial;
    server.tlsMaterial = tls;
  }
  return server;
}

/**
 * New connections get this certificate (and CA); open ones keep theirs. Nothing is dropped.
 * Whether client certificates are required is fixed at start (a server option, not a context one).
 */
export function swapCertificate(server: ListenerServer, tls: TlsMaterial): void {
  (server as unknown as import('node:tls').Server).setSecureContext(secureContextOptions(tls));
  server.tlsSerial = tls.serial;
  server.tlsMaterial = tls;
}

/**
 * A reload's certificate swap: swapCertificate only when `next` holds other bytes (certificate,
 * key or CA) than the listener serves. A new secure context comes with new session-ticket keys,
 * so swapping on every reload would make every client do a full handshake again. A plain-HTTP
 * listener (its URL's scheme is fixed until a restart), or no `next`, swaps nothing. Whether it swapped.
 */
export function swapCertificateIfChanged(server: ListenerServer, next: TlsMaterial | undefined): boolean {
  if (next === undefined || server.tlsSerial === undefined || sameTlsMaterial(server.tlsMaterial, next)) return false;
  swapCertificate(server, next);
  return true;
}

/** Whether two materials hold the same certificate, key and CA bytes (a file re-issued in place is another). */
export function sameTlsMaterial(a: TlsMaterial | undefined, b: TlsMaterial | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const ca = a.ca === undefined || b.ca === undefined ? a.ca === b.ca : a.ca.equals(b.ca);
  return ca && a.cert.equals(b.cert) && a.key.equals(b.key) && a.requireClientCert === b.requireClientCert;
}

function http2Server(secure: ReturnType<typeof secureContextOptions> & { handshakeTimeout: number }, http1: object, limits: ConnectionLimits, listener: RequestListener): ListenerServer {
  const server = createSecureServer({ ...secure, ...http1, allowHTTP1: true }, listener as never);
  // HTTP/1.1 connections on this server, with their requests in flight: node's http2 server has
  // no closeIdleConnections of its own, and a drain must not wait out idle keep-alives.
  const inflight = new Map<Socket, number>();
  const sessions = new Set<Http2Session>();
  server.prependListener('secureConnection', (socket: Socket & { alpnProtocol?: string | false }) => {
    if (socket.alpnProtocol === 'h2') return;
    inflight.set(socket, 0);
    socket.once('close', () => inflight.delete(socket));
  });
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    if (req.httpVersionMajor !== 1 || !inflight.has(socket)) return;
    inflight.set(socket, inflight.get(socket)! + 1);
    res.once('close', () => {
      if (inflight.has(socket)) inflight.set(socket, inflight.get(socket)! - 1);
    });
  });
  server.on('session', (session: Http2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    // An idle session is closed like an idle keep-alive connection.
    session.setTimeout(limits.keepAliveTimeoutMs, () => session.close());
  });
  const s = server as unknown as ListenerServer;
  s.closeIdleConnections = () => {
    for (const [socket, n] of inflight) if (n === 0) socket.destroy();
    // GOAWAY: streams under way finish, no new ones start.
    for (const session of sessions) session.close();
  };
  return s;
}

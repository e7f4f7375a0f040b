import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { contentTypeFor } from '../../src/common/mime.js';
import { planResponse, requestView } from '../../src/common/response-plan.js';

/** How the test origin misbehaves for a path (set per test). */
export interface Misbehaviour {
  status?: number;
  delayMs?: number;
  /** Sends headers then stalls the body forever. */
  hangBody?: boolean;
  /** Sends this many body bytes then closes the socket. */
  truncateAfter?: number;
  /** Sends this many body bytes then stalls forever (a hang mid-slice). */
  hangAfter?: number;
  cacheControl?: string;
  etag?: string;
  noRange?: boolean;
}

export interface RecordedRequest {
  path: string;
  /** The query without its '?' ('' when none): where an edge's token to the origin is. */
  query: string;
  range?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  traceparent?: string;
}

/**
 * A real HTTP origin on 127.0.0.1:0 serving files from `root` at /o/{title}/{file},
 * counting every request, slowed or broken per path on demand (`x-test-delay-ms` header too).
 */
export class TestOrigin {
  readonly requests: RecordedRequest[] = [];
  readonly behaviour = new Map<string, Misbehaviour>();
  /** TCP connections accepted since start (TLS: handshakes completed). */
  connections = 0;
  /** Over TLS: the serial of each connection's client certificate (undefined: none shown). */
  readonly clientCertificates: (string | undefined)[] = [];
  private server?: Server;
  url = '';

  constructor(private readonly root: string) {}

  /** `tls`: serve HTTPS with this certificate and key (PEM), and ask for client certificates (recorded). */
  async start(tls?: { cert: string | Buffer; key: string | Buffer }): Promise<string> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    this.server = tls ? createHttpsServer({ ...tls, requestCert: true, rejectUnauthorized: false }, handler) : createServer(handler);
    this.server.on(tls ? 'secureConnection' : 'connection', (socket: TLSSocket) => {
      this.connections++;
      if (tls) this.clientCertificates.push(socket.getPeerCertificate()?.serialNumber);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `${tls ? 'https' : 'http'}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  countFor(path: string, pred: (r: RecordedRequest) => boolean = () => true): number {
    return this.requests.filter((r) => r.path === path && pred(r)).length;
  }

  reset(): void {
    this.requests.length = 0;
    this.behaviour.clear();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const h = req.headers;
    this.requests.push({
      path,
      query: q < 0 ? '' : url.slice(q + 1),
      range: h.range,
      ifNoneMatch: h['if-none-match'] as string | undefined,
      ifModifiedSince: h['if-modified-since'] as string | undefined,
      traceparent: h.traceparent as string | undefined,
    });
    const b = this.behaviour.get(path) ?? {};
    const delay = b.delayMs ?? Number(h['x-test-delay-ms'] ?? 0);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    if (b.status) {
      res.writeHead(b.status, { 'content-type': 'text/plain' }).end('test origin says no\n');
      return;
    }
    if (!path.startsWith('/o/')) {
      res.writeHead(404).end();
      return;
    }
    const file = join(this.root, decodeURIComponent(path.slice(3)));
    let size: number;
    let mtime: Date;
    try {
      const st = statSync(file);
      if (!st.isFile()) throw new Error('not a file');
      size = st.size;
      mtime = st.mtime;
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no such file\n');
      return;
    }
    const meta = {
      size,
      contentType: contentTypeFor(file),
      etag: b.etag ?? `"${size.toString(16)}-${Math.floor(mtime.getTime() / 1000).toString(16)}"`,
      lastModified: mtime.toUTCString(),
      cacheControl: b.cacheControl ?? 'public, max-age=31536000, immutable',
    };
    const view = requestView(req.method ?? 'GET', h);
    if (b.noRange) view.range = undefined;
    const plan = planResponse(view, meta);
    res.writeHead(plan.status, plan.headers);
    if (b.hangBody) {
      res.flushHeaders();
      return; // never ends; the edge's body timeout must fire
    }
    let sent = 0;
    for (const part of plan.body) {
      if (part.kind === 'literal') {
        res.write(part.data);
        continue;
      }
      const stream = createReadStream(file, { start: part.range.start, end: part.range.end - 1 });
      for await (const chunk of stream) {
        if (b.hangAfter !== undefined && sent + chunk.length > b.hangAfter) {
          res.write(chunk.subarray(0, b.hangAfter - sent));
          return; // headers and some bytes out, the rest never comes
        }
        if (b.truncateAfter !== undefined && sent + chunk.length > b.truncateAfter) {
          res.write(chunk.subarray(0, b.truncateAfter - sent));
          res.socket?.destroy();
          return;
        }
        sent += chunk.length;
        if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
      }
    }
    res.end();
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}

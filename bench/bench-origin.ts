/**
 * The benchmark's origin: a plain node:http static range server on 127.0.0.1, serving
 * `root/{title}/{file}` at `/o/{title}/{file}` with strong validators and a long max-age so
 * that every cache in front of it (ReelCDN, nginx proxy_cache, Varnish) may keep what it gets.
 * It checks no token, unlike ReelCDN's origin (which serves edges only): nginx and Varnish fetch
 * `/o/…` unsigned, and what is measured is the cache in front, so all three read the same open
 * origin (the edge's origin token is ignored here, as any query is).
 *
 * Run as its own process so that it does not share an event loop (or a CPU) with autocannon:
 *   node dist/bench/bench-origin.js --root DIR [--port N]
 * prints `listening http://127.0.0.1:PORT` on stdout once bound.
 */
import { createReadStream, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { contentTypeFor } from '../src/common/mime.js';
import { type ObjectMeta, planResponse, requestView } from '../src/common/response-plan.js';

interface FileInfo {
  path: string;
  meta: ObjectMeta;
}

export interface BenchOrigin {
  url: string;
  /** Requests answered so far (a sanity check that hot workloads never reach the origin). */
  requests(): number;
  close(): Promise<void>;
}

export async function startBenchOrigin(root: string, port = 0): Promise<BenchOrigin> {
  // The content is generated once and never changes while the bench runs: stat once.
  const infos = new Map<string, FileInfo | null>();
  let count = 0;

  function info(urlPath: string): FileInfo | null {
    let got = infos.get(urlPath);
    if (got !== undefined) return got;
    got = null;
    if (urlPath.startsWith('/o/') && !urlPath.includes('..')) {
      const path = join(root, decodeURIComponent(urlPath.slice(3)));
      try {
        const st = statSync(path);
        if (st.isFile()) {
          got = {
            path,
            meta: {
              size: st.size,
              contentType: contentTypeFor(path),
              etag: `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`,
              lastModified: st.mtime.toUTCString(),
              cacheControl: 'public, max-age=86400',
            },
          };
        }
      } catch {
        got = null;
      }
    }
    infos.set(urlPath, got);
    return got;
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const q = (req.url ?? '/').indexOf('?');
    const urlPath = q < 0 ? (req.url ?? '/') : req.url!.slice(0, q);
    if (urlPath === '/_bench/requests') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`${count}\n`);
      return;
    }
    count++;
    const f = info(urlPath);
    if (!f) {
      res.writeHead(404, { 'content-type': 'text/plain', 'content-length': '10' }).end('not found\n');
      return;
    }
    const plan = planResponse(requestView(req.method ?? 'GET', req.headers), f.meta);
    res.writeHead(plan.status, plan.headers);
    const parts = plan.body;
    if (parts.length === 0) {
      res.end();
      return;
    }
    let i = 0;
    const next = (): void => {
      const part = parts[i++];
      if (!part) {
        res.end();
        return;
      }
      if (part.kind === 'literal') {
        res.write(part.data);
        next();
        return;
      }
      const s = createReadStream(f.path, { start: part.range.start, end: part.range.end - 1, highWaterMark: 1 << 20 });
      s.on('error', () => res.destroy());
      s.on('end', next);
      s.pipe(res, { end: false });
    };
    next();
  }

  const server: Server = createServer({ keepAliveTimeout: 60_000 }, handle);
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', ok);
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests: () => count,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

// Run as a process: `node dist/bench/bench-origin.js --root DIR [--port N]`.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { values } = parseArgs({ options: { root: { type: 'string' }, port: { type: 'string' } } });
  if (!values.root) {
    process.stderr.write('usage: bench-origin --root DIR [--port N]\n');
    process.exit(2);
  }
  const origin = await startBenchOrigin(resolve(values.root), Number(values.port ?? 0));
  process.stdout.write(`listening ${origin.url}\n`);
  const stop = () => void origin.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Parent gone (killed without cleanup): do not linger.
  process.stdin.on('end', stop);
  process.stdin.resume();
}

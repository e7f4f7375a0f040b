/**
 * The client's ceiling: a bare `node:http` server that answers every request with the same
 * Buffer (no routing, no cache, no token check). The client measured against it, on the same
 * cores and connections as against the real servers, shows how far the client itself can go;
 * the server's CPU per answer is Node's own floor for that answer.
 *
 *   node dist/bench/edge/bare-server.js --bytes N [--port P --workers W]
 *
 * prints `listening http://127.0.0.1:PORT` once every process is bound. With W > 1 it starts
 * W - 1 more copies of itself on the same port (`reusePort`: the kernel spreads connections).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { bytes: { type: 'string' }, port: { type: 'string' }, workers: { type: 'string' } } });
const bytes = Number(values.bytes);
const workers = Number(values.workers ?? 1);
if (!Number.isInteger(bytes) || bytes <= 0 || !Number.isInteger(workers) || workers < 1) {
  process.stderr.write('usage: bare-server --bytes N [--port P] [--workers W]\n');
  process.exit(2);
}

const body = Buffer.alloc(bytes, 0x42);
const headers = { 'content-type': 'application/octet-stream', 'content-length': String(bytes) };
const server = createServer({ keepAliveTimeout: 60_000 }, (_req, res) => {
  res.writeHead(200, headers);
  res.end(body);
});

const port = Number(values.port ?? 0);
await new Promise<void>((ok, fail) => {
  server.once('error', fail);
  server.listen({ port, host: '127.0.0.1', reusePort: workers > 1 || port > 0, backlog: 4096 }, ok);
});
const bound = (server.address() as AddressInfo).port;

const copies: ChildProcess[] = [];
for (let w = 1; w < workers; w++) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--bytes', String(bytes), '--port', String(bound)], { stdio: ['pipe', 'pipe', 'inherit'] });
  copies.push(child);
  await new Promise<void>((ok, fail) => {
    child.stdout!.once('data', () => ok());
    child.once('exit', (code) => fail(new Error(`bare-server copy exited (${code})`)));
  });
}

process.stdout.write(`listening http://127.0.0.1:${bound}\n`);
const stop = () => {
  for (const c of copies) c.kill('SIGTERM');
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Parent gone (killed without cleanup): do not linger.
process.stdin.on('end', stop);
process.stdin.resume();

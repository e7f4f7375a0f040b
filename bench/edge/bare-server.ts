/**
 * The client's ceiling: a bare `node:http` server that answers every request with the same
 * Buffer (no routing, no cache, no token check). The client measured against it, on the same
 * cores and connections as against the real servers, shows how far the client itself can go;
 * the server's CPU per answer is Node's own floor for that answer.
 *
 *   node dist/bench/edge/bare-server.js --bytes N [--port P --workers W] [--file PATH] [--cert F --key F]
 *
 * With `--file`, every answer is read from PATH (one open descriptor, one positional read into a
 * reused buffer, as the edge's disk hits are) before it is sent: Node's floor for a disk hit,
 * which the Buffer alone is not. With `--cert` and `--key` it is a node:https server (HTTP/1.1 over
 * TLS; the process's TLS defaults, e.g. `--tls-cipher-list`, apply): the ceiling of the HTTPS rows.
 * prints `listening http://127.0.0.1:PORT` once every process is bound. With W > 1 it starts
 * W - 1 more copies of itself on the same port (`reusePort`: the kernel spreads connections).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { openSync, read, readFileSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { bytes: { type: 'string' }, port: { type: 'string' }, workers: { type: 'string' }, file: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' } },
});
const bytes = Number(values.bytes);
const workers = Number(values.workers ?? 1);
if (!Number.isInteger(bytes) || bytes <= 0 || !Number.isInteger(workers) || workers < 1 || (values.cert === undefined) !== (values.key === undefined)) {
  process.stderr.write('usage: bare-server --bytes N [--port P] [--workers W] [--file PATH] [--cert F --key F]\n');
  process.exit(2);
}

const body = Buffer.alloc(bytes, 0x42);
const headers = { 'content-type': 'application/octet-stream', 'content-length': String(bytes) };
const fd = values.file ? openSync(values.file, 'r') : undefined;
const spare: Buffer[] = [];
const answer = (_req: IncomingMessage, res: ServerResponse) => {
  if (fd === undefined) {
    res.writeHead(200, headers);
    res.end(body);
    return;
  }
  const buf = spare.pop() ?? Buffer.allocUnsafeSlow(bytes);
  read(fd, buf, 0, bytes, 0, (err) => {
    if (err) {
      res.writeHead(500).end();
      return;
    }
    res.once('close', () => spare.push(buf));
    res.writeHead(200, headers);
    res.end(buf);
  });
};
const tls = values.cert !== undefined ? { cert: readFileSync(values.cert), key: readFileSync(values.key!) } : undefined;
const server = tls ? createHttpsServer({ keepAliveTimeout: 60_000, ...tls }, answer) : createServer({ keepAliveTimeout: 60_000 }, answer);

const port = Number(values.port ?? 0);
await new Promise<void>((ok, fail) => {
  server.once('error', fail);
  server.listen({ port, host: '127.0.0.1', reusePort: workers > 1 || port > 0, backlog: 4096 }, ok);
});
const bound = (server.address() as AddressInfo).port;

const copies: ChildProcess[] = [];
for (let w = 1; w < workers; w++) {
  const args = ['--bytes', String(bytes), '--port', String(bound), ...(values.file ? ['--file', values.file] : []), ...(tls ? ['--cert', values.cert!, '--key', values.key!] : [])];
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  copies.push(child);
  await new Promise<void>((ok, fail) => {
    child.stdout!.once('data', () => ok());
    child.once('exit', (code) => fail(new Error(`bare-server copy exited (${code})`)));
  });
}

process.stdout.write(`listening ${tls ? 'https' : 'http'}://127.0.0.1:${bound}\n`);
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

/**
 * The servers the edge benchmark measures, each a child process on a loopback port in front of
 * the same bench origin: a real ReelCDN edge (`reelcdn edge`, as deployed), nginx as a slicing
 * proxy cache, Varnish with malloc or file storage, and the bare node:http server that gives the
 * client's ceiling. All answer `/c/{title}/{file}` and fetch `/o/{title}/{file}`.
 */
import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { accessSync, closeSync, constants, mkdirSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, logTail, spawnTracked, stopChild, waitForHttp } from './edge-procs.js';
import { type BenchTls, NODE_TLS_FLAGS, checkForced, nginxSslLines } from './edge/tls.js';
import { SIGNING } from './edge/workloads.js';
import type { ServerName } from './edge/verdicts.js';

export type TargetName = ServerName;

export interface Target {
  name: TargetName;
  /** Public base URL: GET `${url}/c/{title}/{file}`. */
  url: string;
  /** Root of the process tree whose RSS is measured. */
  pid: number;
  /** One line saying how it was configured. */
  describe: string;
  /** ReelCDN only: answers by tier since start, from the admin /health. */
  tiers?(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export interface TargetOptions {
  dir: string;
  originUrl: string;
  memoryBytes: number;
  diskBytes: number;
  /** `taskset -c <cpu>` prefix, or [] (no pinning). */
  pin: string[];
  /** Worker processes (ReelCDN `--workers`, nginx `worker_processes`); 1 unless said. */
  workers?: number;
  /** Serve HTTPS with this certificate (TLS 1.3, TLS_AES_128_GCM_SHA256 forced) instead of HTTP. */
  tls?: BenchTls;
}

/** Whether an executable is on PATH (nginx and varnishd live in /usr/sbin). */
export function onPath(cmd: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

const MiB = 1024 * 1024;

function started(child: ChildProcess, name: string): number {
  if (!child.pid) throw new Error(`${name} did not start`);
  return child.pid;
}

/** The last `bytes` of a file (a child's log), for an error message. */
function fileTail(path: string, bytes = 4096): string {
  try {
    const size = statSync(path).size;
    const fd = openSync(path, 'r');
    try {
      const buf = Buffer.alloc(Math.min(bytes, size));
      readSync(fd, buf, 0, buf.length, size - buf.length);
      return buf.toString();
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------- ReelCDN

/** The edge CLI to run: BENCH_EDGE_CLI (another build's dist/src/cli.js, for A/B) or this build's. */
export function edgeCli(): string {
  return process.env.BENCH_EDGE_CLI ?? fileURLToPath(new URL('../src/cli.js', import.meta.url));
}

const NO_WORKERS_FLAG = /Unknown option '--workers'/;

/**
 * Whether this edge build knows `--workers` (builds before issue 9 do not): asked of the CLI
 * itself, whose argument parser rejects an unknown option before it reads `--help`.
 */
export function edgeHasWorkersFlag(cli: string): boolean {
  const r = spawnSync(process.execPath, [cli, 'edge', '--workers', '1', '--help'], { encoding: 'utf8', timeout: 30_000 });
  return !NO_WORKERS_FLAG.test(`${r.stdout ?? ''}${r.stderr ?? ''}`);
}

export class EdgeHasNoWorkersFlag extends Error {
  constructor() {
    super('edge has no --workers');
  }
}

export async function startReelcdn(
  o: TargetOptions & { cpuProfDir?: string; sliceBytes: number; workersFlag: boolean; signingTtlSeconds: number },
): Promise<Target> {
  const workers = o.workers ?? 1;
  if (workers > 1 && !o.workersFlag) throw new EdgeHasNoWorkersFlag();
  const home = join(o.dir, `reelcdn${workers > 1 ? `-w${workers}` : ''}${o.tls ? '-tls' : ''}`);
  mkdirSync(home, { recursive: true });
  const [port, adminPort] = [await freePort(), await freePort()];
  const cluster = {
    signing: { keys: SIGNING.keys, activeKey: SIGNING.activeKey, ttlSeconds: o.signingTtlSeconds, required: true },
    origin: { url: o.originUrl, adminUrl: o.originUrl, dataDir: join(home, 'origin-unused') },
    steering: { url: 'http://127.0.0.1:9', adminUrl: 'http://127.0.0.1:9' },
    isps: [{ id: 'bench', prefixes: ['127.0.0.0/8'] }],
    edges: [
      {
        id: 'bench-edge',
        isp: 'bench',
        url: `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
        // The admin port stays plain: the bench reads /health from it.
        adminUrl: `http://127.0.0.1:${adminPort}`,
        ...(o.tls ? { tls: { certFile: o.tls.certFile, keyFile: o.tls.keyFile, caFile: o.tls.caFile } } : {}),
        dataDir: join(home, 'data'),
        diskBytes: o.diskBytes,
        memoryBytes: o.memoryBytes,
        sliceBytes: o.sliceBytes,
      },
    ],
    admin: { openHealth: true, openMetrics: true },
    log: { level: 'info' },
  };
  const file = join(home, 'cluster.json');
  writeFileSync(file, JSON.stringify(cluster, null, 2));
  const cli = edgeCli();
  const nodeArgs = [...(o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`] : []), ...(o.tls ? NODE_TLS_FLAGS : [])];
  // `reelcdn edge` defaults to one worker per CPU: say 1 for the 1-core runs (a build without
  // the flag is one process anyway).
  const workerArgs = o.workersFlag ? ['--workers', String(workers)] : [];
  const argv = [process.execPath, ...nodeArgs, cli, 'edge', '--config', file, '--id', 'bench-edge', ...workerArgs];
  const [cmd, ...args] = [...o.pin, ...argv] as [string, ...string[]];
  // The access log (one JSON line per request at level info) goes to a file in the temp dir, as
  // a deployed edge's stdout would: a file never blocks the edge, and nothing in the bench's
  // own process (which shares the client's core) reads it.
  const logFile = join(home, 'edge.log');
  const logFd = openSync(logFile, 'a');
  const child = spawnTracked(cmd, args, {
    name: 'reelcdn',
    stdio: ['pipe', logFd, logFd],
    env: { ...process.env, REELCDN_ADMIN_TOKEN: 'bench-admin-token-0123456789' },
  });
  closeSync(logFd);
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  await waitForHttp(`${adminUrl}/health`, child, 30_000).catch((err: Error) => {
    const tail = fileTail(logFile);
    if (NO_WORKERS_FLAG.test(tail)) throw new EdgeHasNoWorkersFlag();
    throw new Error(`${err.message}\n${tail}`);
  });
  const url = `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const tlsSaid = o.tls ? `, HTTPS (h2 + http/1.1 listener, node ${NODE_TLS_FLAGS.join(' ')}): ${await checkForced(url, o.tls.ca)}` : '';
  return {
    name: 'ReelCDN',
    url,
    pid: started(child, 'reelcdn edge'),
    describe:
      `reelcdn edge (Node ${process.version}${process.env.BENCH_EDGE_CLI ? `, ${cli}` : ''}), ${o.workersFlag ? `--workers ${workers}` : 'no --workers flag (one process)'}, ` +
      `memoryBytes ${o.memoryBytes / MiB} MiB, diskBytes ${o.diskBytes / MiB} MiB, slices ${o.sliceBytes / MiB} MiB, signing required, log info (access log to ${logFile})${tlsSaid}`,
    async tiers() {
      const res = await fetch(`${adminUrl}/health`);
      const h = (await res.json()) as { byTier: Record<string, { requests: number }> };
      return Object.fromEntries(Object.entries(h.byTier).map(([k, v]) => [k, v.requests]));
    },
    stop: () => stopChild(child, 10_000),
  };
}

// ---------------------------------------------------------------- nginx

/** stdout and stderr of a short command (nginx -V and varnishd -V print to stderr). */
function versionText(bin: string, arg: string): string {
  const r = spawnSync(bin, [arg], { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`;
}

/** Whether this nginx was built with ngx_http_slice_module. */
export function nginxHasSlice(bin: string): boolean {
  return versionText(bin, '-V').includes('http_slice_module');
}

export async function startNginx(o: TargetOptions & { bin: string }): Promise<Target> {
  const workers = o.workers ?? 1;
  const home = join(o.dir, `nginx${workers > 1 ? `-w${workers}` : ''}${o.tls ? '-tls' : ''}`);
  for (const d of ['cache', 'client_body', 'proxy_temp', 'fastcgi_temp', 'uwsgi_temp', 'scgi_temp', 'logs']) mkdirSync(join(home, d), { recursive: true });
  const port = await freePort();
  const origin = new URL(o.originUrl);
  const root = process.getuid?.() === 0;
  const conf = `# generated by bench/edge.ts
daemon off;
master_process on;
worker_processes ${workers};
${root ? 'user root root;' : ''}
pid ${home}/nginx.pid;
error_log ${home}/logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 10000000;
  keepalive_timeout 65s;
  client_body_temp_path ${home}/client_body;
  proxy_temp_path ${home}/proxy_temp;
  fastcgi_temp_path ${home}/fastcgi_temp;
  uwsgi_temp_path ${home}/uwsgi_temp;
  scgi_temp_path ${home}/scgi_temp;
  proxy_cache_path ${home}/cache levels=1:2 keys_zone=bench:64m max_size=${Math.floor(o.diskBytes / MiB)}m inactive=1d use_temp_path=off;
  upstream origin {
    server ${origin.hostname}:${origin.port};
    keepalive 32;
  }
  server {
    listen 127.0.0.1:${port}${o.tls ? ' ssl' : ''} reuseport backlog=4096;${o.tls ? `\n    ${nginxSslLines(o.tls)}` : ''}
    location /c/ {
      slice 2m;
      proxy_cache bench;
      proxy_cache_key $uri$slice_range;
      proxy_set_header Range $slice_range;
      proxy_cache_valid 200 206 1d;
      proxy_cache_lock on;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      rewrite ^/c/(.*)$ /o/$1 break;
      proxy_pass http://origin;
      add_header X-Cache $upstream_cache_status;
    }
  }
}
`;
  const file = join(home, 'nginx.conf');
  writeFileSync(file, conf);
  const [cmd, ...args] = [...o.pin, o.bin, '-p', `${home}/`, '-c', file] as string[] as [string, ...string[]];
  const child = spawnTracked(cmd, args, { name: 'nginx' });
  const url = `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  await waitForHttp(`${url}/`, child, 20_000, o.tls?.ca).catch((err: Error) => {
    throw new Error(`${err.message}\n${logTail(child)}`);
  });
  const version = /nginx\/[\d.]+/.exec(versionText(o.bin, '-v'))?.[0] ?? 'nginx';
  // The library it runs with, which can be older than the one it was built against.
  const v = versionText(o.bin, '-V');
  const openssl = /running with (OpenSSL [\w.]+)/.exec(v)?.[1] ?? /built with (OpenSSL [\w.]+)/.exec(v)?.[1];
  const tlsSaid = o.tls
    ? `, listen ssl (${openssl ?? 'OpenSSL'}; sendfile does not apply to TLS without kTLS, which is not configured): ${await checkForced(url, o.tls.ca)}`
    : '';
  return {
    name: 'nginx',
    url,
    pid: started(child, 'nginx'),
    describe: `${version}, ${workers} worker${workers > 1 ? 's' : ''}, proxy_cache + slice 2m, sendfile on, access_log off, cache dir on the same disk${tlsSaid}`,
    stop: () => stopChild(child, 10_000),
  };
}

// ---------------------------------------------------------------- Varnish

export async function startVarnish(o: TargetOptions & { bin: string; storage: 'malloc' | 'file' }): Promise<Target> {
  const home = join(o.dir, o.storage === 'file' ? 'varnish-file' : 'varnish');
  mkdirSync(home, { recursive: true });
  const port = await freePort();
  const origin = new URL(o.originUrl);
  const vcl = `vcl 4.1;
# generated by bench/edge.ts
backend origin {
  .host = "${origin.hostname}";
  .port = "${origin.port}";
  .connect_timeout = 2s;
  .first_byte_timeout = 10s;
  .between_bytes_timeout = 10s;
}
sub vcl_recv {
  if (req.url ~ "^/c/") {
    set req.url = regsub(req.url, "^/c/", "/o/");
  }
  if (req.method != "GET" && req.method != "HEAD") { return (pass); }
  return (hash);
}
sub vcl_backend_response {
  set beresp.ttl = 1d;
  set beresp.do_stream = true;
}
sub vcl_deliver {
  if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
`;
  const file = join(home, 'bench.vcl');
  writeFileSync(file, vcl);
  const memMiB = Math.floor(o.memoryBytes / MiB);
  const diskMiB = Math.floor(o.diskBytes / MiB);
  // The file store is the peer for disk hits: as large as the edge's diskBytes.
  const storage = o.storage === 'file' ? `file,${join(home, 'storage.bin')},${diskMiB}M` : `malloc,${memMiB}M`;
  const argv = [o.bin, '-F', '-j', 'none', '-n', join(home, 'work'), '-a', `127.0.0.1:${port}`, '-T', 'none', '-f', file, '-s', storage, '-p', 'nuke_limit=1000'];
  const [cmd, ...args] = [...o.pin, ...argv] as [string, ...string[]];
  const child = spawnTracked(cmd, args, { name: 'varnish' });
  await waitForHttp(`http://127.0.0.1:${port}/`, child, 30_000);
  const version = /varnish-[\d.]+/.exec(versionText(o.bin, '-V'))?.[0] ?? 'varnish';
  const said =
    o.storage === 'file'
      ? `-s file,${diskMiB}M (same size as ReelCDN's diskBytes)`
      : `-s malloc,${memMiB}M (same budget as ReelCDN's memoryBytes)`;
  return {
    name: o.storage === 'file' ? 'Varnish-file' : 'Varnish',
    url: `http://127.0.0.1:${port}`,
    pid: started(child, 'varnishd'),
    describe: `${version}, ${said}, default thread pools, nuke_limit=1000 (a 2 MiB object may evict many small ones)`,
    stop: () => stopChild(child, 10_000),
  };
}

// ---------------------------------------------------------------- the client's ceiling

/** The bare node:http server (bench/edge/bare-server.ts) handing out one Buffer of `bytes`. */
export async function startBare(o: Pick<TargetOptions, 'pin' | 'workers' | 'tls'> & { bytes: number }): Promise<Target> {
  const workers = o.workers ?? 1;
  const script = fileURLToPath(new URL('./edge/bare-server.js', import.meta.url));
  const tlsArgs = o.tls ? ['--cert', o.tls.certFile, '--key', o.tls.keyFile] : [];
  const argv = [...o.pin, process.execPath, ...(o.tls ? NODE_TLS_FLAGS : []), script, '--bytes', String(o.bytes), '--workers', String(workers), ...tlsArgs];
  const child = spawnTracked(argv[0]!, argv.slice(1), { name: 'bare' });
  const url = await new Promise<string>((ok, fail) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /listening (\S+)/.exec(buf);
      if (m) ok(m[1]!);
    });
    child.once('exit', (code) => fail(new Error(`bare server exited (${code}): ${logTail(child)}`)));
  });
  const tlsSaid = o.tls ? `; over HTTPS a bare node:https server: ${await checkForced(url, o.tls.ca)}` : '';
  return {
    name: 'node:http',
    url,
    pid: started(child, 'bare server'),
    describe: `bare node:http (Node ${process.version}), ${workers} process${workers > 1 ? 'es (reusePort)' : ''}, one ${o.bytes} B Buffer for every request${tlsSaid}`,
    stop: () => stopChild(child, 5_000),
  };
}

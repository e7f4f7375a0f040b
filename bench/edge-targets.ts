/**
 * The caches the edge benchmark measures, each a child process on a loopback port in front of
 * the same bench origin: a real ReelCDN edge (`reelcdn edge`), nginx as a slicing proxy cache,
 * and Varnish with malloc storage. All answer `/c/{title}/{file}` and fetch `/o/{title}/{file}`.
 */
import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, logTail, spawnTracked, stopChild, waitForHttp } from './edge-procs.js';

export type TargetName = 'ReelCDN' | 'nginx' | 'Varnish';

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

// ---------------------------------------------------------------- ReelCDN

export async function startReelcdn(o: TargetOptions & { cpuProfDir?: string; sliceBytes: number }): Promise<Target> {
  const home = join(o.dir, 'reelcdn');
  mkdirSync(home, { recursive: true });
  const [port, adminPort] = [await freePort(), await freePort()];
  const cluster = {
    signing: { keys: { bench: 'bench-secret-0123456789abcdef' }, activeKey: 'bench', ttlSeconds: 3600, required: false },
    origin: { url: o.originUrl, adminUrl: o.originUrl, dataDir: join(home, 'origin-unused') },
    steering: { url: 'http://127.0.0.1:9', adminUrl: 'http://127.0.0.1:9' },
    isps: [{ id: 'bench', prefixes: ['127.0.0.0/8'] }],
    edges: [
      {
        id: 'bench-edge',
        isp: 'bench',
        url: `http://127.0.0.1:${port}`,
        adminUrl: `http://127.0.0.1:${adminPort}`,
        dataDir: join(home, 'data'),
        diskBytes: o.diskBytes,
        memoryBytes: o.memoryBytes,
        sliceBytes: o.sliceBytes,
      },
    ],
    admin: { openHealth: true, openMetrics: true },
    log: { level: 'warn' },
  };
  const file = join(home, 'cluster.json');
  writeFileSync(file, JSON.stringify(cluster, null, 2));
  // BENCH_EDGE_CLI: another build's dist/src/cli.js, to compare two versions of the edge.
  const cli = process.env.BENCH_EDGE_CLI ?? fileURLToPath(new URL('../src/cli.js', import.meta.url));
  const nodeArgs = o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`] : [];
  const argv = [process.execPath, ...nodeArgs, cli, 'edge', '--config', file, '--id', 'bench-edge'];
  const [cmd, ...args] = [...o.pin, ...argv] as [string, ...string[]];
  const child = spawnTracked(cmd, args, {
    name: 'reelcdn',
    env: { ...process.env, REELCDN_ADMIN_TOKEN: 'bench-admin-token-0123456789' },
  });
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  await waitForHttp(`${adminUrl}/health`, child);
  return {
    name: 'ReelCDN',
    url: `http://127.0.0.1:${port}`,
    pid: started(child, 'reelcdn edge'),
    describe: `reelcdn edge (Node ${process.version}), memoryBytes ${o.memoryBytes / MiB} MiB, slices ${o.sliceBytes / MiB} MiB, log warn, signing off`,
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
  const home = join(o.dir, 'nginx');
  for (const d of ['cache', 'client_body', 'proxy_temp', 'fastcgi_temp', 'uwsgi_temp', 'scgi_temp', 'logs']) mkdirSync(join(home, d), { recursive: true });
  const port = await freePort();
  const origin = new URL(o.originUrl);
  const root = process.getuid?.() === 0;
  const conf = `# generated by bench/edge.ts
daemon off;
master_process on;
worker_processes 1;
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
    listen 127.0.0.1:${port} reuseport backlog=4096;
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
  await waitForHttp(`http://127.0.0.1:${port}/`, child).catch((err: Error) => {
    throw new Error(`${err.message}\n${logTail(child)}`);
  });
  const version = /nginx\/[\d.]+/.exec(versionText(o.bin, '-v'))?.[0] ?? 'nginx';
  return {
    name: 'nginx',
    url: `http://127.0.0.1:${port}`,
    pid: started(child, 'nginx'),
    describe: `${version}, 1 worker, proxy_cache + slice 2m, sendfile on, access_log off, cache dir on the same disk`,
    stop: () => stopChild(child, 10_000),
  };
}

// ---------------------------------------------------------------- Varnish

export async function startVarnish(o: TargetOptions & { bin: string }): Promise<Target> {
  const home = join(o.dir, 'varnish');
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
  const argv = [o.bin, '-F', '-j', 'none', '-n', join(home, 'work'), '-a', `127.0.0.1:${port}`, '-T', 'none', '-f', file, '-s', `malloc,${memMiB}M`, '-p', 'nuke_limit=1000'];
  const [cmd, ...args] = [...o.pin, ...argv] as [string, ...string[]];
  const child = spawnTracked(cmd, args, { name: 'varnish' });
  await waitForHttp(`http://127.0.0.1:${port}/`, child, 30_000);
  const version = /varnish-[\d.]+/.exec(versionText(o.bin, '-V'))?.[0] ?? 'varnish';
  return {
    name: 'Varnish',
    url: `http://127.0.0.1:${port}`,
    pid: started(child, 'varnishd'),
    describe: `${version}, -s malloc,${memMiB}M (same budget as ReelCDN's memoryBytes), default thread pools, nuke_limit=1000 (a 2 MiB object may evict many small ones)`,
    stop: () => stopChild(child, 10_000),
  };
}

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, type Dispatcher, request } from 'undici';
import { type ClusterConfig, loadClusterFile } from './common/config.js';
import { type DemoPki, demoCertPaths, ensureDemoPki } from './demo-pki.js';

/** Where the package lives, from dist/src/demo.js or src/demo.ts alike. */
const PACKAGE_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
})();

const CLI = join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');

/** Sample titles shipped with the package: folder under test/fixtures/media → title id. */
export const DEMO_TITLES: Record<string, string> = {
  'hls-bytes': 'demo-hls',
  'hls-segments': 'demo-hls-segments',
  dash: 'demo-dash',
};

export interface DemoOptions {
  dir: string;
  /** First port; the cluster uses a block of ports from here. Default 7000. */
  basePort?: number;
  /** Print to this stream (tests pass their own). */
  out?: NodeJS.WritableStream;
  /** Resolve once the cluster is up instead of waiting for Ctrl-C (tests). */
  detach?: boolean;
  /** Every listener over HTTPS, with certificates from a throwaway CA under `dir`/tls. */
  tls?: boolean;
  /** Clock for the certificates' validity, ms since the epoch (tests). */
  now?: number;
}

export interface RunningDemo {
  config: ClusterConfig;
  clusterFile: string;
  adminToken: string;
  playerUrl: string;
  dashboardUrl: string;
  children: Map<string, ChildProcess>;
  /** With `tls`: the CA to trust and each service's certificate. */
  pki?: DemoPki;
  stop(): Promise<void>;
}

/** The demo's signing keys, beside its cluster file (which then holds no secret). */
export const DEMO_KEYS_FILE = 'signing-keys.json';

/** The demo's cluster file; the TLS demo has its own, so one directory can hold both. */
export const demoClusterFileName = (tls: boolean) => (tls ? 'cluster-tls.json' : 'cluster.json');

/** The services of the demo cluster: what the TLS demo makes a certificate for. */
export const DEMO_SERVICES = ['origin', 'steering', 'edge-a1', 'edge-a2', 'edge-b1'];

/**
 * The demo cluster file: an origin, steering, three edges in two ISPs, all on loopback. With
 * `tls`, every URL (public and admin) is https:// and each service names its certificate, key
 * and the demo CA (files under tls/, see demo-pki.ts).
 */
export function demoClusterFile(base: number, tls = false): object {
  const scheme = tls ? 'https' : 'http';
  const withTls = (name: string) => (tls ? { tls: demoCertPaths(name) } : {});
  const edge = (id: string, isp: string, host: string, port: number) => ({
    id,
    isp,
    url: `${scheme}://${host}:${port}`,
    adminUrl: `${scheme}://127.0.0.1:${port + 400}`,
    ...withTls(id),
    dataDir: `edges/${id}`,
    diskBytes: 512 * 1024 * 1024,
    memoryBytes: 64 * 1024 * 1024,
    timezone: 'UTC',
    fill: { window: '02:00-06:00', bytesPerSec: 20_000_000 },
  });
  return {
    signing: { keysFile: DEMO_KEYS_FILE, activeKey: 'k1', ttlSeconds: 21600 },
    origin: { url: `${scheme}://127.0.0.1:${base}`, adminUrl: `${scheme}://127.0.0.1:${base + 1}`, dataDir: 'origin', ...withTls('origin') },
    steering: {
      url: `${scheme}://127.0.0.1:${base + 80}`,
      adminUrl: `${scheme}://127.0.0.1:${base + 81}`,
      ...withTls('steering'),
      healthIntervalMs: 500,
      downAfter: 2,
      upAfter: 2,
      trustedProxies: [],
    },
    isps: [
      { id: 'isp-a', prefixes: ['127.0.0.0/16', '::1/128'] },
      { id: 'isp-b', prefixes: ['127.2.0.0/16'] },
    ],
    edges: [
      edge('edge-a1', 'isp-a', '127.0.0.1', base + 101),
      edge('edge-a2', 'isp-a', '127.0.0.1', base + 102),
      edge('edge-b1', 'isp-b', '127.0.0.1', base + 201),
    ],
    admin: { openHealth: true, openMetrics: true },
    log: { level: 'info' },
  };
}

/**
 * Writes the demo's signing keys and cluster file under `dir`, both readable by their owner
 * only, unless a cluster file is already there (a re-run keeps its cluster, keys and catalog).
 * The plain and the TLS cluster files share the keys, the catalog and the caches.
 * Returns the cluster file's path.
 */
export function writeDemoFiles(dir: string, base: number, tls = false): string {
  const clusterFile = join(dir, demoClusterFileName(tls));
  if (existsSync(clusterFile)) return clusterFile;
  // Keys first: a cluster file on disk (of either kind) means its keys file is complete.
  if (!existsSync(join(dir, demoClusterFileName(!tls)))) {
    writeOwnerOnly(join(dir, DEMO_KEYS_FILE), JSON.stringify({ k1: randomBytes(24).toString('base64url') }, null, 2));
  }
  writeOwnerOnly(clusterFile, JSON.stringify(demoClusterFile(base, tls), null, 2));
  return clusterFile;
}

/** A fresh 0600 file: an older file in the way goes first, so a secret never lands in its looser mode. */
function writeOwnerOnly(path: string, text: string): void {
  rmSync(path, { force: true });
  writeFileSync(path, text, { mode: 0o600, flag: 'wx' });
}

async function waitHealthy(url: string, child: ChildProcess, name: string, dispatcher?: Dispatcher, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs; // an interval: monotonic
  while (performance.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with code ${child.exitCode} (see its log)`);
    try {
      const res = await request(`${url}/health`, { headersTimeout: 1000, bodyTimeout: 1000, ...(dispatcher ? { dispatcher } : {}) });
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`${name} did not become healthy at ${url} within ${timeoutMs} ms`);
}

/**
 * `reelcdn demo`: writes a cluster file under `dir` (kept across runs), ingests the sample
 * titles, starts every role as its own process, prints where to look, and stops them all on
 * Ctrl-C — none left behind.
 */
export async function runDemo(opts: DemoOptions): Promise<RunningDemo> {
  const out = opts.out ?? process.stdout;
  const dir = resolve(opts.dir);
  const base = opts.basePort ?? 7000;
  const tls = opts.tls ?? false;
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const clusterFile = writeDemoFiles(dir, base, tls);
  // Certificates before the cluster file is loaded: loading checks that they are there.
  const pki = tls ? ensureDemoPki(dir, DEMO_SERVICES, opts.now) : undefined;
  for (const file of pki?.issued ?? []) out.write(`made ${file}\n`);
  const config = loadClusterFile(clusterFile);
  const tokenFile = join(dir, 'admin-token');
  const adminToken =
    process.env.REELCDN_ADMIN_TOKEN ?? (existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8').trim() : randomBytes(18).toString('base64url'));
  writeFileSync(tokenFile, adminToken, { mode: 0o600 });
  if (!existsSync(CLI)) throw Object.assign(new Error(`${CLI} is missing — run \`npm run build\` first`), { userFacing: true });

  // Ingest the samples once (re-running the demo keeps its catalog).
  const { loadCatalog } = await import('./origin/catalog.js');
  const { ingestTitle } = await import('./origin/ingest.js');
  const catalog = await loadCatalog(config.origin.dataDir).catch(() => undefined);
  for (const [folder, title] of Object.entries(DEMO_TITLES)) {
    if (catalog?.get(title)) continue;
    const entry = await ingestTitle(config, title, join(PACKAGE_ROOT, 'test', 'fixtures', 'media', folder));
    out.write(`ingested ${title}: ${entry.files.length} files, ${entry.bytes} bytes\n`);
  }

  const children = new Map<string, ChildProcess>();
  let stopping = false;
  const startChild = (name: string, args: string[]) => {
    // The log file itself is the child's stdout: a pipe through us would break (and block
    // the child's logger) if we died first.
    const log = openSync(join(dir, 'logs', `${name}.log`), 'a');
    const child = spawn(process.execPath, [CLI, ...args, '--config', clusterFile], {
      env: { ...process.env, REELCDN_ADMIN_TOKEN: adminToken, REELCDN_EXIT_WITH_PARENT: '1' },
      stdio: ['pipe', log, log],
    });
    closeSync(log);
    child.on('exit', (code, signal) => {
      if (!stopping) out.write(`${name} exited (${signal ?? code}); see ${join(dir, 'logs', `${name}.log`)}\n`);
    });
    children.set(name, child);
    return child;
  };

  // Our own health checks verify the services against the demo CA, like any client must.
  const dispatcher = pki ? new Agent({ connect: { ca: readFileSync(pki.caFile) } }) : undefined;
  const stop = async () => {
    stopping = true;
    const exits = [...children.values()].map(
      (c) =>
        new Promise<void>((resolveExit) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolveExit();
          const kill = setTimeout(() => c.kill('SIGKILL'), 5000);
          c.once('exit', () => {
            clearTimeout(kill);
            resolveExit();
          });
          c.kill('SIGTERM');
        }),
    );
    await Promise.all(exits);
    await dispatcher?.close();
  };

  try {
    const origin = startChild('origin', ['origin']);
    await waitHealthy(config.origin.adminUrl, origin, 'origin', dispatcher);
    for (const e of config.edges) {
      const child = startChild(e.id, ['edge', '--id', e.id, '--workers', '1']);
      await waitHealthy(e.adminUrl, child, e.id, dispatcher);
    }
    const steering = startChild('steering', ['steering']);
    await waitHealthy(config.steering.adminUrl, steering, 'steering', dispatcher);
  } catch (err) {
    await stop();
    throw Object.assign(err as Error, { userFacing: true });
  }

  const playerUrl = `${config.steering.url}/player/`;
  const dashboardUrl = `${config.steering.adminUrl}/dashboard#token=${adminToken}`;
  out.write(
    [
      '',
      'ReelCDN demo cluster is up:',
      `  origin     ${config.origin.url}  (admin ${config.origin.adminUrl})`,
      ...config.edges.map((e) => `  ${e.id.padEnd(10)} ${e.url}  (${e.isp}, admin ${e.adminUrl})`),
      `  steering   ${config.steering.url}  (admin ${config.steering.adminUrl})`,
      '',
      `  player     ${playerUrl}`,
      `  dashboard  ${dashboardUrl}`,
      `  HLS        ${config.steering.url}/v1/play/demo-hls/master.m3u8`,
      `  DASH       ${config.steering.url}/v1/play/demo-dash/manifest.mpd`,
      '',
      `  cluster file ${clusterFile}, logs in ${join(dir, 'logs')}`,
      ...(pki ? tlsHelp(pki) : []),
      '  Ctrl-C stops every process.',
      '',
    ].join('\n'),
  );

  const running: RunningDemo = { config, clusterFile, adminToken, playerUrl, dashboardUrl, children, ...(pki ? { pki } : {}), stop };
  if (!opts.detach) {
    await new Promise<void>((resolveWait) => {
      let signalled = false;
      const onSignal = () => {
        if (signalled) return; // a second Ctrl-C must not cut the shutdown short
        signalled = true;
        out.write('\nstopping the demo cluster…\n');
        stop().then(() => resolveWait());
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
  }
  return running;
}

/**
 * How to make a browser trust the demo: the CA file, or for Chromium a launch flag pinning the
 * services' keys (it matches the certificates a server presents, so the leaves, not the CA;
 * Chromium honours the flag only with its own --user-data-dir).
 */
function tlsHelp(pki: DemoPki): string[] {
  const spki = Object.values(pki.certs).map((c) => c.spkiSha256);
  return [
    '',
    `  CA to trust  ${pki.caFile}`,
    `  e.g. curl --cacert ${pki.caFile} …, NODE_EXTRA_CA_CERTS=${pki.caFile}, or import it in a browser's certificate settings`,
    '  Chromium without importing it:',
    `    chromium --user-data-dir=$(mktemp -d) --ignore-certificate-errors-spki-list=${spki.join(',')}`,
    '',
  ];
}

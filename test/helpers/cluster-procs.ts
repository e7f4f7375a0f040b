import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { Agent, type Dispatcher, request } from 'undici';
import { spkiSha256Base64 } from '../../src/common/cert-authority.js';
import { type ClusterConfig, loadClusterFile } from '../../src/common/config.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { type OriginServer, createOriginServer } from '../../src/origin/server.js';
import { type SteeringServer, createSteeringServer } from '../../src/steering/server.js';
import { type TestPki, makeTestPki } from './certs.js';
import { deadPort } from './http-tools.js';

/**
 * A real cluster on loopback for browser tests: a real origin holding the fixture titles and
 * real steering in this process, and every edge as its own `reelcdn edge` process (so a test
 * can kill -9 one and start it again on the same ports).
 */

export const PACKAGE_ROOT = resolve(import.meta.dirname, '..', '..');
export const CLI = join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');
export const FIXTURES = join(PACKAGE_ROOT, 'test', 'fixtures', 'media');
export const ADMIN_TOKEN = 'browser-test-admin-token';

/** Fixture folder → title id in the test catalog. */
export const TITLES = { hlsBytes: 'bbb-hls', hlsSegments: 'bbb-seg', dash: 'bbb-dash' } as const;

/** dist/ is built before any test runs (npm test, or test/global-setup.ts). */
export function ensureBuilt(): void {
  if (!existsSync(CLI)) throw new Error('dist/src/cli.js is missing: run npm run build');
}

export interface EdgeProcess {
  id: string;
  isp: string;
  /** Public URL (what players fetch from). */
  url: string;
  adminUrl: string;
  child: ChildProcess | undefined;
  logFile: string;
}

export interface ProcCluster {
  dir: string;
  clusterFile: string;
  config: ClusterConfig;
  origin: OriginServer;
  steering: SteeringServer;
  steeringUrl: string;
  steeringAdminUrl: string;
  edges: Map<string, EdgeProcess>;
  /** With `tls`: the CA and every service's certificate (named origin, steering and by edge id). */
  pki: TestPki | undefined;
  /**
   * With `tls`: Chromium's --ignore-certificate-errors-spki-list entries for what a player
   * reaches (steering's and every edge's leaf certificate); empty without.
   */
  browserPins: string[];
  /** What this helper's own requests go through: with `tls`, an agent trusting the test CA only. */
  dispatcher: Dispatcher;
  /** Which edge answers this URL's origin (scheme://host:port), if any. */
  edgeOf(url: string): string | undefined;
  /** Starts (or restarts) an edge process and waits for its /health. */
  startEdge(id: string): Promise<void>;
  /** Kills an edge process with a signal (default SIGKILL) and waits until it is gone. */
  killEdge(id: string, signal?: NodeJS.Signals): Promise<void>;
  /** The steering manifest for a title, as a client on 127.0.0.1 (isp-a) gets it. */
  steer(title: string): Promise<{ 'PATHWAY-PRIORITY': string[]; TTL: number }>;
  /** Steering's view of an edge (admin /v1/edges). */
  edgeState(id: string): Promise<{ state: string; eligible: boolean }>;
  close(): Promise<void>;
}

export interface ProcClusterOptions {
  healthIntervalMs?: number;
  downAfter?: number;
  upAfter?: number;
  steeringTtlSeconds?: number;
  /**
   * Every listener (origin, steering, edges; public and admin) on https:// with certificates
   * from a throwaway test CA, each service trusting that CA only.
   */
  tls?: boolean;
  /** Parent edges: child id → parent id (edges[].parent). */
  parents?: Record<string, string>;
}

/** Services whose certificates the test PKI issues (origin, steering, then the edges). */
const EDGE_DEFS = [
  { id: 'edge-a1', isp: 'isp-a' },
  { id: 'edge-a2', isp: 'isp-a' },
  { id: 'edge-b1', isp: 'isp-b' },
];

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>, alive?: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const dead = alive?.();
    if (dead) throw new Error(`${what}: ${dead}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

async function ok(url: string, dispatcher: Dispatcher): Promise<boolean> {
  const res = await request(url, { dispatcher, headersTimeout: 1000, bodyTimeout: 1000 });
  await res.body.dump();
  return res.statusCode === 200;
}

export async function startProcCluster(opts: ProcClusterOptions = {}): Promise<ProcCluster> {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'reelcdn-browser-'));
  const port = () => deadPort();
  const [originPort, originAdmin] = [await port(), await port()];
  const edgeDefs = EDGE_DEFS;
  const scheme = opts.tls ? 'https' : 'http';
  let pki: TestPki | undefined;
  if (opts.tls) {
    mkdirSync(join(dir, 'tls'));
    pki = makeTestPki(join(dir, 'tls'), ['origin', 'steering', ...edgeDefs.map((e) => e.id)]);
  }
  /** A service's `tls` block (its admin port uses the same: adminTls defaults to tls). */
  const tlsOf = (name: string) => (pki ? { tls: pki.tls(name) } : {});
  const edgePorts = [] as { pub: number; adm: number }[];
  for (let i = 0; i < edgeDefs.length; i++) edgePorts.push({ pub: await port(), adm: await port() });
  const raw = {
    signing: { keys: { k1: 'browser-test-secret-0123456789' }, activeKey: 'k1', ttlSeconds: 3600 },
    origin: { url: `${scheme}://127.0.0.1:${originPort}`, adminUrl: `${scheme}://127.0.0.1:${originAdmin}`, dataDir: 'origin', ...tlsOf('origin') },
    steering: {
      // Steering listens on port 0 here; its public URL is the bound one.
      url: `${scheme}://127.0.0.1:1`,
      adminUrl: `${scheme}://127.0.0.1:1`,
      ...tlsOf('steering'),
      healthIntervalMs: opts.healthIntervalMs ?? 200,
      downAfter: opts.downAfter ?? 2,
      upAfter: opts.upAfter ?? 2,
      steeringTtlSeconds: opts.steeringTtlSeconds ?? 1,
    },
    isps: [
      { id: 'isp-a', prefixes: ['127.0.0.0/16', '::1/128'] },
      { id: 'isp-b', prefixes: ['127.2.0.0/16'] },
    ],
    edges: edgeDefs.map((e, i) => ({
      id: e.id,
      isp: e.isp,
      url: `${scheme}://127.0.0.1:${edgePorts[i]!.pub}`,
      adminUrl: `${scheme}://127.0.0.1:${edgePorts[i]!.adm}`,
      ...tlsOf(e.id),
      ...(opts.parents?.[e.id] ? { parent: opts.parents[e.id] } : {}),
      dataDir: `edges/${e.id}`,
      diskBytes: 256 * 1024 * 1024,
      memoryBytes: 32 * 1024 * 1024,
      timezone: 'UTC',
      fill: { window: '02:00-06:00', bytesPerSec: 20_000_000 },
    })),
    admin: { openHealth: true, openMetrics: true },
    log: { level: 'info' },
  };
  const clusterFile = join(dir, 'cluster.json');
  // Inline keys: owner-only, or every role would warn that the file holds readable secrets.
  writeFileSync(clusterFile, JSON.stringify(raw, null, 2), { mode: 0o600 });
  const config = loadClusterFile(clusterFile);
  // The test CA alone: a helper request to a service with a certificate from elsewhere fails.
  const dispatcher: Dispatcher = pki ? new Agent({ connect: { ca: readFileSync(pki.caFile) } }) : new Agent();
  const browserPins = pki ? ['steering', ...edgeDefs.map((e) => e.id)].map((n) => spkiSha256Base64(pki.certs[n]!.certPem)) : [];
  await ingestTitle(config, TITLES.hlsBytes, join(FIXTURES, 'hls-bytes'));
  await ingestTitle(config, TITLES.hlsSegments, join(FIXTURES, 'hls-segments'));
  await ingestTitle(config, TITLES.dash, join(FIXTURES, 'dash'));

  const silent = pino({ level: 'silent' });
  const origin = createOriginServer({ config, logger: silent, registry: new Registry(), adminToken: ADMIN_TOKEN, playFlushMs: 200 });
  await origin.start();

  const edges = new Map<string, EdgeProcess>();
  for (const e of config.edges) {
    edges.set(e.id, { id: e.id, isp: e.isp, url: e.url, adminUrl: e.adminUrl, child: undefined, logFile: join(dir, `${e.id}.log`) });
  }

  const startEdge = async (id: string) => {
    const e = edges.get(id);
    if (!e) throw new Error(`no edge ${id}`);
    if (e.child && e.child.exitCode === null && e.child.signalCode === null) throw new Error(`${id} is already running`);
    const log = openSync(e.logFile, 'a');
    const child = spawn(process.execPath, [CLI, 'edge', '--config', clusterFile, '--id', id, '--workers', '1'], {
      env: { ...process.env, REELCDN_ADMIN_TOKEN: ADMIN_TOKEN },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    e.child = child;
    await waitFor(
      `edge ${id} healthy at ${e.adminUrl}`,
      20_000,
      () => ok(`${e.adminUrl}/health`, dispatcher),
      () => (child.exitCode !== null || child.signalCode !== null ? `exited (${child.signalCode ?? child.exitCode}); log:\n${tail(e.logFile)}` : undefined),
    );
  };

  const killEdge = async (id: string, signal: NodeJS.Signals = 'SIGKILL') => {
    const child = edges.get(id)?.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    await gone;
  };

  try {
    await Promise.all(config.edges.map((e) => startEdge(e.id)));
  } catch (err) {
    for (const e of edges.values()) e.child?.kill('SIGKILL');
    await origin.close();
    await dispatcher.close();
    throw err;
  }

  const steering = createSteeringServer({
    config,
    logger: silent,
    registry: new Registry(),
    adminToken: ADMIN_TOKEN,
    listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    plays: { flushMs: 200, minBackoffMs: 100 },
  });
  const urls = await steering.start();

  /** Steering's view of every edge and whether its process lives (for failure messages). */
  const explain = async () => {
    const lines = [] as string[];
    for (const e of edges.values()) {
      const h = steering.health.get(e.id);
      const c = e.child;
      const proc = !c ? 'never started' : c.exitCode !== null || c.signalCode !== null ? `exited (${c.signalCode ?? c.exitCode})` : `pid ${c.pid}`;
      lines.push(`  ${e.id}: steering says ${h?.state} (${h?.reason}); process ${proc}; log tail:\n${tail(e.logFile, 5).replace(/^/gm, '    ')}`);
    }
    return `\n${lines.join('\n')}`;
  };

  const byOrigin = new Map([...edges.values()].map((e) => [new URL(e.url).origin, e.id]));
  return {
    dir,
    clusterFile,
    config,
    origin,
    steering,
    steeringUrl: urls.publicUrl,
    steeringAdminUrl: urls.adminUrl,
    edges,
    pki,
    browserPins,
    dispatcher,
    edgeOf: (url) => byOrigin.get(new URL(url).origin),
    startEdge,
    killEdge,
    async steer(title) {
      const res = await request(`${urls.publicUrl}/v1/steer/${title}.json`, { dispatcher });
      if (res.statusCode !== 200) throw new Error(`/v1/steer/${title}.json answered ${res.statusCode}: ${await res.body.text()}${await explain()}`);
      return (await res.body.json()) as { 'PATHWAY-PRIORITY': string[]; TTL: number };
    },
    async edgeState(id) {
      const res = await request(`${urls.adminUrl}/v1/edges`, { dispatcher, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      const body = (await res.body.json()) as { edges: { id: string; state: string; eligible: boolean }[] };
      const e = body.edges.find((x) => x.id === id);
      if (!e) throw new Error(`steering does not know ${id}`);
      return e;
    },
    async close() {
      await steering.close().catch(() => undefined);
      await Promise.all([...edges.keys()].map((id) => killEdge(id, 'SIGKILL')));
      await origin.close().catch(() => undefined);
      await dispatcher.close().catch(() => undefined);
    },
  };
}

/** The last lines of a log file (for failure messages). */
export function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

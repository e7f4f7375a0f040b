/**
 * The cluster the chaos run abuses: origin, steering and three edges of one ISP, each its own
 * `reelcdn` process on loopback, the fixture titles ingested through `reelcdn ingest`. One edge
 * may get a small tmpfs as its dataDir so its disk can be filled to a real ENOSPC. Every exit
 * the driver did not ask for is recorded: the chaos goal is "no process exits except those killed".
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { freePorts } from './offload-cluster.js';

/** The package root, from bench/ (vitest) or dist/bench/ (npm run bench:chaos) alike. */
export const PACKAGE_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('chaos: package.json not found above bench/');
})();
export const CLI = join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');
export const FIXTURES = join(PACKAGE_ROOT, 'test', 'fixtures', 'media');
export const CHAOS_ADMIN_TOKEN = 'chaos-admin-token-0123456789';

/** Fixture folder → title id. */
export const CHAOS_TITLES: Record<string, string> = { 'hls-bytes': 'chaos-hls', 'hls-segments': 'chaos-seg', dash: 'chaos-dash' };

/** The title re-ingested during the run, alternating between the fixture and a same-size variant. */
export const CHAOS_REINGESTED = { folder: 'hls-bytes', title: 'chaos-hls' } as const;

/**
 * The variant of a media file: the same size (the nasty case: the size does not tell the versions
 * apart) with one byte in every 1000 flipped, so every slice of every version differs.
 */
export function variantBytes(original: Buffer): Buffer {
  const b = Buffer.from(original);
  for (let i = 500; i < b.length; i += 1000) b[i] = b[i]! ^ 0xff;
  return b;
}

/** Writes the variant of a fixture folder (manifests unchanged, media files varied) under `root`. */
export function writeVariant(folder: string, root: string): string {
  const dir = join(root, folder);
  cpSync(join(FIXTURES, folder), dir, { recursive: true });
  for (const name of readdirSync(dir)) {
    if (name.endsWith('.m3u8') || name.endsWith('.mpd')) continue;
    writeFileSync(join(dir, name), variantBytes(readFileSync(join(dir, name))));
  }
  return dir;
}

/**
 * Slices far smaller than the default 2 MiB: the fixtures are a few hundred KB, and a fault
 * only means something if an answer spans several slices from several places.
 */
export const CHAOS_SLICE_BYTES = 16 * 1024;

/** A one-hour fill window starting 12 hours after `now` (UTC). */
export function fillWindowAwayFrom(now: Date): string {
  const h = (now.getUTCHours() + 12) % 24;
  const hh = (x: number) => String(x).padStart(2, '0');
  return `${hh(h)}:00-${hh((h + 1) % 24)}:00`;
}

export interface ChaosNode {
  name: string;
  url: string;
  adminUrl: string;
  child: ChildProcess | undefined;
  logFile: string;
  /** Set by the driver before it kills the process: this exit is expected. */
  killing: boolean;
}

export interface UnexpectedExit {
  name: string;
  code: number | null;
  signal: string | null;
  atMs: number;
  logTail: string;
}

export interface ChaosClusterOptions {
  /** Size of the tmpfs mounted as the last edge's dataDir (MiB); 0 for none. Default 8. */
  tmpfsMiB?: number;
  /** Milliseconds since the run started (for exit records). */
  elapsed: () => number;
  log: (line: string) => void;
}

export interface ChaosCluster {
  dir: string;
  clusterFile: string;
  steeringUrl: string;
  origin: ChaosNode;
  steering: ChaosNode;
  edges: ChaosNode[];
  /** The edge whose dataDir is a small tmpfs, or undefined when mounting was not permitted. */
  tmpfsEdge: string | undefined;
  /** Why there is no tmpfs edge (printed). */
  tmpfsNote: string | undefined;
  dataDirOf(edge: string): string;
  unexpectedExits: UnexpectedExit[];
  /** `reelcdn ingest` of CHAOS_REINGESTED again, from the fixture (`a`) or its variant (`b`), while everything runs. */
  reingest(version: 'a' | 'b'): Promise<void>;
  /** kill -9 and wait for the exit. */
  kill(node: ChaosNode): Promise<void>;
  /** Start (again) and wait for /health. */
  start(node: ChaosNode): Promise<void>;
  close(): Promise<void>;
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await request(`${url}/health`, { headersTimeout: 1000, bodyTimeout: 1000 });
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

export function tailOf(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function startChaosCluster(opts: ChaosClusterOptions): Promise<ChaosCluster> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build`);
  const dir = mkdtempSync(join(tmpdir(), 'reelcdn-chaos-'));
  mkdirSync(join(dir, 'logs'));
  const [o, oa, s, sa, ...ep] = await freePorts(4 + 6);
  const url = (p: number | undefined) => `http://127.0.0.1:${p}`;
  const edgeIds = ['edge-a1', 'edge-a2', 'edge-a3'];
  const raw = {
    signing: { keys: { k1: 'chaos-secret-0123456789abcdef' }, activeKey: 'k1', ttlSeconds: 3600 },
    origin: { url: url(o), adminUrl: url(oa), dataDir: 'origin' },
    steering: { url: url(s), adminUrl: url(sa), healthIntervalMs: 200, downAfter: 2, upAfter: 2, steeringTtlSeconds: 1 },
    isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/8', '::1/128'] }],
    defaultIsp: 'isp-a',
    edges: edgeIds.map((id, i) => ({
      id,
      isp: 'isp-a',
      url: url(ep[2 * i]),
      adminUrl: url(ep[2 * i + 1]),
      dataDir: `edges/${id}`,
      // More than the tmpfs holds: the edge believes it has room, the filesystem says ENOSPC.
      diskBytes: 64 * 1024 * 1024,
      memoryBytes: 32 * 1024 * 1024,
      sliceBytes: CHAOS_SLICE_BYTES,
      timezone: 'UTC',
      // A window 12 hours from now: a fill pass is not one of this run's faults, and the run must
      // not depend on the hour it starts at (inside 02:00-06:00 UTC every restart began a pass).
      fill: { window: fillWindowAwayFrom(new Date()), bytesPerSec: 20_000_000 },
    })),
    admin: { openHealth: true, openMetrics: true },
    log: { level: 'info' },
  };
  const clusterFile = join(dir, 'cluster.json');
  writeFileSync(clusterFile, JSON.stringify(raw, null, 2), { mode: 0o600 });
  const dataDirOf = (edge: string) => join(dir, 'edges', edge);
  for (const id of edgeIds) mkdirSync(dataDirOf(id), { recursive: true });

  let tmpfsEdge: string | undefined;
  let tmpfsNote: string | undefined;
  const tmpfsMiB = opts.tmpfsMiB ?? 8;
  if (tmpfsMiB > 0) {
    const target = edgeIds[edgeIds.length - 1]!;
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${tmpfsMiB}m`, 'tmpfs', dataDirOf(target)], { stdio: 'pipe' });
      tmpfsEdge = target;
    } catch (err) {
      tmpfsNote = `ENOSPC fault skipped: cannot mount a tmpfs (${((err as { stderr?: Buffer }).stderr?.toString() || (err as Error).message).trim()})`;
    }
  }

  // The children hold a pipe from us: if the run dies however it dies, they drain and exit too.
  const env = { ...process.env, REELCDN_ADMIN_TOKEN: CHAOS_ADMIN_TOKEN, REELCDN_EXIT_WITH_PARENT: '1' };
  for (const [folder, title] of Object.entries(CHAOS_TITLES)) {
    execFileSync(process.execPath, [CLI, 'ingest', '--config', clusterFile, '--title', title, join(FIXTURES, folder)], { env: { ...env, REELCDN_EXIT_WITH_PARENT: '' }, stdio: 'pipe' });
  }

  const variantDir = writeVariant(CHAOS_REINGESTED.folder, join(dir, 'variant'));
  // Not execFileSync: the players and the fault clock go on while the ingest runs.
  const reingest = (version: 'a' | 'b') =>
    new Promise<void>((resolveIngest, reject) => {
      const from = version === 'a' ? join(FIXTURES, CHAOS_REINGESTED.folder) : variantDir;
      execFile(process.execPath, [CLI, 'ingest', '--config', clusterFile, '--title', CHAOS_REINGESTED.title, from], { env: { ...env, REELCDN_EXIT_WITH_PARENT: '' } }, (err, _out, stderr) =>
        err ? reject(new Error(`reelcdn ingest failed: ${stderr.trim() || err.message}`)) : resolveIngest(),
      );
    });

  const unexpectedExits: UnexpectedExit[] = [];
  const node = (name: string, nodeUrl: string, adminUrl: string): ChaosNode => ({
    name,
    url: nodeUrl,
    adminUrl,
    child: undefined,
    logFile: join(dir, 'logs', `${name}.log`),
    killing: false,
  });
  const origin = node('origin', url(o), url(oa));
  const steering = node('steering', url(s), url(sa));
  const edges = raw.edges.map((e) => node(e.id, e.url, e.adminUrl));
  const argsOf = (n: ChaosNode) => (n === origin ? ['origin'] : n === steering ? ['steering'] : ['edge', '--id', n.name, '--workers', '1']);
  let closing = false;

  const start = async (n: ChaosNode) => {
    if (n.child && n.child.exitCode === null && n.child.signalCode === null) throw new Error(`${n.name} is already running`);
    const log = openSync(n.logFile, 'a');
    const child = spawn(process.execPath, [CLI, ...argsOf(n), '--config', clusterFile], { env, stdio: ['pipe', log, log] });
    closeSync(log);
    n.child = child;
    n.killing = false;
    child.once('exit', (code, signal) => {
      if (n.killing || closing) return;
      unexpectedExits.push({ name: n.name, code, signal, atMs: opts.elapsed(), logTail: tailOf(n.logFile) });
      opts.log(`!! ${n.name} exited on its own (${signal ?? code})`);
    });
    const deadline = performance.now() + 20_000;
    while (performance.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${n.name} exited while starting; log:\n${tailOf(n.logFile)}`);
      if (await healthy(n.adminUrl)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${n.name} not healthy at ${n.adminUrl} within 20 s; log:\n${tailOf(n.logFile)}`);
  };

  const kill = async (n: ChaosNode) => {
    const child = n.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    n.killing = true;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGKILL');
    await gone;
  };

  const close = async () => {
    closing = true;
    const all = [origin, steering, ...edges];
    origin.child?.kill('SIGCONT');
    // SIGTERM first (they drain and flush their logs), SIGKILL what is still there after 3 s.
    await Promise.all(
      all.map(async (n) => {
        const child = n.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const gone = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        if ((await Promise.race([gone.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 3000))])) === false) await kill(n);
      }),
    );
    if (tmpfsEdge) {
      try {
        execFileSync('umount', [dataDirOf(tmpfsEdge)], { stdio: 'pipe' });
      } catch {
        execFileSync('umount', ['-l', dataDirOf(tmpfsEdge)], { stdio: 'pipe' });
      }
    }
    if (!process.env.CHAOS_KEEP) rmSync(dir, { recursive: true, force: true });
  };

  try {
    await start(origin);
    await Promise.all(edges.map((e) => start(e)));
    await start(steering);
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
  return { dir, clusterFile, steeringUrl: steering.url, origin, steering, edges, tmpfsEdge, tmpfsNote, dataDirOf, unexpectedExits, reingest, kill, start, close };
}

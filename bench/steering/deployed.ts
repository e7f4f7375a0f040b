/**
 * Steering as it is deployed, for `npm run bench:steering`: `reelcdn steering --config FILE` as
 * its own process, with the cluster file's defaults (log level info, health polling every
 * 500 ms, tokens signed), in front of a real `reelcdn origin` holding the benchmark's titles and
 * edges that answer its polls with whole reports (fake-edges.ts). Only the steering process is
 * measured; it runs on the server's CPU, everything else on the client's.
 */
import { type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateCluster } from '../../src/common/config.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { freePort, logTail, spawnTracked, stopChild, waitForHttp } from '../edge-procs.js';

export const ADMIN_TOKEN = 'bench-admin-token-0123456789';
const SIGNING_KEYS = { k1: 'bench-secret-0123456789abcdef' };

/** The steering CLI to run: BENCH_STEERING_CLI (another build's dist/src/cli.js, for A/B) or this build's. */
export function steeringCli(): string {
  return process.env.BENCH_STEERING_CLI ?? fileURLToPath(new URL('../../src/cli.js', import.meta.url));
}

export interface BenchEdge {
  id: string;
  isp: string;
  /** Public URL steering writes into its answers (nothing fetches from it). */
  url: string;
  adminPort: number;
}

/** `n` edges over two ISPs (edge-a*, edge-b*), as in the cluster file's isps: isp-a is loopback's 127.0.0.0/16. */
export async function benchEdges(n: number): Promise<BenchEdge[]> {
  const edges: BenchEdge[] = [];
  const inA = Math.ceil(n / 2);
  for (let i = 0; i < n; i++) {
    const a = i < inA;
    const id = a ? `edge-a${i + 1}` : `edge-b${i - inA + 1}`;
    edges.push({ id, isp: a ? 'isp-a' : 'isp-b', url: `http://127.0.0.1:${await freePort()}`, adminPort: await freePort() });
  }
  return edges;
}

export interface DeployedSteering {
  /** Public base URL. */
  url: string;
  adminUrl: string;
  /** The steering process alone (its CPU time is what is measured). */
  pid: number;
  describe: string;
  logFile: string;
  stop(): Promise<void>;
}

export interface DeployOptions {
  dir: string;
  /** Titles to ingest: name → fixture folder. */
  titles: Record<string, string>;
  edges: BenchEdge[];
  /** `taskset -c <cpu>` for steering, or []. */
  serverPin: string[];
  /** `taskset -c <cpus>` for the origin and the edges, or []. */
  clientPin: string[];
  /** Merged over the cluster file's steering section (the defaults when left out). */
  steering?: Record<string, unknown>;
  /** Steering runs with --cpu-prof into this folder. */
  cpuProfDir?: string;
  /** Connections each fake edge reports (around). */
  edgeLoad?: number;
}

/**
 * Writes the cluster file, ingests the titles, starts the origin, the edges and steering, and
 * waits until steering has polled every edge (its /health counts them eligible).
 */
export async function startDeployedSteering(o: DeployOptions): Promise<DeployedSteering> {
  const home = join(o.dir, 'steering-cluster');
  mkdirSync(home, { recursive: true });
  const [originPort, originAdminPort, port, adminPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const cluster = {
    signing: { keysFile: 'signing-keys.json', activeKey: 'k1' },
    origin: { url: `http://127.0.0.1:${originPort}`, adminUrl: `http://127.0.0.1:${originAdminPort}`, dataDir: 'origin' },
    steering: { url: `http://127.0.0.1:${port}`, adminUrl: `http://127.0.0.1:${adminPort}`, ...o.steering },
    isps: [
      { id: 'isp-a', prefixes: ['127.0.0.0/16'] },
      { id: 'isp-b', prefixes: ['127.2.0.0/16'] },
    ],
    edges: o.edges.map((e) => ({
      id: e.id,
      isp: e.isp,
      url: e.url,
      adminUrl: `http://127.0.0.1:${e.adminPort}`,
      dataDir: `edges/${e.id}`,
      diskBytes: 512 * 2 ** 20,
      memoryBytes: 64 * 2 ** 20,
    })),
  };
  // The keys apart, readable by their owner only, as an operator keeps them (else steering warns).
  writeFileSync(join(home, 'signing-keys.json'), JSON.stringify(SIGNING_KEYS), { mode: 0o600 });
  const file = join(home, 'cluster.json');
  writeFileSync(file, JSON.stringify(cluster, null, 2));
  const config = validateCluster(cluster, home);
  for (const [title, folder] of Object.entries(o.titles)) await ingestTitle(config, title, folder);

  const env = { ...process.env, REELCDN_ADMIN_TOKEN: ADMIN_TOKEN };
  const cli = steeringCli();
  const logTo = (name: string) => {
    const path = join(home, `${name}.log`);
    return { path, fd: openSync(path, 'a') };
  };
  const started: ChildProcess[] = [];
  /** Waits for a child's URL; a child that exits first is reported with the end of its log. */
  const ready = async (url: string, child: ChildProcess, log: { path: string }, timeoutMs?: number) => {
    await waitForHttp(url, child, timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}\n${log.path}:\n${readFileSync(log.path, 'utf8').slice(-3000)}`);
    });
  };
  const run = (name: string, argv: string[], log: { fd: number }) => {
    const [cmd, ...args] = argv as [string, ...string[]];
    const child = spawnTracked(cmd, args, { name, stdio: ['pipe', log.fd, log.fd], env });
    closeSync(log.fd);
    started.push(child);
    return child;
  };
  const stopAll = async () => {
    for (const c of started.reverse()) await stopChild(c, 10_000);
  };
  try {
    const originLog = logTo('origin');
    const origin = run('origin', [...o.clientPin, process.execPath, cli, 'origin', '--config', file], originLog);
    await ready(`${cluster.origin.adminUrl}/health`, origin, originLog, 30_000);

    const fakeEdges = fileURLToPath(new URL('./fake-edges.js', import.meta.url));
    const edgeArgs = o.edges.flatMap((e) => ['--edge', `${e.id}:${e.isp}:${e.adminPort}`]);
    const titles = Object.keys(o.titles).join(',');
    const edgesLog = logTo('edges');
    const edges = run('edges', [...o.clientPin, process.execPath, fakeEdges, ...edgeArgs, '--titles', titles, '--load', String(o.edgeLoad ?? 40)], edgesLog);
    await ready(`http://127.0.0.1:${o.edges[0]!.adminPort}/health`, edges, edgesLog);

    const prof = o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`] : [];
    const steeringLog = logTo('steering');
    const steering = run('steering', [...o.serverPin, process.execPath, ...prof, cli, 'steering', '--config', file], steeringLog);
    await ready(`${cluster.steering.adminUrl}/health`, steering, steeringLog, 30_000);
    await untilEligible(cluster.steering.adminUrl, o.edges.length, steering);
    return {
      url: cluster.steering.url,
      adminUrl: cluster.steering.adminUrl,
      pid: steering.pid!,
      describe:
        `reelcdn steering (Node ${process.version}${process.env.BENCH_STEERING_CLI ? `, ${cli}` : ''}) as its own process, the cluster file's defaults ` +
        `(log level info to ${steeringLog.path}, health polls every 500 ms, tokens signed), a real reelcdn origin, ${o.edges.length} edges answering its polls`,
      logFile: steeringLog.path,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Waits until steering counts `n` eligible edges (its first polls are in). */
async function untilEligible(adminUrl: string, n: number, child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    const res = await fetch(`${adminUrl}/health`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    last = await res.text();
    try {
      if ((JSON.parse(last) as { edges?: { eligible?: number } }).edges?.eligible === n) return;
    } catch {
      /* not JSON yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`steering did not see ${n} eligible edges within ${timeoutMs} ms (last /health: ${last.slice(0, 300)})\n${logTail(child)}`);
}

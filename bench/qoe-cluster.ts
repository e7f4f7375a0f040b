/**
 * The cluster the QoE bench plays from, as it is deployed: `reelcdn origin`, `reelcdn edge` and
 * `reelcdn steering` each their own process from the CLI with a generated cluster file (signing
 * on with a keys file, log level info to files, everything else the config's default), one edge
 * in the players' ISP. The origin sits behind a relay that delays each direction (qoe-delay.ts):
 * `origin.url` is the relay, the origin binds elsewhere with `--listen`. Titles are ingested once
 * into a data folder every run shares; each run gets a fresh edge data folder (a cold edge).
 */
import { type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateCluster } from '../src/common/config.js';
import { ingestTitle } from '../src/origin/ingest.js';
import { CLI, fillWindowAwayFrom } from './chaos-cluster.js';
import { freePort, spawnTracked, stopChild, waitForHttp } from './edge-procs.js';
import { type DelayRelay, startDelayRelay } from './qoe-delay.js';

export const QOE_ADMIN_TOKEN = 'bench-qoe-admin-token-0123456789';
const KEYS = { k1: 'bench-qoe-secret-0123456789abcdef' };
export const EDGE_ID = 'edge-a1';

export interface QoeClusterOptions {
  /** Folder shared by the runs (origin data, logs); each run's files are named by `run`. */
  home: string;
  run: string;
  /** `edges[].prefetch.enabled` (the default config when true: the key is left out). */
  prefetch: boolean;
  /** Delay each way between the edge and the origin, real ms. */
  originOneWayMs: number;
  /** Merged into `edges[].prefetch` of a run with prefetch on (e.g. a larger maxConcurrent); none: the defaults. */
  prefetchSettings?: Record<string, unknown>;
  /** `reelcdn edge --workers N`; undefined: the default (one per CPU). */
  workers?: number;
}

export interface QoeCluster {
  steeringUrl: string;
  /** The edge's primary process (its workers are its children). */
  edgePid: number;
  relay: DelayRelay;
  edgeAdminUrl: string;
  edgeLog: string;
  stop(): Promise<void>;
}

/** The cluster file of one run. */
function clusterFile(o: QoeClusterOptions, ports: { relay: number; originAdmin: number; steering: number; steeringAdmin: number; edge: number; edgeAdmin: number }) {
  const url = (p: number) => `http://127.0.0.1:${p}`;
  return {
    signing: { keysFile: 'signing-keys.json', activeKey: 'k1' },
    origin: { url: url(ports.relay), adminUrl: url(ports.originAdmin), dataDir: 'origin' },
    steering: { url: url(ports.steering), adminUrl: url(ports.steeringAdmin) },
    isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/8'] }],
    edges: [
      {
        id: EDGE_ID,
        isp: 'isp-a',
        url: url(ports.edge),
        adminUrl: url(ports.edgeAdmin),
        dataDir: `edges/${o.run}/${EDGE_ID}`,
        // What bench:edge gives its edge.
        diskBytes: 4 * 2 ** 30,
        memoryBytes: 192 * 2 ** 20,
        timezone: 'UTC',
        // No fill pass during the run, whatever the hour (the default window is 02:00-06:00).
        fill: { window: fillWindowAwayFrom(new Date()) },
        ...(o.prefetch ? (o.prefetchSettings ? { prefetch: o.prefetchSettings } : {}) : { prefetch: { enabled: false } }),
      },
    ],
  };
}

/** Ingests `mediaDir` as each of `titles` into the origin data folder under `home`. */
export async function ingestTitles(home: string, titles: readonly string[], mediaDir: string): Promise<void> {
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, 'signing-keys.json'), JSON.stringify(KEYS), { mode: 0o600 });
  const placeholder = { relay: 1, originAdmin: 1, steering: 1, steeringAdmin: 1, edge: 1, edgeAdmin: 1 };
  const config = validateCluster(clusterFile({ home, run: 'ingest', prefetch: true, originOneWayMs: 0 }, placeholder), home);
  for (const t of titles) await ingestTitle(config, t, mediaDir);
}

/** Waits until steering counts the edge eligible (its first health poll is in). */
async function untilEdgeEligible(adminUrl: string, steering: ChildProcess, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    if (steering.exitCode !== null) throw new Error(`steering exited (${steering.exitCode}) before it saw the edge`);
    const res = await fetch(`${adminUrl}/health`, { headers: { authorization: `Bearer ${QOE_ADMIN_TOKEN}` } });
    last = await res.text();
    try {
      if (((JSON.parse(last) as { edges?: { eligible?: number } }).edges?.eligible ?? 0) >= 1) return;
    } catch {
      /* not JSON yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`steering did not see the edge eligible within ${timeoutMs} ms (last /health: ${last.slice(0, 300)})`);
}

export async function startQoeCluster(o: QoeClusterOptions): Promise<QoeCluster> {
  const ports = {
    relay: await freePort(),
    origin: await freePort(),
    originAdmin: await freePort(),
    steering: await freePort(),
    steeringAdmin: await freePort(),
    edge: await freePort(),
    edgeAdmin: await freePort(),
  };
  const raw = clusterFile(o, ports);
  const file = join(o.home, `cluster-${o.run}.json`);
  writeFileSync(file, JSON.stringify(raw, null, 2));
  const logs = join(o.home, 'logs');
  mkdirSync(logs, { recursive: true });
  mkdirSync(join(o.home, 'edges', o.run, EDGE_ID), { recursive: true });

  const env = { ...process.env, REELCDN_ADMIN_TOKEN: QOE_ADMIN_TOKEN, REELCDN_EXIT_WITH_PARENT: '1' };
  const started: ChildProcess[] = [];
  let relay: DelayRelay | undefined;
  const run = (name: string, args: string[]) => {
    const path = join(logs, `${o.run}-${name}.log`);
    const fd = openSync(path, 'a');
    const child = spawnTracked(process.execPath, [CLI, ...args, '--config', file], { name, stdio: ['pipe', fd, fd], env });
    closeSync(fd);
    started.push(child);
    return { child, path };
  };
  /** A child's URL answering; one that exits first is reported with the end of its log. */
  const ready = async (url: string, p: { child: ChildProcess; path: string }) => {
    await waitForHttp(url, p.child, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${p.path}:\n${readFileSync(p.path, 'utf8').slice(-3000)}`);
    });
  };
  const stop = async () => {
    for (const c of started.reverse()) await stopChild(c, 10_000);
    await relay?.close();
  };
  try {
    relay = await startDelayRelay({ listenPort: ports.relay, targetPort: ports.origin, oneWayMs: o.originOneWayMs });
    const origin = run('origin', ['origin', '--listen', `127.0.0.1:${ports.origin}`]);
    await ready(`${raw.origin.adminUrl}/health`, origin);
    const edge = run('edge', ['edge', '--id', EDGE_ID, ...(o.workers === undefined ? [] : ['--workers', String(o.workers)])]);
    await ready(`${raw.edges[0]!.adminUrl}/health`, edge);
    const steering = run('steering', ['steering']);
    await ready(`${raw.steering.adminUrl}/health`, steering);
    await untilEdgeEligible(raw.steering.adminUrl, steering.child);
    relay.resetCount();
    return { steeringUrl: raw.steering.url, edgePid: edge.child.pid!, relay, edgeAdminUrl: raw.edges[0]!.adminUrl, edgeLog: edge.path, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

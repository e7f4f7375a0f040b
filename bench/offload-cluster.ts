/**
 * A real little cluster for fill tests and `bench:offload -- --real`: synthetic HLS titles
 * ingested into a real origin, edges of one ISP on loopback ports picked up front (the fill
 * manifests carry the cluster file's URLs, so they must be known before anything listens).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Clock } from '../src/common/clock.js';
import { type ClusterConfig, validateCluster } from '../src/common/config.js';
import { createEdgeServer, type EdgeServer, type EdgeServerOptions } from '../src/edge/server.js';
import { ingestTitle } from '../src/origin/ingest.js';
import { createOriginServer, type OriginServer } from '../src/origin/server.js';
import { seededBytes } from './seeded-random.js';

export const CLUSTER_ADMIN_TOKEN = 'fill-cluster-admin-token-0123456789';
export const CLUSTER_KEYS = { k1: 'fill-cluster-secret-0123456789' };

/** Ports free right now on 127.0.0.1 (bound to 0, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<import('node:net').Server>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}


/** A tiny HLS folder: one media playlist and `segments` .m4s files of the given sizes. */
export function writeHlsTitle(root: string, name: string, segmentBytes: number[], seed: number): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-TARGETDURATION:4', '#EXT-X-PLAYLIST-TYPE:VOD'];
  segmentBytes.forEach((size, i) => {
    writeFileSync(join(dir, `seg${i}.m4s`), seededBytes(size, seed * 1000 + i + 1));
    lines.push('#EXTINF:4.0,', `seg${i}.m4s`);
  });
  lines.push('#EXT-X-ENDLIST', '');
  writeFileSync(join(dir, 'index.m3u8'), lines.join('\n'));
  return dir;
}

export interface ClusterSpec {
  edges: number;
  diskBytes: number;
  sliceBytes: number;
  window?: string;
  timezone?: string;
  bytesPerSec?: number;
  pollIntervalMs?: number;
  pinnedTitles?: string[];
  memoryBytes?: number;
  halfLifeDays?: number;
  headroomRatio?: number;
  signingRequired?: boolean;
}

export interface ClusterFiles {
  base: string;
  config: ClusterConfig;
  /** The cluster file as JSON (written to base/cluster.json), for child processes. */
  file: string;
  raw: Record<string, unknown>;
}

/** A cluster file for one ISP ("isp-a") with `edges` nodes on fixed loopback ports. */
export async function makeCluster(spec: ClusterSpec): Promise<ClusterFiles> {
  const base = await mkdtemp(join(tmpdir(), 'reelcdn-fill-'));
  const ports = await freePorts(2 + 2 * spec.edges);
  const url = (p: number) => `http://127.0.0.1:${p}`;
  const raw = {
    signing: { keys: CLUSTER_KEYS, activeKey: 'k1', ttlSeconds: 3600, required: spec.signingRequired ?? true },
    origin: {
      url: url(ports[0]!),
      adminUrl: url(ports[1]!),
      dataDir: 'origin',
      fill: { headroomRatio: spec.headroomRatio ?? 0.1, halfLifeDays: spec.halfLifeDays ?? 2 },
    },
    steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
    isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/8'], pinnedTitles: spec.pinnedTitles ?? [] }],
    edges: Array.from({ length: spec.edges }, (_, i) => ({
      id: `a${i + 1}`,
      isp: 'isp-a',
      url: url(ports[2 + 2 * i]!),
      adminUrl: url(ports[3 + 2 * i]!),
      dataDir: `edge-a${i + 1}`,
      diskBytes: spec.diskBytes,
      memoryBytes: spec.memoryBytes ?? 16 * 1024 * 1024,
      sliceBytes: spec.sliceBytes,
      timezone: spec.timezone ?? 'UTC',
      fill: { window: spec.window ?? '00:00-24:00', bytesPerSec: spec.bytesPerSec ?? 50_000_000, pollIntervalMs: spec.pollIntervalMs ?? 600_000 },
    })),
    admin: { openHealth: true },
    log: { level: 'silent' },
  };
  const file = join(base, 'cluster.json');
  writeFileSync(file, JSON.stringify(raw, null, 2));
  return { base, config: validateCluster(raw, base), file, raw };
}

/** One request that reached the origin's public port. */
export interface OriginHit {
  path: string;
  /** Bytes asked for (the Range, or the whole file when there is none). */
  bytes: number;
  at: number;
}

export interface RunningOrigin {
  server: OriginServer;
  hits: OriginHit[];
  /** Bytes of `/o/{title}/{file}` asked for since the last reset. */
  bytesFor(title: string, file: string): number;
  close(): Promise<void>;
}

/** The real origin on the cluster file's ports, counting what edges ask of it. */
export async function startOrigin(config: ClusterConfig, clock?: Clock): Promise<RunningOrigin> {
  const server = createOriginServer({
    config,
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
    clock,
    adminToken: CLUSTER_ADMIN_TOKEN,
    catalogPollMs: 0,
    playFlushMs: 10,
    replanMs: 1000,
  });
  const hits: OriginHit[] = [];
  server.publicApp.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0]!;
    const entry = server.catalog().file(...(path.slice(3).split(/\/(.*)/s, 2) as [string, string]));
    const m = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''));
    const size = entry?.size ?? 0;
    const bytes = m ? Math.min(size, m[2] === '' ? size : Number(m[2]) + 1) - Number(m[1]) : size;
    hits.push({ path, bytes, at: (clock ?? { now: Date.now }).now() });
  });
  await server.start();
  return {
    server,
    hits,
    bytesFor: (title, file) => hits.filter((h) => h.path === `/o/${title}/${file}`).reduce((s, h) => s + h.bytes, 0),
    close: () => server.close(),
  };
}

/** Ingests synthetic titles: `titles[i]` gets `segments` segments of `segmentBytes(i, j)` bytes. */
export async function ingestSynthetic(config: ClusterConfig, names: string[], segments: number, segmentBytes: (i: number, j: number) => number): Promise<void> {
  const src = await mkdtemp(join(tmpdir(), 'reelcdn-src-'));
  for (const [i, name] of names.entries()) {
    const dir = writeHlsTitle(src, name, Array.from({ length: segments }, (_, j) => segmentBytes(i, j)), i + 1);
    await ingestTitle(config, name, dir);
  }
}

/** Posts plays (title → count on each of `days` days before `now`) to the origin's admin port. */
export async function postPlays(config: ClusterConfig, now: number, counts: Record<string, number>, days = 3, isp = 'isp-a'): Promise<void> {
  const plays: { title: string; isp: string; at: number }[] = [];
  for (let d = 1; d <= days; d++) {
    for (const [title, n] of Object.entries(counts)) for (let k = 0; k < n; k++) plays.push({ title, isp, at: now - d * 86_400_000 });
  }
  for (let i = 0; i < plays.length; i += 5000) {
    const res = await fetch(`${config.origin.adminUrl}/v1/plays`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLUSTER_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ plays: plays.slice(i, i + 5000) }),
    });
    if (res.status !== 204) throw new Error(`plays answered ${res.status}: ${await res.text()}`);
  }
}

/** A real edge on its cluster-file ports. */
export async function startClusterEdge(config: ClusterConfig, index: number, extra: Partial<EdgeServerOptions> = {}): Promise<EdgeServer> {
  const edge = config.edges[index]!;
  const server = createEdgeServer({ config, edge, adminToken: CLUSTER_ADMIN_TOKEN, autoFill: false, ...extra });
  await server.start();
  return server;
}

/**
 * Time that runs `speed` times faster than real time, timers included. Unlike VirtualClock
 * (which jumps to the next timer whenever the loop turns, even while another node's real I/O
 * is in flight), every node sees time pass at the same pace, so one node's idle poll timer
 * cannot make an hour vanish under another node's slice fetch.
 */
export class PacedClock implements Clock {
  private readonly realStart = performance.now();
  constructor(
    private readonly start: number,
    readonly speed: number,
  ) {}

  now(): number {
    return this.start + (performance.now() - this.realStart) * this.speed;
  }

  /** Paced time is derived from performance.now(), so it never goes back. */
  monotonic(): number {
    return this.now();
  }

  setTimeout(fn: () => void, ms: number): { id: NodeJS.Timeout } {
    const t = setTimeout(fn, Math.max(0, ms) / this.speed);
    t.unref();
    return { id: t };
  }

  clearTimeout(handle: { id: number | NodeJS.Timeout }): void {
    clearTimeout(handle.id as NodeJS.Timeout);
  }
}

import { createServer } from 'node:net';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { request } from 'undici';
import { type ClusterConfig, validateCluster } from '../../src/common/config.js';
import { signQuery } from '../../src/common/signing.js';
import { type EdgeServer, createEdgeServer } from '../../src/edge/server.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { type OriginServer, createOriginServer } from '../../src/origin/server.js';
import { type SteeringServer, createSteeringServer } from '../../src/steering/server.js';
import { TEST_ADMIN_TOKEN, tempDir } from './cluster.js';
import { FIXTURES } from './origin-harness.js';

/** A whole cluster in this process on loopback: a real origin, real edges, real steering. */
export interface OpsCluster {
  config: ClusterConfig;
  token: string;
  origin: OriginServer;
  edges: Map<string, EdgeServer>;
  steering: SteeringServer;
  steeringUrl: string;
  steeringAdminUrl: string;
  /** The title ingested from test/fixtures/media/dash. */
  title: string;
  /** Media files of that title (chunk-0-0000N.m4s), in order. */
  files: string[];
  /** GET a signed /c/ URL on one edge; returns status, X-Cache and body length. */
  fetchFromEdge(edgeId: string, file: string, headers?: Record<string, string>): Promise<{ status: number; cache: string; bytes: number }>;
  /** Closes one edge (as if it died). */
  killEdge(edgeId: string): Promise<void>;
  close(): Promise<void>;
}

export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<import('node:net').Server>((res) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => res(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export async function startOpsCluster(opts: { logger?: Logger; healthIntervalMs?: number } = {}): Promise<OpsCluster> {
  const logger = opts.logger ?? pino({ level: 'silent' });
  const [o, oa, s, sa, a1, a1a, a2, a2a, b1, b1a] = await freePorts(10);
  const url = (p: number | undefined) => `http://127.0.0.1:${p}`;
  const edge = (id: string, isp: string, p?: number, pa?: number) => ({
    id,
    isp,
    url: url(p),
    adminUrl: url(pa),
    dataDir: id,
    diskBytes: 64 * 1024 * 1024,
    memoryBytes: 16 * 1024 * 1024,
    timezone: 'UTC',
    fill: { window: '02:00-06:00', bytesPerSec: 10_000_000 },
  });
  const config = validateCluster(
    {
      signing: { keys: { k1: 'ops-test-secret-0123456789abcdef' }, activeKey: 'k1', ttlSeconds: 3600 },
      origin: { url: url(o), adminUrl: url(oa), dataDir: 'origin' },
      steering: { url: url(s), adminUrl: url(sa), healthIntervalMs: opts.healthIntervalMs ?? 250, downAfter: 2, upAfter: 2 },
      isps: [
        { id: 'isp-a', prefixes: ['127.0.0.0/16'] },
        { id: 'isp-b', prefixes: ['127.2.0.0/16'] },
      ],
      edges: [edge('edge-a1', 'isp-a', a1, a1a), edge('edge-a2', 'isp-a', a2, a2a), edge('edge-b1', 'isp-b', b1, b1a)],
      admin: { openHealth: false, openMetrics: false },
      log: { level: 'debug' },
    },
    tempDir('reelcdn-ops-'),
  );
  const title = 'ops-dash';
  const entry = await ingestTitle(config, title, join(FIXTURES, 'dash'));
  const files = entry.files.map((f) => f.path).filter((p) => p.startsWith('chunk-0-')).sort();

  const origin = createOriginServer({ config, logger: logger.child({ service: 'origin' }), adminToken: TEST_ADMIN_TOKEN, catalogPollMs: 0, playFlushMs: 10 });
  await origin.start();
  const edges = new Map<string, EdgeServer>();
  for (const e of config.edges) {
    const server = createEdgeServer({ config, edge: e, logger: logger.child({ service: 'edge', node: e.id }), adminToken: TEST_ADMIN_TOKEN, autoFill: false });
    await server.start();
    edges.set(e.id, server);
  }
  const steering = createSteeringServer({ config, logger: logger.child({ service: 'steering' }), adminToken: TEST_ADMIN_TOKEN, plays: { flushMs: 20 } });
  await steering.start();
  const closed = new Set<string>();

  return {
    config,
    token: TEST_ADMIN_TOKEN,
    origin,
    edges,
    steering,
    steeringUrl: config.steering.url,
    steeringAdminUrl: config.steering.adminUrl,
    title,
    files,
    async fetchFromEdge(edgeId, file, headers = {}) {
      const e = config.edges.find((x) => x.id === edgeId)!;
      const path = `/c/${title}/${file}`;
      const q = signQuery(config.signing.keys, config.signing.activeKey, path, Date.now() / 1000, 3600);
      const res = await request(`${e.url}${path}?${q}`, { headers });
      const body = Buffer.from(await res.body.arrayBuffer());
      return { status: res.statusCode, cache: String(res.headers['x-cache'] ?? ''), bytes: body.length };
    },
    async killEdge(edgeId) {
      closed.add(edgeId);
      await edges.get(edgeId)!.close();
    },
    async close() {
      await steering.close();
      for (const [id, e] of edges) if (!closed.has(id)) await e.close();
      await origin.close();
    },
  };
}

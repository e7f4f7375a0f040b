/**
 * The loopback cluster that steering's benches and tests share: one origin, one or more
 * steering servers and edges that steering only polls (nothing fetches media from them).
 * Tests import it from here because bench/ cannot import from test/.
 */
import { rmSync } from 'node:fs';
import Fastify from 'fastify';
import { type ClusterConfig, validateCluster } from '../src/common/config.js';
import type { Logger } from '../src/common/logger.js';
import { createOriginServer } from '../src/origin/server.js';
import { createSteeringServer } from '../src/steering/server.js';

/** An edge as the cluster file needs it: its admin port answers on its public URL. */
export interface ClusterEdge {
  id: string;
  url: string;
}

export interface SteeringClusterOptions {
  keys: Record<string, string>;
  /** Token lifetime; the config's default when left out. */
  ttlSeconds?: number;
  originUrl: string;
  originAdminUrl: string;
  /** Merged over a steering that listens nowhere (`http://127.0.0.1:1`): steering runs from code. */
  steering: Record<string, unknown>;
  edges: readonly ClusterEdge[];
  /** Each edge's ISP; by default edge-a* are in isp-a, the others in isp-b. */
  ispOf?: (edgeId: string) => string;
  log?: string;
}

/**
 * A cluster file before validation. Two ISPs so ranking has an overflow: isp-a holds
 * 127.0.0.0/16 (loopback clients) and isp-b 127.2.0.0/16.
 */
export function steeringClusterFile(o: SteeringClusterOptions) {
  const ispOf = o.ispOf ?? ((id: string) => (id.startsWith('edge-a') ? 'isp-a' : 'isp-b'));
  return {
    signing: { keys: o.keys, activeKey: 'k1', ...(o.ttlSeconds === undefined ? {} : { ttlSeconds: o.ttlSeconds }) },
    origin: { url: o.originUrl, adminUrl: o.originAdminUrl, dataDir: 'origin' },
    steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', ...o.steering },
    isps: [
      { id: 'isp-a', prefixes: ['127.0.0.0/16'] },
      { id: 'isp-b', prefixes: ['127.2.0.0/16'] },
    ],
    edges: o.edges.map((e) => ({
      id: e.id,
      isp: ispOf(e.id),
      url: e.url,
      adminUrl: e.url,
      dataDir: e.id,
      diskBytes: 1e9,
      memoryBytes: 1e8,
    })),
    log: { level: o.log ?? 'silent' },
  };
}

/** Edge admin ports that always report "ok" to steering's /health poll. */
async function startHealthyEdges(ids: readonly string[]): Promise<(ClusterEdge & { close: () => Promise<void> })[]> {
  const edges: (ClusterEdge & { close: () => Promise<void> })[] = [];
  for (const id of ids) {
    const app = Fastify();
    app.get('/health', async () => ({ status: 'ok', id, connections: 1, errorRatio: 0, disk: { usedBytes: 0, capacityBytes: 1 } }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    edges.push({ id, url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`, close: () => app.close() });
  }
  return edges;
}

const LOOPBACK = { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } };

/**
 * Healthy edges, an origin on `base` and a steering, all on loopback. The origin starts first
 * because steering's cluster file needs its real URLs; `beforeOrigin` gets the config the origin
 * will run with, to put titles in its data folder. `close` stops them all and removes `base`.
 */
export async function serveSteeringCluster(o: {
  base: string;
  logger: Logger;
  adminToken: string;
  edgeIds: readonly string[];
  cluster: Omit<SteeringClusterOptions, 'originUrl' | 'originAdminUrl' | 'edges'>;
  beforeOrigin?: (config: ClusterConfig) => Promise<void>;
}): Promise<{ urls: { publicUrl: string; adminUrl: string }; close: () => Promise<void> }> {
  const edges = await startHealthyEdges(o.edgeIds);
  const file = (originUrl: string, originAdminUrl: string) => steeringClusterFile({ ...o.cluster, originUrl, originAdminUrl, edges });
  const originConfig = validateCluster(file('http://127.0.0.1:1', 'http://127.0.0.1:1'), o.base);
  await o.beforeOrigin?.(originConfig);
  const origin = createOriginServer({ config: originConfig, logger: o.logger, adminToken: o.adminToken, listen: LOOPBACK });
  const originUrls = await origin.start();
  const config = validateCluster(file(originUrls.publicUrl, originUrls.adminUrl), o.base);
  const steering = createSteeringServer({ config, logger: o.logger, adminToken: o.adminToken, listen: LOOPBACK });
  const urls = await steering.start();
  return {
    urls,
    async close() {
      await steering.close();
      await origin.close();
      for (const e of edges) await e.close();
      rmSync(o.base, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `serve` in the child a bench spawns of itself (`--serve`), `main` otherwise; either
 * one failing ends the process with its stack.
 */
export function runBench(serve: () => Promise<void>, main: () => Promise<void>): void {
  (process.argv.includes('--serve') ? serve() : main()).catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  });
}

import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { steeringClusterFile } from '../../bench/steering-cluster.js';
import { type ClusterConfig, validateCluster } from '../../src/common/config.js';
import { catalogPath } from '../../src/origin/catalog.js';
import { type OriginServer, createOriginServer } from '../../src/origin/server.js';
import { type SteeringServer, createSteeringServer } from '../../src/steering/server.js';
import { FakeEdgeHealth, KEYS, TOKEN, silent } from '../steering-harness.js';

/**
 * A real origin and a real steering on loopback for manifest tests, with fake edge /health
 * servers (steering never fetches media). The origin re-reads its catalog every 50 ms and
 * steering refreshes its view every 100 ms, so a re-ingest shows within a few hundred ms.
 */
export interface ManifestWorld {
  base: string;
  config: ClusterConfig;
  edges: FakeEdgeHealth[];
  origin?: OriginServer;
  steering?: SteeringServer;
  steeringUrl: string;
  steeringAdminUrl: string;
  /** Starts the origin then steering (after the test has ingested what it needs). */
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function manifestWorld(): Promise<ManifestWorld> {
  const base = mkdtempSync(join(tmpdir(), 'reelcdn-manifests-'));
  const edges = await Promise.all(['edge-a1', 'edge-a2', 'edge-b1'].map((id) => new FakeEdgeHealth(id).start()));
  const raw = (originUrl: string, originAdminUrl: string) =>
    steeringClusterFile({ keys: KEYS, ttlSeconds: 3600, originUrl, originAdminUrl, steering: { healthIntervalMs: 50, downAfter: 2, upAfter: 1 }, edges });
  const world: ManifestWorld = {
    base,
    config: validateCluster(raw('http://127.0.0.1:1', 'http://127.0.0.1:1'), base),
    edges,
    steeringUrl: '',
    steeringAdminUrl: '',
    async start() {
      const origin = createOriginServer({
        config: world.config,
        logger: silent,
        registry: new Registry(),
        adminToken: TOKEN,
        catalogPollMs: 50,
        listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
      });
      world.origin = origin;
      const o = await origin.start();
      const config = validateCluster(raw(o.publicUrl, o.adminUrl), base);
      const steering = createSteeringServer({
        config,
        logger: silent,
        registry: new Registry(),
        adminToken: TOKEN,
        listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
        healthTimeoutMs: 2000,
        catalogRefreshMs: 100,
        missRefreshMs: 100,
      });
      world.steering = steering;
      const s = await steering.start();
      world.steeringUrl = s.publicUrl;
      world.steeringAdminUrl = s.adminUrl;
    },
    async close() {
      await world.steering?.close();
      await world.origin?.close();
      for (const e of edges) await e.stop();
    },
  };
  return world;
}

function findFile(dir: string, name: string): string | undefined {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const found = findFile(p, name);
      if (found) return found;
    } else if (e.name === name && statSync(p).isFile()) return p;
  }
  return undefined;
}

/**
 * Replaces an ingested manifest behind ingest's back, as a catalog written before manifests
 * were checked (or by hand) would hold it: the file's bytes and its catalog size and sha256.
 */
export function tamperManifest(config: ClusterConfig, title: string, file: string, text: string): void {
  const dataDir = config.origin.dataDir;
  const path = findFile(join(dataDir, 'titles', title), file.split('/').pop()!);
  if (!path) throw new Error(`${title}/${file} not found under the origin's titles`);
  writeFileSync(path, text);
  const catalog = JSON.parse(readFileSync(catalogPath(dataDir), 'utf8')) as {
    titles: { title: string; bytes: number; files: { path: string; size: number; sha256: string }[] }[];
  };
  const entry = catalog.titles.find((t) => t.title === title)!;
  const f = entry.files.find((x) => x.path === file)!;
  const bytes = Buffer.from(text);
  entry.bytes += bytes.length - f.size;
  f.size = bytes.length;
  f.sha256 = createHash('sha256').update(bytes).digest('hex');
  writeFileSync(catalogPath(dataDir), JSON.stringify(catalog));
}

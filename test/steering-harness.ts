import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll } from 'vitest';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { steeringClusterFile } from '../bench/steering-cluster.js';
import { type ClusterConfig, validateCluster } from '../src/common/config.js';
import { ingestTitle } from '../src/origin/ingest.js';
import { type OriginServer, createOriginServer } from '../src/origin/server.js';
import type { EdgeHealthReport } from '../src/steering/health.js';
import { type SteeringServer, type SteeringServerOptions, createSteeringServer } from '../src/steering/server.js';

export const TOKEN = 'steering-test-admin-token';
export const KEYS = { k1: 'steering-test-secret-0123456789' };
export const FIXTURES = resolve(import.meta.dirname, 'fixtures', 'media');
export const silent = pino({ level: 'silent' });

/**
 * A test double of an edge's admin port: answers GET /health with a report whose status
 * the test sets, can be stopped and restarted on the same port (a dead edge).
 */
export class FakeEdgeHealth {
  status: EdgeHealthReport['status'] = 'ok';
  /** What the edge's fill agent reports holding. */
  heldTitles: string[] = [];
  /** Its 5xx share and the answers it covers (the threshold wants a minimum volume). */
  errorRatio = 0;
  windowRequests = 0;
  polls = 0;
  authorized = 0;
  /** Play ids this edge "served media for", as GET /plays reports them (src/edge/play-seen.ts). */
  seenPlays: string[] = [];
  private app: FastifyInstance | undefined;
  port = 0;

  constructor(readonly id: string) {}

  async start(): Promise<this> {
    const app = Fastify();
    app.get('/health', async (req) => {
      this.polls++;
      if (req.headers.authorization === `Bearer ${TOKEN}`) this.authorized++;
      const report: EdgeHealthReport = {
        status: this.status,
        id: this.id,
        version: 'test',
        uptimeSec: 1,
        connections: 1,
        requestsPerSec: 0,
        bytesPerSec: 0,
        errorRatio: this.errorRatio,
        windowRequests: this.windowRequests,
        memory: { usedBytes: 0, capacityBytes: 100 },
        disk: { usedBytes: 0, capacityBytes: 100 },
        hitRatio: { requests: 0, bytes: 0 },
        fill: { heldTitles: this.heldTitles },
      };
      return report;
    });
    app.get('/plays', async (req) => {
      const since = Number((req.query as { since?: string }).since ?? 0);
      return { instance: `fake-${this.id}`, next: this.seenPlays.length, ids: this.seenPlays.slice(since), more: false, lost: false };
    });
    await app.listen({ host: '127.0.0.1', port: this.port });
    this.port = (app.server.address() as { port: number }).port;
    this.app = app;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    await this.app?.close();
    this.app = undefined;
  }
}

export interface SteeringWorld {
  origin: OriginServer;
  originUrls: { publicUrl: string; adminUrl: string };
  edges: FakeEdgeHealth[];
  config: ClusterConfig;
  start(extra?: Partial<SteeringServerOptions>): Promise<{ server: SteeringServer; publicUrl: string; adminUrl: string }>;
  close(): Promise<void>;
}

/** A real origin holding the fixture titles, four fake edges (two ISPs), and a steering config for them. */
export async function steeringWorld(): Promise<SteeringWorld> {
  const base = mkdtempSync(join(tmpdir(), 'reelcdn-steering-'));
  const edges = await Promise.all(['edge-a1', 'edge-a2', 'edge-b1', 'edge-b2'].map((id) => new FakeEdgeHealth(id).start()));
  const raw = (originUrl: string, originAdminUrl: string) =>
    steeringClusterFile({ keys: KEYS, ttlSeconds: 3600, originUrl, originAdminUrl, steering: { healthIntervalMs: 50, downAfter: 2, upAfter: 2, steeringTtlSeconds: 5 }, edges });
  const originConfig = validateCluster(raw('http://127.0.0.1:1', 'http://127.0.0.1:1'), base);
  await ingestTitle(originConfig, 'bbb-hls', join(FIXTURES, 'hls-bytes'));
  await ingestTitle(originConfig, 'bbb-seg', join(FIXTURES, 'hls-segments'));
  await ingestTitle(originConfig, 'bbb-dash', join(FIXTURES, 'dash'));
  const origin = createOriginServer({
    config: originConfig,
    logger: silent,
    registry: new Registry(),
    adminToken: TOKEN,
    listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    playFlushMs: 50,
  });
  const originUrls = await origin.start();
  const config = validateCluster(raw(originUrls.publicUrl, originUrls.adminUrl), base);
  const servers: SteeringServer[] = [];
  return {
    origin,
    originUrls,
    edges,
    config,
    async start(extra = {}) {
      const server = createSteeringServer({
        config,
        logger: silent,
        registry: new Registry(),
        adminToken: TOKEN,
        listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
        plays: { flushMs: 50, minBackoffMs: 50 },
        // Polls every 50 ms, but a loaded CI machine may take longer than that to answer one:
        // a refused connection (a stopped edge) still fails at once.
        healthTimeoutMs: 2000,
        ...extra,
      });
      servers.push(server);
      const urls = await server.start();
      return { server, ...urls };
    },
    async close() {
      for (const s of servers) await s.close();
      await origin.close();
      for (const e of edges) await e.stop();
    },
  };
}

/**
 * A steering world for one describe block: started before its tests, closed after them. The
 * fields are set once `beforeAll` has run.
 */
export function steeringWorldForSuite(): { world: SteeringWorld; steering: { server: SteeringServer; publicUrl: string; adminUrl: string } } {
  const suite = {} as ReturnType<typeof steeringWorldForSuite>;
  beforeAll(async () => {
    suite.world = await steeringWorld();
    suite.steering = await suite.world.start();
  }, 30_000);
  afterAll(async () => {
    await suite.world?.close();
  });
  return suite;
}

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { FakeClock } from '../../src/common/clock.js';
import { type ClusterConfig, validateCluster } from '../../src/common/config.js';
import { signQuery, verifyToken } from '../../src/common/signing.js';
import { createEdgeServer, type EdgeServer } from '../../src/edge/server.js';
import { TEST_ADMIN_TOKEN, TEST_KEYS, randomTitle, tempDir, writeMedia } from '../helpers/cluster.js';
import { deadPort, metricValue } from '../helpers/http-tools.js';
import { TestOrigin } from '../helpers/test-origin.js';

const SLICE = 65536;
const COOL_DOWN_MS = 60_000;

/** A cluster of a parent edge (at `parentUrl`) and a child that uses it, in front of `originUrl`. */
function parentChildCluster(base: string, originUrl: string, parentUrl: string, breaker = { failures: 2, coolDownMs: COOL_DOWN_MS }): ClusterConfig {
  const edge = (id: string, url: string) => ({
    id,
    isp: 'isp-a',
    url,
    adminUrl: 'http://127.0.0.1:1',
    dataDir: id,
    diskBytes: 64 * 1024 * 1024,
    memoryBytes: 16 * 1024 * 1024,
    sliceBytes: SLICE,
  });
  return validateCluster(
    {
      signing: { keys: TEST_KEYS, activeKey: 'k1', ttlSeconds: 3600 },
      origin: { url: originUrl, adminUrl: 'http://127.0.0.1:1', dataDir: 'origin' },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
      edges: [
        edge('edge-parent', parentUrl),
        { ...edge('edge-child', 'http://127.0.0.1:1'), parent: 'edge-parent', parentBreaker: breaker },
      ],
      log: { level: 'silent' },
    },
    base,
  );
}

async function startServer(
  config: ClusterConfig,
  id: string,
  port: number,
  clock?: FakeClock,
  logLines?: Record<string, unknown>[],
): Promise<{ server: EdgeServer; url: string }> {
  const server = createEdgeServer({
    config,
    edge: config.edges.find((e) => e.id === id)!,
    ...(clock ? { clock } : {}),
    ...(logLines ? { logger: pino({ level: 'info' }, { write: (line: string) => void logLines.push(JSON.parse(line)) }) } : {}),
    adminToken: TEST_ADMIN_TOKEN,
    autoFill: false,
    upstreamTimeouts: { connectMs: 500, headersMs: 500, bodyMs: 2000 },
    listen: { public: { host: '127.0.0.1', port }, admin: { host: '127.0.0.1', port: 0 } },
  });
  const { publicUrl } = await server.start();
  return { server, url: publicUrl };
}

async function get(edgeUrl: string, title: string, file: string): Promise<{ status: number; body: Buffer }> {
  const path = `/c/${title}/${file}`;
  const res = await request(`${edgeUrl}${path}?${signQuery(TEST_KEYS, 'k1', path, Date.now() / 1000, 3600)}`);
  return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
}

async function metric(server: EdgeServer, name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue(await server.metrics.registry.metrics(), name, labels);
}

/** /c/ answers the parent has finished (counted on response end, so poll briefly). */
async function parentAnswersReach(server: EdgeServer, atLeast: number): Promise<number> {
  let n = 0;
  for (let i = 0; i < 100; i++) {
    n = await metric(server, 'reelcdn_edge_requests_total');
    if (n >= atLeast) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return n;
}

describe('a child edge whose parent goes down', () => {
  const base = tempDir();
  const origin = new TestOrigin(base);
  const clock = new FakeClock(Date.now());
  let port: number;
  let config: ClusterConfig;
  let parent: EdgeServer | undefined;
  let child: { server: EdgeServer; url: string };
  const childLog: Record<string, unknown>[] = [];

  beforeAll(async () => {
    await origin.start();
    port = await deadPort();
    config = parentChildCluster(base, origin.url, `http://127.0.0.1:${port}`);
    parent = (await startServer(config, 'edge-parent', port)).server;
    child = await startServer(config, 'edge-child', 0, clock, childLog);
  });
  afterAll(async () => {
    await child?.server.close();
    await parent?.close();
    await origin.close();
  });

  it('serves cold objects from the origin while the parent is stopped, and goes back to the parent once a probe succeeds', async () => {
    const title = randomTitle();
    const files = ['a', 'b', 'c', 'd', 'e', 'f'].map((n, i) => ({ name: `${n}.ts`, data: writeMedia(base, title, `${n}.ts`, 2 * SLICE + 1000, 100 + i) }));
    const fetchOk = async (i: number) => {
      const a = await get(child.url, title, files[i]!.name);
      expect(a.status).toBe(200);
      expect(a.body.equals(files[i]!.data)).toBe(true);
    };

    // Parent up: the miss goes through it (signed, since the parent refuses unsigned requests).
    await fetchOk(0);
    expect(await parentAnswersReach(parent!, 1)).toBeGreaterThanOrEqual(1);
    expect(await metric(child.server, 'reelcdn_edge_parent_breaker_state', { state: 'closed' })).toBe(1);
    expect(await metric(child.server, 'reelcdn_edge_parent_fallbacks_total')).toBe(0);

    // Parent stopped: every cold object still comes, from the origin.
    await parent!.close();
    parent = undefined;
    await fetchOk(1);
    await fetchOk(2);
    expect(await metric(child.server, 'reelcdn_edge_parent_breaker_state', { state: 'open' })).toBe(1);
    const fallbacksWhenOpened = await metric(child.server, 'reelcdn_edge_parent_fallbacks_total');
    expect(fallbacksWhenOpened).toBeGreaterThanOrEqual(2);
    await fetchOk(3); // open: straight to the origin, no connect attempt to wait for
    expect(await metric(child.server, 'reelcdn_edge_parent_fallbacks_total')).toBeGreaterThan(fallbacksWhenOpened);
    expect(origin.countFor(`/o/${title}/d.ts`)).toBeGreaterThanOrEqual(1);

    // Parent back on the same address; after the cool-down one probe finds it and closes the breaker.
    parent = (await startServer(config, 'edge-parent', port)).server;
    clock.advance(COOL_DOWN_MS);
    await fetchOk(4);
    expect(await metric(child.server, 'reelcdn_edge_parent_breaker_state', { state: 'closed' })).toBe(1);
    expect(await metric(child.server, 'reelcdn_edge_parent_breaker_transitions_total', { to: 'half-open' })).toBe(1);
    expect(await metric(child.server, 'reelcdn_edge_parent_breaker_transitions_total', { to: 'closed' })).toBe(1);
    const fallbacksAfterProbe = await metric(child.server, 'reelcdn_edge_parent_fallbacks_total');

    // Closed again: misses go to the parent, not the origin.
    const before = await parentAnswersReach(parent, 1);
    await fetchOk(5);
    expect(await parentAnswersReach(parent, before + 1)).toBeGreaterThan(before);
    expect(await metric(child.server, 'reelcdn_edge_parent_fallbacks_total')).toBe(fallbacksAfterProbe);

    // One log line per transition, saying where misses go now and why.
    const lines = childLog.filter((l) => String(l.msg).startsWith('parent breaker'));
    expect(lines.map((l) => [l.from, l.to])).toEqual([
      ['closed', 'open'],
      ['open', 'half-open'],
      ['half-open', 'closed'],
    ]);
    expect(lines[0]!.level).toBe(40);
    expect(lines[0]!.reason).toBe('2 consecutive failures');
    expect(lines[0]!.msg).toMatch(/origin/);
  });
});

describe('a child edge whose parent answers badly', () => {
  const base = tempDir();
  const origin = new TestOrigin(base);
  // A real HTTP server in the parent's place that answers /c/ with whatever the test sets.
  const badParent = new TestOrigin(base);
  let child: { server: EdgeServer; url: string };

  beforeAll(async () => {
    await origin.start();
    await badParent.start();
    // Never opens here: each case must reach the parent to show that one bad answer is bypassed.
    const config = parentChildCluster(base, origin.url, badParent.url, { failures: 1000, coolDownMs: COOL_DOWN_MS });
    child = await startServer(config, 'edge-child', 0, new FakeClock(Date.now()));
  });
  afterAll(async () => {
    await child?.server.close();
    await badParent.close();
    await origin.close();
  });

  it.each<[string, { status?: number; delayMs?: number }]>([
    ['a 503', { status: 503 }],
    ['a 500', { status: 500 }],
    ['nothing before the headers timeout', { delayMs: 3000 }],
  ])('asks the origin when the parent answers %s', async (_name, behaviour) => {
    const title = randomTitle();
    const data = writeMedia(base, title, 'x.ts', 1000);
    badParent.behaviour.set(`/c/${title}/x.ts`, behaviour);
    const a = await get(child.url, title, 'x.ts');
    expect(a.status).toBe(200);
    expect(a.body.equals(data)).toBe(true);
    expect(badParent.countFor(`/c/${title}/x.ts`)).toBe(1);
    // the origin's request is at /o/, signed for that path (the origin serves edges only)
    expect(origin.countFor(`/o/${title}/x.ts`)).toBe(1);
    const q = new URLSearchParams(origin.requests.find((r) => r.path === `/o/${title}/x.ts`)!.query);
    expect(verifyToken(TEST_KEYS, `/o/${title}/x.ts`, { e: q.get('e'), k: q.get('k'), t: q.get('t') }, Date.now() / 1000)).toEqual({ ok: true });
  });

  it('passes a 404 from a live parent on without asking the origin', async () => {
    const title = randomTitle();
    badParent.behaviour.set(`/c/${title}/gone.ts`, { status: 404 });
    const a = await get(child.url, title, 'gone.ts');
    expect(a.status).toBe(404);
    expect(origin.countFor(`/o/${title}/gone.ts`)).toBe(0);
  });
});

import { join } from 'node:path';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterConfig, validateCluster } from '../../src/common/config.js';
import { type EdgeServer, createEdgeServer } from '../../src/edge/server.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { utcDay } from '../../src/origin/plays.js';
import { type OriginServer, createOriginServer } from '../../src/origin/server.js';
import { type SteeringServer, createSteeringServer } from '../../src/steering/server.js';
import { TEST_ADMIN_TOKEN, tempDir } from '../helpers/cluster.js';
import { freePorts } from '../helpers/ops-cluster.js';
import { FIXTURES } from '../helpers/origin-harness.js';

/**
 * A real origin, two real edges and real steering on loopback. Clients are told apart by the
 * local address they bind (all of 127.0.0.0/16 is one ISP), as steering tells them apart.
 */
const silent = pino({ level: 'silent' });
let config: ClusterConfig;
let origin: OriginServer;
const edges: EdgeServer[] = [];
let steering: SteeringServer;
const agents: Agent[] = [];

const clientAt = (address: string) => {
  const a = new Agent({ localAddress: address });
  agents.push(a);
  return a;
};

beforeAll(async () => {
  const [o, oa, s, sa, a1, a1a, a2, a2a] = await freePorts(8);
  const url = (p: number | undefined) => `http://127.0.0.1:${p}`;
  const edge = (id: string, p?: number, pa?: number) => ({
    id,
    isp: 'isp-a',
    url: url(p),
    adminUrl: url(pa),
    dataDir: id,
    diskBytes: 64 * 1024 * 1024,
    memoryBytes: 16 * 1024 * 1024,
  });
  config = validateCluster(
    {
      signing: { keys: { k1: 'plays-test-secret-0123456789abcdef' }, activeKey: 'k1', ttlSeconds: 3600 },
      origin: { url: url(o), adminUrl: url(oa), dataDir: 'origin' },
      steering: { url: url(s), adminUrl: url(sa), healthIntervalMs: 100, downAfter: 2, upAfter: 1 },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
      edges: [edge('edge-a1', a1, a1a), edge('edge-a2', a2, a2a)],
      admin: { openHealth: false, openMetrics: false },
      log: { level: 'silent' },
    },
    tempDir('reelcdn-plays-'),
  );
  for (const t of ['dash-curl', 'dash-twice', 'dash-two']) await ingestTitle(config, t, join(FIXTURES, 'dash'));
  await ingestTitle(config, 'hls-seg', join(FIXTURES, 'hls-segments'));
  origin = createOriginServer({ config, logger: silent, adminToken: TEST_ADMIN_TOKEN, catalogPollMs: 0, playFlushMs: 10 });
  await origin.start();
  for (const e of config.edges) {
    const server = createEdgeServer({ config, edge: e, logger: silent, adminToken: TEST_ADMIN_TOKEN, autoFill: false });
    await server.start();
    edges.push(server);
  }
  steering = createSteeringServer({ config, logger: silent, adminToken: TEST_ADMIN_TOKEN, plays: { flushMs: 20 } });
  await steering.start();
}, 30_000);

afterAll(async () => {
  await steering?.close();
  for (const e of edges) await e.close();
  await origin?.close();
  for (const a of agents) await a.close();
});

const playsOf = (title: string) => origin.plays().countsFor(utcDay(Date.now()))['isp-a']?.[title] ?? 0;

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 8000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function get(url: string, agent: Agent): Promise<{ status: number; text: string }> {
  const res = await request(url, { dispatcher: agent });
  return { status: res.statusCode, text: await res.body.text() };
}

/** Steering's top-level manifest, as a player fetches it. */
async function manifest(agent: Agent, title: string, file: string): Promise<string> {
  const r = await get(`${config.steering.url}/v1/play/${title}/${file}`, agent);
  expect(r.status).toBe(200);
  return r.text;
}

/**
 * What a player fetches first from the edge: the initialization segment (if any) and the first
 * media segment of the first rendition, following HLS media playlists.
 */
async function firstSegmentUrls(agent: Agent, text: string): Promise<string[]> {
  if (text.startsWith('#EXTM3U')) {
    const uri = text.split('\n').find((l) => l.trim() !== '' && !l.startsWith('#'))!.trim();
    if (uri.includes('/v1/play/')) return firstSegmentUrls(agent, (await get(uri, agent)).text);
    const map = /#EXT-X-MAP:.*URI="([^"]+)"/.exec(text)?.[1];
    return map ? [map, uri] : [uri];
  }
  const base = /<BaseURL[^>]*>([^<]+)<\/BaseURL>/.exec(text)![1]!;
  const rep = text.slice(text.indexOf('<Representation'));
  const init = /<Initialization[^>]*\bsourceURL="([^"]+)"/.exec(rep)?.[1];
  const media = /<SegmentURL[^>]*\bmedia="([^"]+)"/.exec(rep)![1]!;
  return (init ? [init, media] : [media]).map((u) => new URL(u.replaceAll('&amp;', '&'), base).toString());
}

/** A player's start: the manifest, then its first segments from the edge it names. */
async function playWithSegment(agent: Agent, title: string, file: string): Promise<void> {
  for (const url of await firstSegmentUrls(agent, await manifest(agent, title, file))) {
    expect((await get(url, agent)).status).toBe(200);
  }
}

/** Steering's own account of the plays edges confirmed (its /health). */
async function confirmations(): Promise<{ counted: number; duplicate: number }> {
  const res = await request(`${config.steering.adminUrl}/health`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
  const h = (await res.body.json()) as { plays: { counted?: number; duplicate?: number } };
  return { counted: h.plays.counted ?? 0, duplicate: h.plays.duplicate ?? 0 };
}

describe('plays count only with segment traffic, once per client and title per window', () => {
  it('itCountsNoPlayFor30ManifestGetsWithoutASegment', async () => {
    const curl = clientAt('127.0.0.20');
    for (let i = 0; i < 30; i++) await manifest(curl, 'dash-curl', 'manifest.mpd');
    // A real player afterwards: once its play is counted, the 30 manifests had their chance.
    await playWithSegment(clientAt('127.0.0.21'), 'dash-curl', 'manifest.mpd');
    await until('the player to be counted', () => playsOf('dash-curl') >= 1 || undefined);
    await new Promise((r) => setTimeout(r, 300));
    expect(playsOf('dash-curl')).toBe(1);
  });

  it('itCountsAManifestAndASegmentOnceAndAgainWithinTheWindowStillOnce', async () => {
    const viewer = clientAt('127.0.0.30');
    const before = await confirmations();
    await playWithSegment(viewer, 'hls-seg', 'master.m3u8');
    await until('the first play to be counted', () => playsOf('hls-seg') >= 1 || undefined);
    await playWithSegment(viewer, 'hls-seg', 'master.m3u8');
    await until('the second play to be seen as a duplicate', async () => (await confirmations()).duplicate > before.duplicate || undefined);
    await new Promise((r) => setTimeout(r, 100));
    expect(playsOf('hls-seg')).toBe(1);
  });

  it('itCountsTwoClientAddressesAsTwoPlays', async () => {
    const before = await confirmations();
    let n = 0;
    for (const address of ['127.0.0.40', '127.0.1.40']) {
      const c = clientAt(address);
      await playWithSegment(c, 'dash-twice', 'manifest.mpd');
      n++;
      await until(`client ${address} to be counted`, () => playsOf('dash-twice') >= n || undefined);
      await playWithSegment(c, 'dash-twice', 'manifest.mpd');
    }
    await until('the repeats to be seen as duplicates', async () => (await confirmations()).duplicate >= before.duplicate + 2 || undefined);
    await new Promise((r) => setTimeout(r, 100));
    expect(playsOf('dash-twice')).toBe(2);
  });

  it('itGuardsEdgePlaysWithTheAdminTokenAndRefusesABadCursor', async () => {
    const admin = config.edges[0]!.adminUrl;
    const auth = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
    expect((await request(`${admin}/plays?since=0`)).statusCode).toBe(401);
    for (const since of ['-1', 'abc', '1e3', '9999999999999999']) {
      const r = await request(`${admin}/plays?since=${since}`, { headers: auth });
      expect(r.statusCode).toBe(400);
      expect(await r.body.text()).toMatch(/since/);
    }
    const ok = await request(`${admin}/plays?since=0`, { headers: auth });
    expect(ok.statusCode).toBe(200);
    expect(await ok.body.json()).toMatchObject({ instance: expect.any(String), next: expect.any(Number), ids: expect.any(Array) });
  });

  it('itStillServesUrlsWithoutAPlayIdAndCountsNothingForThem', async () => {
    const c = clientAt('127.0.0.50');
    for (const u of await firstSegmentUrls(c, await manifest(c, 'dash-two', 'manifest.mpd'))) {
      const url = new URL(u);
      url.searchParams.delete('pl');
      expect((await get(url.toString(), c)).status).toBe(200);
    }
    await new Promise((r) => setTimeout(r, 400));
    expect(playsOf('dash-two')).toBe(0);
  });
});

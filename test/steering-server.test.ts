import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { verifyToken } from '../src/common/signing.js';
import { utcDay } from '../src/origin/plays.js';
import type { SteeringServer } from '../src/steering/server.js';
import { KEYS, type SteeringWorld, TOKEN, steeringWorld } from './steering-harness.js';

let world: SteeringWorld;
let steering: { server: SteeringServer; publicUrl: string; adminUrl: string };
const fromIspB = new Agent({ localAddress: '127.2.0.5' });

async function get(url: string, opts: { agent?: Agent; headers?: Record<string, string>; method?: 'GET' | 'OPTIONS' } = {}) {
  const res = await request(url, { method: opts.method ?? 'GET', dispatcher: opts.agent, headers: opts.headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers as Record<string, string>, text };
}

function verifies(url: string): boolean {
  const u = new URL(url);
  return verifyToken(KEYS, u.pathname, { e: u.searchParams.get('e'), k: u.searchParams.get('k'), t: u.searchParams.get('t') }, Date.now() / 1000).ok;
}

async function until(cond: () => Promise<boolean> | boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const steerOf = async (title: string, agent?: Agent) => {
  const r = await get(`${steering.publicUrl}/v1/steer/${title}.json?_HLS_pathway=edge-a1&_HLS_throughput=123456`, { agent });
  return r.status === 200 ? (JSON.parse(r.text)['PATHWAY-PRIORITY'] as string[]) : r.status;
};

beforeAll(async () => {
  world = await steeringWorld();
  steering = await world.start();
}, 30_000);

afterAll(async () => {
  await world?.close();
  await fromIspB.close();
});

describe('steering server', () => {
  it('itServesAMultivariantPlaylistWithOnePathwayPerEdgeClientIspFirst', async () => {
    const r = await get(`${steering.publicUrl}/v1/play/bbb-hls/master.m3u8`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toContain('application/vnd.apple.mpegurl');
    expect(r.headers['access-control-allow-origin']).toBe('*');
    const m = /#EXT-X-CONTENT-STEERING:SERVER-URI="([^"]+)",PATHWAY-ID="([^"]+)"/.exec(r.text)!;
    expect(m[1]).toBe(`${steering.publicUrl}/v1/steer/bbb-hls.json`);
    expect(m[2]).toMatch(/^edge-a/);
    const pathways = [...new Set([...r.text.matchAll(/#EXT-X-STREAM-INF:.*PATHWAY-ID="([^"]+)"/g)].map((x) => x[1]))];
    expect(pathways.slice(0, 2).every((p) => p!.startsWith('edge-a'))).toBe(true);
    expect(new Set(pathways)).toEqual(new Set(['edge-a1', 'edge-a2', 'edge-b1', 'edge-b2']));
    expect(world.edges.every((e) => e.authorized > 0)).toBe(true);
  });

  it('itServesMediaPlaylistsWithSignedEdgeUrlsPerPathway', async () => {
    const master = await get(`${steering.publicUrl}/v1/play/bbb-hls/master.m3u8`);
    const mediaUrl = master.text.split('\n').find((l) => l.includes('stream_180p.m3u8?pathway=edge-b2'))!;
    const r = await get(mediaUrl);
    expect(r.status).toBe(200);
    const uris = r.text.split('\n').filter((l) => l.startsWith('http'));
    expect(uris).toHaveLength(6);
    const edgeB2 = world.edges.find((e) => e.id === 'edge-b2')!;
    for (const u of uris) {
      expect(u.startsWith(`${edgeB2.url}/c/bbb-hls/stream_180p.mp4?`)).toBe(true);
      expect(verifies(u)).toBe(true);
    }
    expect(r.text).toContain('#EXT-X-BYTERANGE:22202@1354');
    const map = /#EXT-X-MAP:URI="([^"]+)"/.exec(r.text)!;
    expect(verifies(map[1]!)).toBe(true);
    // Without a pathway: the first-ranked edge.
    const plain = await get(`${steering.publicUrl}/v1/play/bbb-seg/index_180p.m3u8`);
    expect(plain.status).toBe(200);
    const first = plain.text.split('\n').find((l) => l.startsWith('http'))!;
    expect(first).toMatch(/\/c\/bbb-seg\/seg_180p_000\.m4s\?e=\d+&k=k1&t=/);
    expect(verifies(first)).toBe(true);
  });

  it('itServesDashWithBaseUrlsPerEdgeAndSignedSegments', async () => {
    const r = await get(`${steering.publicUrl}/v1/play/bbb-dash/manifest.mpd`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toContain('application/dash+xml');
    expect(r.text.match(/<BaseURL serviceLocation=/g)).toHaveLength(4);
    expect(r.text).toContain(`<ContentSteering defaultServiceLocation="edge-a`);
    const seg = /media="(chunk-0-00001\.m4s\?[^"]+)"/.exec(r.text)![1]!.replaceAll('&amp;', '&');
    expect(verifies(new URL(seg, `${world.edges[0]!.url}/c/bbb-dash/`).href)).toBe(true);
  });

  it('itAnswersSteeringManifestsAndLocate', async () => {
    const r = await get(`${steering.publicUrl}/v1/steer/bbb-hls.json?_HLS_pathway=edge-a1&_HLS_throughput=5000000&_DASH_pathway=x`);
    expect(r.status).toBe(200);
    const body = JSON.parse(r.text);
    expect(body.VERSION).toBe(1);
    expect(body.TTL).toBe(5);
    expect(body['RELOAD-URI']).toBe(`${steering.publicUrl}/v1/steer/bbb-hls.json`);
    expect(body['PATHWAY-PRIORITY']).toHaveLength(4);
    expect(body['SERVICE-LOCATION-PRIORITY']).toEqual(body['PATHWAY-PRIORITY']);
    const loc = await get(`${steering.publicUrl}/v1/locate/bbb-seg/seg_180p_003.m4s`);
    expect(loc.status).toBe(200);
    const l = JSON.parse(loc.text);
    expect(l).toMatchObject({ title: 'bbb-seg', file: 'seg_180p_003.m4s', isp: 'isp-a' });
    expect(l.urls.map((u: { edge: string }) => u.edge)).toEqual(body['PATHWAY-PRIORITY'].length === 4 ? (await steerOf('bbb-seg')) : []);
    for (const u of l.urls) expect(verifies(u.url)).toBe(true);
  });

  it('itSendsIspBClientsToIspBEdges', async () => {
    const p = await steerOf('bbb-hls', fromIspB);
    expect(Array.isArray(p) && p.slice(0, 2).every((id) => id.startsWith('edge-b'))).toBe(true);
    const loc = JSON.parse((await get(`${steering.publicUrl}/v1/locate/bbb-hls/stream_360p.mp4`, { agent: fromIspB })).text);
    expect(loc.isp).toBe('isp-b');
    expect(loc.urls[0].edge).toMatch(/^edge-b/);
  });

  it('itRefusesUnknownTitlesFilesAndBadPaths', async () => {
    expect((await get(`${steering.publicUrl}/v1/play/nope/master.m3u8`)).status).toBe(404);
    expect((await get(`${steering.publicUrl}/v1/play/bbb-hls/nope.m3u8`)).status).toBe(404);
    expect((await get(`${steering.publicUrl}/v1/locate/bbb-hls/nope.mp4`)).status).toBe(404);
    // A steering manifest of a title not (or no longer) in the catalog: 410, players stop reloading
    // it — once a catalog fetched after the request says so (503 + Retry-After until then).
    expect([410, 503]).toContain((await get(`${steering.publicUrl}/v1/steer/nope.json`)).status);
    await until(async () => (await get(`${steering.publicUrl}/v1/steer/nope.json`)).status === 410, 5000);
    expect((await get(`${steering.publicUrl}/v1/play/bbb-hls/..%2f..%2fetc%2fpasswd`)).status).toBe(400);
    expect((await get(`${steering.publicUrl}/v1/locate/bbb-hls/%2e%2e/x`)).status).toBe(400);
    expect((await get(`${steering.publicUrl}/v1/play/bbb-hls/stream_180p.mp4`)).status).toBe(400);
    expect((await get(`${steering.publicUrl}/v1/steer/bad.txt`)).status).toBe(400);
    const pre = await get(`${steering.publicUrl}/v1/play/bbb-hls/master.m3u8`, { method: 'OPTIONS' });
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-methods']).toContain('GET');
  });

  it('itTakesADeadEdgeOutAndBringsItBack', async () => {
    const victim = world.edges.find((e) => e.id === 'edge-a2')!;
    await victim.stop();
    await until(async () => {
      const p = await steerOf('bbb-hls');
      return Array.isArray(p) && !p.includes('edge-a2');
    });
    expect(steering.server.health.get('edge-a2')!.state).toBe('down');
    const edges = JSON.parse((await get(`${steering.adminUrl}/v1/edges`, { headers: { authorization: `Bearer ${TOKEN}` } })).text);
    const a2 = edges.edges.find((e: { id: string }) => e.id === 'edge-a2');
    expect(a2.state).toBe('down');
    expect(a2.reason).toMatch(/poll failed/);
    await victim.start();
    await until(async () => {
      const p = await steerOf('bbb-hls');
      return Array.isArray(p) && p.includes('edge-a2');
    });
  });

  it('itStopsOfferingADrainingEdgeAtOnce', async () => {
    const e = world.edges.find((x) => x.id === 'edge-b1')!;
    e.status = 'draining';
    await until(() => steering.server.health.get('edge-b1')!.state === 'down', 1000);
    expect(steering.server.health.get('edge-b1')!.reason).toBe('draining');
    e.status = 'ok';
    await until(() => steering.server.health.get('edge-b1')!.state === 'up');
  });

  it('itAnswers503WithRetryAfterWhenNoEdgeIsHealthy', async () => {
    for (const e of world.edges) e.status = 'overloaded';
    await until(async () => (await steerOf('bbb-hls')) === 503);
    const r = await get(`${steering.publicUrl}/v1/play/bbb-hls/master.m3u8`);
    expect(r.status).toBe(503);
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    for (const e of world.edges) e.status = 'ok';
    await until(async () => Array.isArray(await steerOf('bbb-hls')));
  });

  it('itReportsPlaysToTheOriginOnceAnEdgeServedTheirMedia', async () => {
    const playsOf = (isp: string, title: string) => world.origin.plays().countsFor(utcDay(Date.now()))[isp]?.[title] ?? 0;
    const playIdIn = (text: string) => /[?&;]pl=([A-Za-z0-9_-]{22})\b/.exec(text)![1]!;
    const dash = await get(`${steering.publicUrl}/v1/play/bbb-dash/manifest.mpd`, { agent: fromIspB });
    const hls = await get(`${steering.publicUrl}/v1/play/bbb-seg/master.m3u8`);
    // Manifests alone count nothing (earlier tests fetched many); the edges' reports do.
    world.edges.find((e) => e.id === 'edge-b1')!.seenPlays.push(playIdIn(dash.text));
    world.edges.find((e) => e.id === 'edge-a2')!.seenPlays.push(playIdIn(hls.text));
    await until(() => playsOf('isp-b', 'bbb-dash') >= 1 && playsOf('isp-a', 'bbb-seg') >= 1);
    expect(playsOf('isp-a', 'bbb-hls')).toBe(0);
  });

  it('itAgreesWithAnotherSteeringInstance', async () => {
    const other = await world.start();
    for (const title of ['bbb-hls', 'bbb-seg', 'bbb-dash']) {
      for (const agent of [undefined, fromIspB]) {
        const a = await get(`${steering.publicUrl}/v1/locate/${title}/${title === 'bbb-dash' ? 'init-0.m4s' : title === 'bbb-seg' ? 'init_180p.mp4' : 'stream_180p.mp4'}`, { agent });
        const b = await get(`${other.publicUrl}/v1/locate/${title}/${title === 'bbb-dash' ? 'init-0.m4s' : title === 'bbb-seg' ? 'init_180p.mp4' : 'stream_180p.mp4'}`, { agent });
        expect(JSON.parse(b.text).urls.map((u: { edge: string }) => u.edge)).toEqual(JSON.parse(a.text).urls.map((u: { edge: string }) => u.edge));
      }
    }
    for (let i = 0; i < 1000; i++) expect(other.server.ring.rank(`t-${i}`)).toEqual(steering.server.ring.rank(`t-${i}`));
  });

  it('itExposesHealthMetricsAndGuardsAdmin', async () => {
    expect((await get(`${steering.adminUrl}/health`)).status).toBe(200);
    expect((await get(`${steering.adminUrl}/metrics`)).status).toBe(401);
    const m = await get(`${steering.adminUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(m.text).toMatch(/reelcdn_steering_decisions_total\{kind="play",isp="isp-a",outcome="ok"/);
    expect(m.text).toContain('reelcdn_steering_edge_state{edge="edge-a1"');
    expect(m.text).toContain('reelcdn_steering_health_poll_seconds_bucket');
    expect(m.text).toContain('reelcdn_steering_plays_sent');
    expect((await get(`${steering.adminUrl}/v1/edges`)).status).toBe(401);
  });
});

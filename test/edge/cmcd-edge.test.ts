import type { Socket } from 'node:net';
import { Client, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cmcdHeaders, formatCmcd } from '../../src/common/cmcd.js';
import { createLogger } from '../../src/common/logger.js';
import { signQuery } from '../../src/common/signing.js';
import type { EdgeHealth } from '../../src/edge/edge-health.js';
import { TEST_ADMIN_TOKEN, TEST_KEYS, randomTitle, tempDir, testCluster, writeMedia } from '../helpers/cluster.js';
import { EdgePrefetcher } from '../../src/edge/prefetch.js';
import type { PrefetchAsk } from '../../src/edge/prefetch-hook.js';
import { type RunningEdge, startEdge } from '../helpers/edge-harness.js';
import { parsePrometheusText, sumOf } from '../helpers/prom-parse.js';
import { TestOrigin } from '../helpers/test-origin.js';

/**
 * CMCD end to end on a real edge in front of a real origin, through both of its serving paths:
 * the raw hit path and the object routes (hitPath off). What players say reaches the metrics,
 * /health's qoe block and the access line; it never changes the cache key nor helps a token;
 * answers carry CMSD that a page on another origin can read.
 */
const S = 64 * 1024;

interface Line {
  msg: string;
  path?: string;
  sid?: string;
  br?: number;
  bl?: number;
}

const cmcdQuery = (c: Parameters<typeof formatCmcd>[0]) => `&CMCD=${encodeURIComponent(formatCmcd(c))}`;

describe.each([
  { path: 'hit path', hitPath: true },
  { path: 'object routes', hitPath: false },
])('CMCD and CMSD on the edge ($path)', ({ hitPath }) => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  const config = testCluster({ sliceBytes: S });
  const lines: Line[] = [];
  let edge: RunningEdge;

  beforeAll(async () => {
    await origin.start();
    const logger = createLogger('edge', 'info', 'edge-a1', { write: (l: string) => void lines.push(JSON.parse(l) as Line) });
    edge = await startEdge(config, origin.url, { hitPath, logger });
  });
  afterAll(async () => {
    await edge?.close();
    await origin.close();
  });

  function signed(path: string): string {
    return `${path}?${signQuery(TEST_KEYS, 'k1', path, Date.now() / 1000, 3600)}`;
  }

  const get = (pathAndQuery: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' | 'OPTIONS' = 'GET') => edge.send(pathAndQuery, headers, method);

  async function metrics() {
    return parsePrometheusText(await edge.server.metrics.registry.metrics());
  }

  async function health(): Promise<EdgeHealth> {
    const res = await request(`${edge.adminUrl}/health`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
    return (await res.body.json()) as EdgeHealth;
  }

  it('itCountsCmcdFromTheQueryAndFromAllFourHeaders: metrics and the health qoe block', async () => {
    const title = randomTitle();
    const data = writeMedia(root, title, 'seg1.m4s', 3 * S);
    writeMedia(root, title, 'index.m3u8', 500);
    const before = (await health()).qoe;
    expect(before).toMatchObject({ requests: 0, sessions: 0, startupCounts: new Array(10).fill(0) });
    const sid = `sess-${title}`;
    // Startup: the manifest and first segment with su, the next one without.
    let a = await get(signed(`/c/${title}/index.m3u8`) + cmcdQuery({ ot: 'm', sid, su: true }));
    expect(a.status).toBe(200);
    a = await get(signed(`/c/${title}/seg1.m4s`) + cmcdQuery({ ot: 'v', br: 3000, bl: 0, sid, su: true, mtp: 25000, dl: 4000 }));
    expect(a.status).toBe(200);
    expect(a.body.equals(data)).toBe(true);
    await new Promise((r) => setTimeout(r, 30));
    // The same in the four headers: a starved buffer this time, and a range.
    a = await get(signed(`/c/${title}/seg1.m4s`), { range: 'bytes=10-99', ...cmcdHeaders({ ot: 'v', br: 3000, bl: 1200, sid, bs: true, mtp: 18000 }) });
    expect(a.status).toBe(206);
    expect(a.body.equals(data.subarray(10, 100))).toBe(true);
    expect(Object.keys(cmcdHeaders({ ot: 'v', bl: 1, sid, bs: true }))).toEqual(['CMCD-Object', 'CMCD-Request', 'CMCD-Session', 'CMCD-Status']);

    const q = (await health()).qoe;
    expect(q).toMatchObject({ sessions: 1, requests: 3, mediaRequests: 2, starved: 1, brKbpsSum: 6000, brCount: 2, blMsSum: 1200, blCount: 2 });
    expect(q.startupCounts.reduce((x, y) => x + y, 0)).toBe(1);
    expect(edge.server.health().qoe).toEqual(q);

    const m = await metrics();
    expect(sumOf(m, 'reelcdn_edge_cmcd_requests_total', { ot: 'v' })).toBe(2);
    expect(sumOf(m, 'reelcdn_edge_cmcd_requests_total', { ot: 'm' })).toBe(1);
    expect(sumOf(m, 'reelcdn_edge_cmcd_sessions_total')).toBe(1);
    expect(sumOf(m, 'reelcdn_edge_cmcd_active_sessions')).toBe(1);
    expect(sumOf(m, 'reelcdn_edge_cmcd_media_requests_total')).toBe(2);
    expect(sumOf(m, 'reelcdn_edge_cmcd_starved_requests_total')).toBe(1);
    expect(sumOf(m, 'reelcdn_edge_cmcd_bitrate_kbps_count')).toBe(2);
    expect(sumOf(m, 'reelcdn_edge_cmcd_bitrate_kbps_sum')).toBe(6000);
    expect(sumOf(m, 'reelcdn_edge_cmcd_buffer_length_ms_count')).toBe(2);
    expect(sumOf(m, 'reelcdn_edge_cmcd_startup_seconds_count')).toBe(1);
    expect(sumOf(m, 'reelcdn_edge_cmcd_startup_seconds_sum')).toBeGreaterThan(0.02);
    expect(sumOf(m, 'reelcdn_edge_cmcd_measured_throughput_kbps_count')).toBe(2);
    expect(sumOf(m, 'reelcdn_edge_cmcd_deadline_ms_count')).toBe(1);
    // No series carries a session id.
    expect(m.samples.some((s) => Object.values(s.labels).some((v) => v.includes(sid)))).toBe(false);
  });

  it('itLogsSidBitrateAndBuffer, the sid cut and escaped', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'seg.m4s', 1000);
    const sid = `a"b\\c ${'z'.repeat(200)}`;
    lines.length = 0;
    await get(signed(`/c/${title}/seg.m4s`) + cmcdQuery({ sid, br: 4500, bl: 9000, ot: 'v' }));
    await get(signed(`/c/${title}/seg.m4s`));
    await new Promise((r) => setTimeout(r, 50));
    const mine = lines.filter((l) => l.msg === 'request' && l.path === `/c/${title}/seg.m4s`);
    expect(mine).toHaveLength(2);
    expect(mine[0]).toMatchObject({ sid: sid.slice(0, 64), br: 4500, bl: 9000 });
    expect(mine[1]!.sid).toBeUndefined();
    expect('br' in mine[1]!).toBe(false);
  });

  it('itNeverKeysTheCacheByCmcd: one upstream fetch, HIT after a CMCD request, and the hit path remembers one URL', async () => {
    const title = randomTitle();
    const data = writeMedia(root, title, 'seg.m4s', 2 * S);
    const url = signed(`/c/${title}/seg.m4s`);
    let a = await get(`${url}${cmcdQuery({ sid: 'k1', ot: 'v', br: 1000 })}`);
    expect(a.headers['x-cache']).toBe('MISS');
    await edge.idle();
    a = await get(url);
    expect(a.headers['x-cache']).toMatch(/^HIT-(MEM|DISK)$/);
    const kept = edge.server.hitPath?.urlsKept() ?? 0;
    const routedBefore = edge.routed();
    for (let i = 0; i < 300; i++) {
      // Every request of a player differs by its CMCD, and the parameter may come anywhere in the query.
      const c = `CMCD=${encodeURIComponent(formatCmcd({ sid: `s-${i}`, bl: i * 100, ot: 'v' }))}`;
      const [path, query] = url.split('?');
      a = await get(i % 2 === 0 ? `${url}&${c}` : `${path}?${c}&${query}`, i % 3 === 0 ? { range: 'bytes=0-9' } : {});
      expect(a.headers['x-cache']).toMatch(/^HIT-(MEM|DISK)$/);
      expect(a.body.equals(i % 3 === 0 ? data.subarray(0, 10) : data)).toBe(true);
    }
    expect(origin.countFor(`/o/${title}/seg.m4s`)).toBeGreaterThan(0);
    const fetched = origin.requests.filter((r) => r.path === `/o/${title}/seg.m4s`).length;
    expect(fetched).toBeLessThanOrEqual(2); // the slices of the first answer, once
    if (hitPath) {
      // All on the fast path, and the book holds the URL once (its query without CMCD), not 300 times.
      expect(edge.routed()).toBe(routedBefore);
      expect(edge.server.hitPath!.urlsKept()).toBe(kept);
    }
  });

  it('itNeverLetsCmcdHelpAToken: CMCD keys named e, k, t do not sign a URL', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'seg.m4s', 1000);
    const path = `/c/${title}/seg.m4s`;
    const good = new URLSearchParams(signQuery(TEST_KEYS, 'k1', path, Date.now() / 1000, 3600));
    const e = good.get('e')!;
    const k = good.get('k')!;
    const t = good.get('t')!;
    const inCmcd = encodeURIComponent(`e=${e},k="${k}",t="${t}"`);
    const before = (await health()).qoe.requests;
    // The token's parameters only inside CMCD: forbidden.
    expect((await get(`${path}?CMCD=${inCmcd}`)).status).toBe(403);
    // A forged t with the real one inside CMCD: forbidden.
    expect((await get(`${path}?e=${e}&k=${k}&t=AAAA&CMCD=${inCmcd}`)).status).toBe(403);
    // As headers: forbidden too.
    expect((await get(`${path}?e=${e}&k=${k}`, { 'CMCD-Session': `t="${t}"`, 'CMCD-Request': `e=${e}` })).status).toBe(403);
    // Refused requests count nothing (no one may fill the QoE numbers without a token).
    expect((await health()).qoe.requests).toBe(before);
    // The real token with CMCD carrying junk and token-like keys: served.
    expect((await get(`${path}?${good}&CMCD=${encodeURIComponent('t="x",e=1,k="zz",sid="ok"')}`)).status).toBe(200);
  });

  it('itAnswersWithCmsdAPageCanRead, and duress while drained', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'video_seg.m4s', S + 10);
    writeMedia(root, title, 'index.m3u8', 300);
    let a = await get(signed(`/c/${title}/video_seg.m4s`));
    expect(a.headers['cmsd-static']).toBe('ot=v,st=v');
    expect(a.headers['cmsd-dynamic']).toBe('"edge-a1"');
    a = await get(signed(`/c/${title}/video_seg.m4s`), { range: 'bytes=0-0' });
    expect(a.status).toBe(206);
    expect(a.headers['cmsd-static']).toBe('ot=v,st=v');
    a = await get(signed(`/c/${title}/index.m3u8`), {}, 'HEAD');
    expect(a.headers['cmsd-static']).toBe('ot=m,st=v');
    expect(a.headers['access-control-expose-headers']).toMatch(/CMSD-Static, CMSD-Dynamic/);
    const pre = await get(`/c/${title}/video_seg.m4s`, { origin: 'http://player.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'cmcd-request,cmcd-session' }, 'OPTIONS');
    expect(pre.status).toBe(204);
    for (const h of ['CMCD-Object', 'CMCD-Request', 'CMCD-Session', 'CMCD-Status']) expect(pre.headers['access-control-allow-headers']).toContain(h);
    // Errors carry no CMSD.
    expect((await get(signed(`/c/${title}/missing.m4s`))).headers['cmsd-static']).toBeUndefined();

    const admin = (p: string) => request(`${edge.adminUrl}${p}`, { method: 'POST', headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } }).then((r) => r.body.text());
    await admin('/drain');
    try {
      a = await get(signed(`/c/${title}/video_seg.m4s`));
      expect(a.status).toBe(200);
      expect(a.headers['cmsd-dynamic']).toBe('"edge-a1";du');
    } finally {
      await admin('/undrain');
    }
    expect((await get(signed(`/c/${title}/video_seg.m4s`))).headers['cmsd-dynamic']).toBe('"edge-a1"');
  });

  it('itHandsTheNextObjectToThePrefetcher (nor): the next segment is a HIT-MEM on first request', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'seg1.m4s', S);
    const seg2 = writeMedia(root, title, 'seg2.m4s', S, 2);
    writeMedia(root, title, 'seg3.m4s', S, 3);
    expect((await get(signed(`/c/${title}/seg1.m4s`) + cmcdQuery({ sid: 'pf', ot: 'v', bl: 2000, nor: 'seg2.m4s' }))).status).toBe(200);
    for (let i = 0; i < 100 && origin.countFor(`/o/${title}/seg2.m4s`) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await edge.idle();
    const a = await get(signed(`/c/${title}/seg2.m4s`));
    expect(a.headers['x-cache']).toBe('HIT-MEM');
    expect(a.body.equals(seg2)).toBe(true);
    // Without nor, nothing is fetched ahead.
    expect(origin.countFor(`/o/${title}/seg3.m4s`)).toBe(0);
  });

  it('itAsksThePrefetcherOnlyOnceTheAnswerIsWithTheSocket: its work never comes before the first byte', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'seg1.m4s', S);
    writeMedia(root, title, 'seg2.m4s', S);
    await get(signed(`/c/${title}/seg1.m4s`));
    await edge.idle();
    // What the edge had written to the client's (new) connection when the prefetcher was asked.
    const sockets: Socket[] = [];
    const onConnection = (s: Socket) => void sockets.push(s);
    edge.server.publicApp.server.on('connection', onConnection);
    const written: number[] = [];
    const consider = EdgePrefetcher.prototype.consider;
    EdgePrefetcher.prototype.consider = function (this: EdgePrefetcher, ask: PrefetchAsk) {
      written.push(Math.max(0, ...sockets.map((s) => s.bytesWritten)));
      return consider.call(this, ask);
    };
    const client = new Client(edge.url);
    try {
      const res = await client.request({ path: signed(`/c/${title}/seg1.m4s`) + cmcdQuery({ sid: 'order', ot: 'v', nor: 'seg2.m4s' }), method: 'GET' });
      expect(res.statusCode).toBe(200);
      expect((await res.body.arrayBuffer()).byteLength).toBe(S);
    } finally {
      EdgePrefetcher.prototype.consider = consider;
      edge.server.publicApp.server.off('connection', onConnection);
      await client.close();
    }
    expect(written).toHaveLength(1);
    expect(written[0]).toBeGreaterThanOrEqual(S);
  });
});

import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signQuery } from '../../src/common/signing.js';
import { readObjectQuery, type ObjectQuery } from '../../src/edge/hit-path.js';
import { TEST_KEYS, randomTitle, tempDir, testCluster, writeMedia } from '../helpers/cluster.js';
import { type EdgeAnswer as Answer, type RunningEdge as Edge, startEdge } from '../helpers/edge-harness.js';
import { parsePrometheusText } from '../helpers/prom-parse.js';
import { TestOrigin } from '../helpers/test-origin.js';

/**
 * The raw hit path answers GET/HEAD of /c/ exactly as the object routes do: the same status,
 * headers and bytes, request for request. Two edges on one origin — one with the hit path, one
 * without (the reference) — get the same sequence of requests; their answers must be equal.
 */
const S = 64 * 1024;

/** Headers that differ between any two answers (time) or by design (the multipart boundary). */
const VOLATILE = new Set(['date']);

describe('edge hit path: answers equal to the object routes', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  let ref: Edge;
  let hit: Edge;

  const start = (hitPath: boolean) => startEdge(testCluster({ sliceBytes: S }), origin.url, { hitPath });

  beforeAll(async () => {
    await origin.start();
    ref = await start(false);
    hit = await start(true);
  });
  afterAll(async () => {
    await hit?.close();
    await ref?.close();
    await origin.close();
  });

  function signed(path: string, extra = ''): string {
    return `${path}?${signQuery(TEST_KEYS, 'k1', path, Date.now() / 1000, 3600)}${extra}`;
  }

  /** The answer without its VOLATILE headers. */
  async function get(e: Edge, pathAndQuery: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<Answer> {
    const a = await e.send(pathAndQuery, headers, method);
    for (const k of VOLATILE) delete a.headers[k];
    return a;
  }

  /** The same request on both edges, one after the other; returns the hit path's answer. */
  async function same(pathAndQuery: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<Answer> {
    const want = await get(ref, pathAndQuery, headers, method);
    await ref.idle();
    const got = await get(hit, pathAndQuery, headers, method);
    await hit.idle();
    expect({ status: got.status, headers: got.headers }).toEqual({ status: want.status, headers: want.headers });
    expect(got.body.equals(want.body)).toBe(true);
    return got;
  }

  it('itAnswersMissDiskAndMemoryHitsAlike: GET and HEAD, whole and ranged, in every tier', async () => {
    const title = randomTitle();
    const data = writeMedia(root, title, 'v.mp4', 3 * S + 123);
    const path = `/c/${title}/v.mp4`;
    const tiers: string[] = [];
    for (let i = 0; i < 3; i++) tiers.push((await same(signed(path))).headers['x-cache']!);
    expect(tiers).toEqual(['MISS', 'HIT-DISK', 'HIT-MEM']);
    const whole = await same(signed(path));
    expect(whole.body.equals(data)).toBe(true);
    await same(signed(path), {}, 'HEAD');
    for (const range of ['bytes=0-99', `bytes=${S - 10}-${S + 10}`, 'bytes=-500', `bytes=${2 * S}-`, 'bytes=0-', `bytes=${S}-${2 * S - 1}`]) {
      const r = await same(signed(path), { range });
      expect(r.status).toBe(206);
      await same(signed(path), { range }, 'HEAD');
    }
    // Invalid or other units: the whole body; past the end: 416.
    expect((await same(signed(path), { range: 'bytes=x-y' })).status).toBe(200);
    expect((await same(signed(path), { range: 'items=0-1' })).status).toBe(200);
    expect((await same(signed(path), { range: `bytes=${10 * S}-` })).status).toBe(416);
    expect((await same(signed(path), { range: `bytes=${10 * S}-` }, 'HEAD')).status).toBe(416);
  });

  it('itAnswersConditionalsAlike: If-None-Match, If-Match, If-Modified-Since, If-Range', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'c.mp4', 2 * S);
    const path = `/c/${title}/c.mp4`;
    const first = await same(signed(path));
    const etag = first.headers.etag!;
    const lastModified = first.headers['last-modified']!;
    expect((await same(signed(path), { 'if-none-match': etag })).status).toBe(304);
    expect((await same(signed(path), { 'if-none-match': etag }, 'HEAD')).status).toBe(304);
    expect((await same(signed(path), { 'if-none-match': '"other"' })).status).toBe(200);
    expect((await same(signed(path), { 'if-match': '"other"' })).status).toBe(412);
    expect((await same(signed(path), { 'if-match': etag, range: 'bytes=5-9' })).status).toBe(206);
    expect((await same(signed(path), { 'if-modified-since': lastModified })).status).toBe(304);
    expect((await same(signed(path), { 'if-unmodified-since': 'Thu, 01 Jan 1970 00:00:00 GMT' })).status).toBe(412);
    expect((await same(signed(path), { 'if-range': etag, range: 'bytes=5-9' })).status).toBe(206);
    expect((await same(signed(path), { 'if-range': '"stale"', range: 'bytes=5-9' })).status).toBe(200);
    expect((await same(signed(path), { 'if-range': lastModified, range: 'bytes=5-9' })).status).toBe(206);
  });

  it('itAnswersErrorsAlike: bad token, bad path, unknown object, failing upstream', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'e.mp4', S);
    const path = `/c/${title}/e.mp4`;
    expect((await same(path)).status).toBe(403);
    expect((await same(`${path}?e=1&k=k1&t=abc`)).status).toBe(403);
    expect((await same(signed(path).replace(/t=[^&]+/, 't=AAAA'))).status).toBe(403);
    expect((await same(signed(path).replace('/e.mp4', '/x.mp4'))).status).toBe(403);
    expect((await same(signed(`/c/${title}/../e.mp4`))).status).toBe(400);
    expect((await same(signed(`/c/${title}/a%2fb.mp4`))).status).toBe(400);
    expect((await same(signed(`/c/${title}`))).status).toBe(400);
    expect((await same(signed(`/c/${title}/nothing.mp4`))).status).toBe(404);
    expect((await same(signed(`/c/${title}/nothing.mp4`), {}, 'HEAD')).status).toBe(404);
    const broken = randomTitle();
    writeMedia(root, broken, 'b.mp4', S);
    origin.behaviour.set(`/o/${broken}/b.mp4`, { status: 503 });
    const r = await same(signed(`/c/${broken}/b.mp4`));
    expect(r.status).toBe(502);
    expect(r.body.toString()).toMatch(/upstream answered 503/);
  });

  it('itRefusesARememberedUrlOnceItsTokenExpired', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'x.mp4', S);
    const path = `/c/${title}/x.mp4`;
    const e = Math.floor(Date.now() / 1000) + 1;
    const url = `${path}?${signQuery(TEST_KEYS, 'k1', path, e - 1, 1)}`;
    expect(url).toContain(`e=${e}&`);
    expect((await same(url)).status).toBe(200);
    expect((await same(url)).status).toBe(200);
    while (Date.now() / 1000 <= e + 0.05) await new Promise((r) => setTimeout(r, 50));
    const r = await same(url);
    expect(r.status).toBe(403);
    expect(r.body.toString()).toBe('forbidden: expired\n');
  });

  it('itFailsAnObjectWhoseNextSliceUpstreamRefusesAlike: before any header, with the reason', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'f.mp4', 2 * S, 4);
    const path = `/c/${title}/f.mp4`;
    await same(signed(path), { range: 'bytes=0-9' });
    origin.behaviour.set(`/o/${title}/f.mp4`, { status: 503 });
    const r = await same(signed(path), { range: `bytes=${S}-${S + 9}` });
    expect([502, 504]).toContain(r.status);
    expect(r.body.toString()).toMatch(/upstream answered 503/);
  });

  it('itFailsARequestThatJoinedAFailingFetchAlike: the error told before any header', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'j.mp4', 2 * S, 4);
    const path = `/c/${title}/j.mp4`;
    await same(signed(path), { range: 'bytes=0-9' });
    origin.behaviour.set(`/o/${title}/j.mp4`, { delayMs: 300, status: 503 });
    const range = { range: `bytes=${S}-${S + 9}` };
    const pair = async (e: Edge) => {
      const [first, joined] = await Promise.all([get(e, signed(path), range), new Promise((r) => setTimeout(r, 50)).then(() => get(e, signed(path), range))]);
      await e.idle();
      return { first, joined };
    };
    const want = await pair(ref);
    const got = await pair(hit);
    for (const k of ['first', 'joined'] as const) {
      expect({ status: got[k].status, headers: got[k].headers, body: got[k].body.toString() }).toEqual({
        status: want[k].status,
        headers: want[k].headers,
        body: want[k].body.toString(),
      });
      expect([502, 504]).toContain(got[k].status);
    }
  });

  it('itCarriesTraceparentAndMultipartAlike', async () => {
    const title = randomTitle();
    writeMedia(root, title, 't.mp4', 2 * S);
    const path = `/c/${title}/t.mp4`;
    const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    expect((await same(signed(path), { traceparent: tp })).headers.traceparent).toBe(tp);
    expect((await same(signed(path), { traceparent: tp, range: 'bytes=1-2' })).headers.traceparent).toBe(tp);
    expect((await same(signed(path, `&tp=${tp}`))).headers.traceparent).toBe(tp);
    expect((await same(signed(path, `&tp=${tp}`), { 'if-none-match': '*' })).status).toBe(304);
    // Multipart answers differ only in their random boundary.
    const a = await get(ref, signed(path), { range: 'bytes=0-9,20-29' });
    const b = await get(hit, signed(path), { range: 'bytes=0-9,20-29' });
    expect(b.status).toBe(206);
    const boundary = (x: Answer) => /boundary=(\S+)/.exec(x.headers['content-type']!)![1]!;
    expect(b.body.toString('latin1').replaceAll(boundary(b), 'B')).toBe(a.body.toString('latin1').replaceAll(boundary(a), 'B'));
  });

  it('itAnswersAnEmptyObjectAlike', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'z.mp4', 0);
    const path = `/c/${title}/z.mp4`;
    expect((await same(signed(path))).headers['content-length']).toBe('0');
    await same(signed(path));
    await same(signed(path), {}, 'HEAD');
    expect((await same(signed(path), { range: 'bytes=0-' })).status).toBe(416);
  });

  it('itCountsAnswersInTheSameSeries: requests by tier and status, bytes by tier, durations by tier', async () => {
    const scrape = async (e: Edge) => {
      const text = await e.server.metrics.registry.metrics();
      const out = new Map<string, number>();
      for (const f of ['reelcdn_edge_requests_total', 'reelcdn_edge_response_bytes_total', 'reelcdn_edge_request_duration_seconds_count']) {
        for (const s of parsePrometheusText(text).samples.filter((x) => x.name === f)) out.set(`${f}${JSON.stringify(Object.entries(s.labels).sort())}`, s.value);
      }
      return out;
    };
    const delta = (after: Map<string, number>, before: Map<string, number>) =>
      Object.fromEntries([...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)]).filter(([, v]) => v !== 0));
    const [refBefore, hitBefore] = [await scrape(ref), await scrape(hit)];
    const title = randomTitle();
    writeMedia(root, title, 'm.mp4', 2 * S);
    const path = `/c/${title}/m.mp4`;
    for (let i = 0; i < 4; i++) await same(signed(path));
    await same(signed(path), { range: 'bytes=10-19' });
    await same(signed(path), {}, 'HEAD');
    await same(signed(path), { 'if-none-match': '*' });
    await same(signed(`/c/${title}/none.mp4`));
    await same(path);
    const want = delta(await scrape(ref), refBefore);
    const got = delta(await scrape(hit), hitBefore);
    expect(got).toEqual(want);
    const key = `reelcdn_edge_requests_total${JSON.stringify(Object.entries({ tier: 'HIT-MEM', status: '200', service: 'edge', node: 'edge-a1' }).sort())}`;
    expect(got[key]).toBe(3); // 2 GETs and the HEAD
    expect(Object.values(got).length).toBeGreaterThan(8);
  });

  it('itStopsReadingAMissWhenTheClientLeaves: the slices after it are never fetched', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'long.ts', 8 * S);
    const path = `/o/${title}/long.ts`;
    origin.behaviour.set(path, { delayMs: 100 });
    const controller = new AbortController();
    const res = await request(`${hit.url}${signed(`/c/${title}/long.ts`)}`, { signal: controller.signal });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-cache']).toBe('MISS');
    controller.abort();
    await res.body.dump().catch(() => {});
    await new Promise((r) => setTimeout(r, 600));
    await hit.idle();
    // The first slice (asked when the answer started), perhaps the one being read when the client
    // left — not the eight a reader that went on would have fetched.
    expect(origin.countFor(path)).toBeLessThanOrEqual(2);
  });

  it('itAnswersHotRequestsWithoutTheFramework; the rest still reaches fastify', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'h.mp4', S);
    const path = `/c/${title}/h.mp4`;
    for (let i = 0; i < 3; i++) {
      await get(hit, signed(path));
      await hit.idle();
    }
    const before = hit.routed();
    for (let i = 0; i < 5; i++) expect((await get(hit, signed(path), { range: 'bytes=0-9' })).headers['x-cache']).toBe('HIT-MEM');
    await get(hit, signed(path), {}, 'HEAD');
    expect(hit.routed()).toBe(before);
    await get(hit, path); // 403
    await get(hit, signed(path), { 'cache-control': 'only-if-cached' });
    const preflight = await request(`${hit.url}${path}`, { method: 'OPTIONS' });
    await preflight.body.dump();
    expect(preflight.statusCode).toBe(204);
    expect(hit.routed()).toBe(before + 3);
  });
});

describe('readObjectQuery', () => {
  const cases: [string, Partial<ObjectQuery>][] = [
    ['/c/t/f', {}],
    ['/c/t/f?', {}],
    ['/c/t/f?e=1&k=k1&t=abc', { e: '1', k: 'k1', t: 'abc' }],
    ['/c/t/f?t=abc&e=1&k=k1&tp=00-x&pl=p1', { e: '1', k: 'k1', t: 'abc', tp: '00-x', pl: 'p1' }],
    ['/c/t/f?e=1&e=2', { e: '1' }],
    ['/c/t/f?e&k=&t=x', { e: '', k: '', t: 'x' }],
    ['/c/t/f?ee=1&tt=2&tpx=3&p=4', {}],
    ['/c/t/f?k=a%20b&t=x+y', { k: 'a b', t: 'x y' }],
    ['/c/t/f?%65=1', { e: '1' }],
    ['/c/t/f??e=1', { e: '1' }],
    ['/c/t/f?a=1&&e=5=6', { e: '5=6' }],
  ];
  it.each(cases)('itReadsParamsAsUrlSearchParamsWould: %s', (url, want) => {
    const out: ObjectQuery = { e: 'stale', k: 'stale', t: 'stale', tp: 'stale', pl: 'stale' };
    readObjectQuery(url, url.indexOf('?'), out);
    const p = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
    const ref = { e: p.get('e') ?? undefined, k: p.get('k') ?? undefined, t: p.get('t') ?? undefined, tp: p.get('tp') ?? undefined, pl: p.get('pl') ?? undefined };
    expect(out).toEqual(ref);
    expect(out).toEqual({ e: undefined, k: undefined, t: undefined, tp: undefined, pl: undefined, ...want });
  });
});

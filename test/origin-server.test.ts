import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterConfig } from '../src/common/config.js';
import { ingestTitle } from '../src/origin/ingest.js';
import { FIXTURES, type RunningOrigin, authHeader, originTestConfig, startTestOrigin } from './helpers/origin-harness.js';
import { parseMultipart, rawRequest } from './helpers/origin-http.js';
import { STORAGE_KINDS, useStorage } from './helpers/origin-storages.js';

let config: ClusterConfig;
let origin: RunningOrigin;
const FILE = 'stream_360p.mp4';
const source = readFileSync(join(FIXTURES, 'hls-bytes', FILE));
const SIZE = source.length;
let etag: string;

// /o/ serves edges only: every request here carries an edge's token (test/origin/origin-auth.test.ts has the others).
const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => rawRequest(origin.publicUrl, origin.signed(path), { method, headers });

// Every test here runs on the origin's two storages: a local folder and an S3 API server.
describe.each(STORAGE_KINDS)('origin on %s storage', (kind) => {
  const st = useStorage(kind);

  beforeAll(async () => {
    config = st.on(originTestConfig());
    const entry = await ingestTitle(config, 'movie', join(FIXTURES, 'hls-bytes'));
    etag = `"${entry.files.find((f) => f.path === FILE)!.sha256.slice(0, 32)}"`;
    await ingestTitle(config, 'dash-movie', join(FIXTURES, 'dash'));
    origin = await startTestOrigin(config);
  });

  afterAll(async () => {
    await origin?.close();
  });

  describe('GET /o/{title}/{file}', () => {
    it('itServesTheWholeFileWithImmutableValidators', async () => {
      const r = await get(`/o/movie/${FILE}`);
      expect(r.status).toBe(200);
      expect(r.body.equals(source)).toBe(true);
      expect(r.headers['content-length']).toBe(String(SIZE));
      expect(r.headers['content-type']).toBe('video/mp4');
      expect(r.headers['accept-ranges']).toBe('bytes');
      expect(r.headers.etag).toBe(etag);
      expect(r.headers.etag).toMatch(/^"[0-9a-f]{32}"$/);
      expect(r.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(Date.parse(String(r.headers['last-modified']))).not.toBeNaN();
    });

    it('itServesManifestsWithTheirContentType', async () => {
      const r = await get('/o/movie/master.m3u8');
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe('application/vnd.apple.mpegurl');
      expect(r.body.toString()).toBe(readFileSync(join(FIXTURES, 'hls-bytes', 'master.m3u8'), 'utf8'));
      const d = await get('/o/dash-movie/manifest.mpd');
      expect(d.headers['content-type']).toBe('application/dash+xml');
    });

    it.each([
      ['bytes=100-199', 100, 200],
      ['bytes=-500', SIZE - 500, SIZE],
      ['bytes=1000-', 1000, SIZE],
      [`bytes=${SIZE - 10}-${SIZE + 1000}`, SIZE - 10, SIZE],
      ['bytes=0-0', 0, 1],
    ])('itServesTheSingleRange %s byte for byte', async (range, start, end) => {
      const r = await get(`/o/movie/${FILE}`, { range });
      expect(r.status).toBe(206);
      expect(r.headers['content-range']).toBe(`bytes ${start}-${end - 1}/${SIZE}`);
      expect(r.headers['content-length']).toBe(String(end - start));
      expect(r.body.equals(source.subarray(start, end))).toBe(true);
    });

    it('itServesAnHlsByteRangeSegmentExactly', async () => {
      // The second segment of stream_360p.m3u8: #EXT-X-BYTERANGE:length@offset
      const playlist = readFileSync(join(FIXTURES, 'hls-bytes', 'stream_360p.m3u8'), 'utf8');
      const [, len, off] = /#EXT-X-BYTERANGE:(\d+)@(\d+)/.exec(playlist)!;
      const start = Number(off);
      const end = start + Number(len);
      const r = await get(`/o/movie/${FILE}`, { range: `bytes=${start}-${end - 1}` });
      expect(r.body.equals(source.subarray(start, end))).toBe(true);
    });

    it('itServesSeveralRangesAsMultipart', async () => {
      const r = await get(`/o/movie/${FILE}`, { range: 'bytes=0-9,100-199,-10' });
      expect(r.status).toBe(206);
      expect(String(r.headers['content-type'])).toMatch(/^multipart\/byteranges; boundary=/);
      expect(Number(r.headers['content-length'])).toBe(r.body.length);
      const parts = parseMultipart(String(r.headers['content-type']), r.body);
      expect(parts.map((p) => p.headers['content-range'])).toEqual([
        `bytes 0-9/${SIZE}`,
        `bytes 100-199/${SIZE}`,
        `bytes ${SIZE - 10}-${SIZE - 1}/${SIZE}`,
      ]);
      expect(parts[0]!.data.equals(source.subarray(0, 10))).toBe(true);
      expect(parts[1]!.data.equals(source.subarray(100, 200))).toBe(true);
      expect(parts[2]!.data.equals(source.subarray(SIZE - 10))).toBe(true);
      expect(parts.every((p) => p.headers['content-type'] === 'video/mp4')).toBe(true);
    });

    it('itAnswers416ToAnUnsatisfiableRange', async () => {
      const r = await get(`/o/movie/${FILE}`, { range: `bytes=${SIZE}-` });
      expect(r.status).toBe(416);
      expect(r.headers['content-range']).toBe(`bytes */${SIZE}`);
      expect(r.body.length).toBe(0);
    });

    it('itIgnoresAMalformedRange', async () => {
      const r = await get(`/o/movie/${FILE}`, { range: 'bytes=abc' });
      expect(r.status).toBe(200);
      expect(r.body.length).toBe(SIZE);
    });

    it('itHonoursIfRangeOnlyWhileTheEtagMatches', async () => {
      const fresh = await get(`/o/movie/${FILE}`, { range: 'bytes=0-99', 'if-range': etag });
      expect(fresh.status).toBe(206);
      expect(fresh.body.length).toBe(100);
      const stale = await get(`/o/movie/${FILE}`, { range: 'bytes=0-99', 'if-range': '"0000"' });
      expect(stale.status).toBe(200);
      expect(stale.body.equals(source)).toBe(true);
    });

    it('itAnswers304ToAMatchingConditionalRequest', async () => {
      const byTag = await get(`/o/movie/${FILE}`, { 'if-none-match': etag });
      expect(byTag.status).toBe(304);
      expect(byTag.body.length).toBe(0);
      expect(byTag.headers.etag).toBe(etag);
      const lm = String(byTag.headers['last-modified']);
      const byDate = await get(`/o/movie/${FILE}`, { 'if-modified-since': lm });
      expect(byDate.status).toBe(304);
      const other = await get(`/o/movie/${FILE}`, { 'if-none-match': '"other"' });
      expect(other.status).toBe(200);
    });

    it('itAnswers412WhenIfMatchFails', async () => {
      const r = await get(`/o/movie/${FILE}`, { 'if-match': '"other"' });
      expect(r.status).toBe(412);
    });

    it('itAnswersHeadWithHeadersOnly', async () => {
      const r = await get(`/o/movie/${FILE}`, {}, 'HEAD');
      expect(r.status).toBe(200);
      expect(r.headers['content-length']).toBe(String(SIZE));
      expect(r.headers.etag).toBe(etag);
      expect(r.body.length).toBe(0);
      const ranged = await get(`/o/movie/${FILE}`, { range: 'bytes=10-19' }, 'HEAD');
      expect(ranged.status).toBe(206);
      expect(ranged.headers['content-range']).toBe(`bytes 10-19/${SIZE}`);
      expect(ranged.headers['content-length']).toBe('10');
      expect(ranged.body.length).toBe(0);
    });

    it.each([
      '/o/movie/../movie/master.m3u8',
      '/o/movie/%2e%2e/secret',
      '/o/movie/a%2fb.m4s',
      '/o/movie/a%2Fb.m4s',
      '/o/movie/a%5cb.m4s',
      '/o/movie/a%00.m4s',
      '/o/movie/./master.m3u8',
      '/o/movie//master.m3u8',
      '/o/movie',
      '/o/%2e%2e/etc/passwd',
      '/o/movie/%zz',
      `/o/movie/${'a'.repeat(2000)}`,
    ])('itRefusesTheBadPath %s with 400', async (path) => {
      const r = await get(path);
      expect(r.status).toBe(400);
    });

    it.each(['/o/nosuch/master.m3u8', '/o/movie/nosuch.m4s', '/o/movie/stream_360p.m3u8x'])('itAnswers404 for %s', async (path) => {
      expect((await get(path)).status).toBe(404);
    });

    it('itNeverServesAFileTheCatalogDoesNotList', async () => {
      await st.view(config).write(`titles/movie/${origin.server.catalog().get('movie')!.version}/stray.m4s`, 'not in the catalog');
      await st.view(config).write('titles/movie/stray.m4s', 'not in the catalog');
      expect((await get('/o/movie/stray.m4s')).status).toBe(404);
    });

    it('itLooksUpTheFileByItsPathAloneWhateverTheQuery', async () => {
      const r = await get('/o/movie/master.m3u8?tp=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01&x=1');
      expect(r.status).toBe(200);
      expect(r.body.equals(readFileSync(join(FIXTURES, 'hls-bytes', 'master.m3u8')))).toBe(true);
    });

    it('itServesATitleIngestedWhileRunningAfterReload', async () => {
      expect((await get('/o/late/master.m3u8')).status).toBe(404);
      await ingestTitle(config, 'late', join(FIXTURES, 'hls-segments'));
      await origin.server.reloadCatalog();
      const r = await get('/o/late/seg_180p_001.m4s');
      expect(r.status).toBe(200);
      expect(r.body.equals(readFileSync(join(FIXTURES, 'hls-segments', 'seg_180p_001.m4s')))).toBe(true);
    });
  });

  describe('origin admin port', () => {
    it('itAnswersHealthWithoutATokenByDefault', async () => {
      const r = await rawRequest(origin.adminUrl, '/health');
      expect(r.status).toBe(200);
      const h = JSON.parse(r.body.toString());
      expect(h).toMatchObject({ status: 'ok', version: '0.1.0' });
      expect(h.titles).toBeGreaterThanOrEqual(2);
      expect(h.bytes).toBeGreaterThan(0);
      expect(typeof h.uptimeSec).toBe('number');
    });

    it.each(['/metrics', '/v1/catalog'])('itAnswers401To %s without the token', async (path) => {
      const r = await rawRequest(origin.adminUrl, path);
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toMatch(/Bearer/);
      const wrong = await rawRequest(origin.adminUrl, path, { headers: { authorization: 'Bearer nope' } });
      expect(wrong.status).toBe(401);
    });

    it('itListsTheCatalog', async () => {
      const r = await rawRequest(origin.adminUrl, '/v1/catalog', { headers: authHeader });
      expect(r.status).toBe(200);
      const { titles } = JSON.parse(r.body.toString());
      const movie = titles.find((t: { title: string }) => t.title === 'movie');
      expect(movie).toMatchObject({ kind: 'hls', manifests: ['master.m3u8'] });
      expect(movie.files.length).toBe(5);
    });

    it('itCountsRequestsAndBytesInMetrics', async () => {
      await get(`/o/movie/${FILE}`, { range: 'bytes=0-99' });
      await get('/o/nosuch/x.m4s');
      const r = await rawRequest(origin.adminUrl, '/metrics', { headers: authHeader });
      expect(r.status).toBe(200);
      const text = r.body.toString();
      expect(text).toMatch(/reelcdn_origin_requests_total\{method="GET",status="206"\} \d+/);
      expect(text).toMatch(/reelcdn_origin_requests_total\{method="GET",status="404"\} \d+/);
      expect(text).toMatch(/reelcdn_origin_bytes_total\{class="media"\} \d+/);
      expect(text).toMatch(/reelcdn_origin_bytes_total\{class="manifest"\} \d+/);
      expect(text).toMatch(/reelcdn_origin_catalog_titles \d+/);
    });
  });

  describe('origin admin port, everything open', () => {
    it('itServesMetricsWithoutATokenWhenOpen', async () => {
      const cfg = st.on(originTestConfig({ openMetrics: true, openHealth: false }));
      const o = await startTestOrigin(cfg);
      try {
        expect((await rawRequest(o.adminUrl, '/metrics')).status).toBe(200);
        expect((await rawRequest(o.adminUrl, '/health')).status).toBe(401);
        expect((await rawRequest(o.adminUrl, '/health', { headers: authHeader })).status).toBe(200);
      } finally {
        await o.close();
      }
    });
  });

  describe('origin during a re-ingest', () => {
    it('itServesThePreviousVersionUntilTheNewCatalogIsLoaded', async () => {
      const cfg = st.on(originTestConfig());
      await ingestTitle(cfg, 'movie', join(FIXTURES, 'hls-bytes'));
      const o = await startTestOrigin(cfg);
      try {
        // Another process replaces the title; this origin has not polled the catalog yet, and the
        // version it knows is still on disk, unchanged: the old bytes under the old ETag.
        await ingestTitle(cfg, 'movie', join(FIXTURES, 'dash'));
        const r = await rawRequest(o.publicUrl, o.signed(`/o/movie/${FILE}`));
        expect(r.status).toBe(200);
        expect(r.headers.etag).toBe(etag);
        expect(r.body.equals(source)).toBe(true);
        // Once its version is swept, a request finds the newest catalog on its own.
        await ingestTitle(cfg, 'movie', join(FIXTURES, 'dash'), { versionGraceMs: 0 });
        expect((await rawRequest(o.publicUrl, o.signed(`/o/movie/${FILE}`))).status).toBe(404);
        expect((await rawRequest(o.publicUrl, o.signed('/o/movie/manifest.mpd'))).status).toBe(200);
      } finally {
        await o.close();
      }
    });
  });
});

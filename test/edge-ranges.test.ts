import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { TestOrigin } from './helpers/test-origin.js';
import { randomTitle, tempDir, testCluster, writeMedia } from './helpers/cluster.js';
import { startEdge, type RunningEdge } from './helpers/edge-harness.js';
import { parseMultipartByteranges } from './helpers/http-tools.js';

const SLICE = 65536;
const SIZE = 5 * SLICE + 1234;

describe('edge range matrix', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  let edge: RunningEdge;
  const title = randomTitle();
  let data: Buffer;

  beforeAll(async () => {
    data = writeMedia(root, title, 'video.mp4', SIZE);
    await origin.start();
    edge = await startEdge(testCluster({ sliceBytes: SLICE }), origin.url);
  });
  afterAll(async () => {
    await edge.close();
    await origin.close();
  });

  const get = (headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') => edge.get(title, 'video.mp4', headers, method);

  it('serves the whole object as a 200 with length, type and Accept-Ranges', async () => {
    const a = await get();
    expect(a.status).toBe(200);
    expect(a.headers['content-length']).toBe(String(SIZE));
    expect(a.headers['content-type']).toBe('video/mp4');
    expect(a.headers['accept-ranges']).toBe('bytes');
    expect(a.headers['content-range']).toBeUndefined();
    expect(a.body.equals(data)).toBe(true);
  });

  // [Range header, expected [start, end) ]
  const singles: [string, number, number][] = [
    ['bytes=0-0', 0, 1],
    ['bytes=0-99', 0, 100],
    ['bytes=100-3000', 100, 3001],
    [`bytes=${SLICE - 10}-${SLICE + 9}`, SLICE - 10, SLICE + 10],
    [`bytes=${SLICE}-${2 * SLICE - 1}`, SLICE, 2 * SLICE],
    [`bytes=${SLICE - 1}-${4 * SLICE}`, SLICE - 1, 4 * SLICE + 1],
    [`bytes=${3 * SLICE + 5}-`, 3 * SLICE + 5, SIZE],
    [`bytes=${SIZE - 1}-`, SIZE - 1, SIZE],
    ['bytes=-1', SIZE - 1, SIZE],
    ['bytes=-5000', SIZE - 5000, SIZE],
    [`bytes=-${SIZE * 2}`, 0, SIZE],
    [`bytes=1000-${SIZE * 10}`, 1000, SIZE],
    ['bytes=0-', 0, SIZE],
  ];
  it.each(singles)('answers %s with 206 and exactly those bytes', async (range, start, end) => {
    const a = await get({ range });
    expect(a.status).toBe(206);
    expect(a.headers['content-range']).toBe(`bytes ${start}-${end - 1}/${SIZE}`);
    expect(a.headers['content-length']).toBe(String(end - start));
    expect(a.body.equals(data.subarray(start, end))).toBe(true);
  });

  it('answers several ranges as multipart/byteranges, merged and in order', async () => {
    const a = await get({ range: `bytes=${SIZE - 10}-,0-9,5-20,21-30,${2 * SLICE - 3}-${2 * SLICE + 3}` });
    expect(a.status).toBe(206);
    expect(Number(a.headers['content-length'])).toBe(a.body.length);
    const parts = parseMultipartByteranges(a.headers['content-type']!, a.body);
    expect(parts.map((p) => [p.start, p.end])).toEqual([
      [0, 30],
      [2 * SLICE - 3, 2 * SLICE + 3],
      [SIZE - 10, SIZE - 1],
    ]);
    for (const p of parts) {
      expect(p.size).toBe(SIZE);
      expect(p.contentType).toBe('video/mp4');
      expect(p.body.equals(data.subarray(p.start, p.end + 1))).toBe(true);
    }
  });

  it('answers HEAD with the same headers as GET and no body', async () => {
    for (const range of [undefined, 'bytes=10-20', 'bytes=0-1,100-200']) {
      const h: Record<string, string> = range ? { range } : {};
      const g = await get(h);
      const head = await get(h, 'HEAD');
      expect(head.status).toBe(g.status);
      expect(head.body.length).toBe(0);
      for (const name of ['content-length', 'content-range', 'accept-ranges', 'etag', 'last-modified', 'cache-control']) {
        expect(head.headers[name], name).toBe(g.headers[name]);
      }
      if (range?.includes(',')) expect(head.headers['content-type']).toMatch(/^multipart\/byteranges; boundary=/);
      else expect(head.headers['content-type']).toBe(g.headers['content-type']);
    }
  });

  it.each([`bytes=${SIZE}-`, `bytes=${SIZE}-${SIZE + 10}`, 'bytes=-0', `bytes=${SIZE + 5}-,${SIZE * 2}-`])(
    'answers the unsatisfiable %s with 416 and Content-Range bytes */LEN',
    async (range) => {
      const a = await get({ range });
      expect(a.status).toBe(416);
      expect(a.headers['content-range']).toBe(`bytes */${SIZE}`);
      expect(a.body.length).toBe(0);
    },
  );

  it('answers 416 even when the object is cold and the range starts past its end', async () => {
    const t = randomTitle();
    writeMedia(root, t, 'cold.mp4', 3000, 7);
    const a = await edge.get(t, 'cold.mp4', { range: 'bytes=999999-' });
    expect(a.status).toBe(416);
    expect(a.headers['content-range']).toBe('bytes */3000');
  });

  it.each(['bytes=abc', 'bytes=5-1', 'items=0-10', 'bytes=0-1,x', 'bytes', 'bytes=--1'])('ignores the invalid Range %j and answers 200', async (range) => {
    const a = await get({ range });
    expect(a.status).toBe(200);
    expect(a.body.equals(data)).toBe(true);
  });

  it('honours If-Range with a matching strong ETag (206) and not a stale one (200)', async () => {
    const etag = (await get({}, 'HEAD')).headers.etag!;
    expect(etag).toMatch(/^"/);
    const hit = await get({ range: 'bytes=10-19', 'if-range': etag });
    expect(hit.status).toBe(206);
    expect(hit.body.equals(data.subarray(10, 20))).toBe(true);
    const miss = await get({ range: 'bytes=10-19', 'if-range': '"someone-else"' });
    expect(miss.status).toBe(200);
    expect(miss.body.equals(data)).toBe(true);
    const weak = await get({ range: 'bytes=10-19', 'if-range': `W/${etag}` });
    expect(weak.status).toBe(200);
  });

  it('honours If-Range with the Last-Modified date (206) and another date (200)', async () => {
    const lm = (await get({}, 'HEAD')).headers['last-modified']!;
    const hit = await get({ range: 'bytes=10-19', 'if-range': lm });
    expect(hit.status).toBe(206);
    expect(hit.body.equals(data.subarray(10, 20))).toBe(true);
    const other = new Date(Date.parse(lm) - 3600_000).toUTCString();
    const miss = await get({ range: 'bytes=10-19', 'if-range': other });
    expect(miss.status).toBe(200);
    expect(miss.body.length).toBe(SIZE);
  });

  it('answers If-None-Match and If-Modified-Since with 304 and no body', async () => {
    const head = await get({}, 'HEAD');
    const a = await get({ 'if-none-match': head.headers.etag! });
    expect(a.status).toBe(304);
    expect(a.body.length).toBe(0);
    expect(a.headers.etag).toBe(head.headers.etag);
    const b = await get({ 'if-modified-since': head.headers['last-modified']! });
    expect(b.status).toBe(304);
    const c = await get({ 'if-none-match': '"nope"' });
    expect(c.status).toBe(200);
    const d = await get({ 'if-match': '"nope"' });
    expect(d.status).toBe(412);
  });

  it('passes ETag, Last-Modified and Cache-Control through exactly as the origin gave them', async () => {
    origin.behaviour.set(`/o/${title}/tagged.mp4`, { etag: '"custom-etag-42"', cacheControl: 'public, max-age=600' });
    writeMedia(root, title, 'tagged.mp4', 1000, 3);
    const direct = await request(`${origin.url}/o/${title}/tagged.mp4`, { method: 'HEAD' });
    await direct.body.dump();
    const a = await edge.get(title, 'tagged.mp4');
    expect(a.headers.etag).toBe('"custom-etag-42"');
    expect(a.headers['last-modified']).toBe(direct.headers['last-modified']);
    expect(a.headers['cache-control']).toBe('public, max-age=600');
  });

  it.each([
    ['index.m3u8', 'application/vnd.apple.mpegurl'],
    ['manifest.mpd', 'application/dash+xml'],
    ['init.mp4', 'video/mp4'],
    ['seg_1.m4s', 'video/iso.segment'],
    ['seg_1.ts', 'video/mp2t'],
    ['subs.vtt', 'text/vtt'],
    ['audio.aac', 'audio/aac'],
  ])('serves %s as %s', async (file, type) => {
    const body = writeMedia(root, title, file, 777, file.length);
    const a = await edge.get(title, file);
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe(type);
    expect(a.body.equals(body)).toBe(true);
    const r = await edge.get(title, file, { range: 'bytes=1-2,5-6' });
    const parts = parseMultipartByteranges(r.headers['content-type']!, r.body);
    expect(parts.every((p) => p.contentType === type)).toBe(true);
  });

  it('sends CORS headers on answers and errors, and answers the preflight', async () => {
    const a = await get({ range: 'bytes=0-1', origin: 'https://player.example' });
    expect(a.headers['access-control-allow-origin']).toBe('*');
    expect(a.headers['access-control-expose-headers']).toMatch(/Content-Range/);
    expect(a.headers['access-control-expose-headers']).toMatch(/X-Cache/);
    const missing = await edge.get(title, 'nothing-here.ts');
    expect(missing.status).toBe(404);
    expect(missing.headers['access-control-allow-origin']).toBe('*');
    const pre = await request(`${edge.url}/c/${title}/video.mp4`, {
      method: 'OPTIONS',
      headers: { origin: 'https://player.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'range' },
    });
    await pre.body.dump();
    expect(pre.statusCode).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('*');
    expect(String(pre.headers['access-control-allow-methods'])).toMatch(/GET/);
    expect(String(pre.headers['access-control-allow-headers'])).toMatch(/Range/);
  });

  it('serves an empty object as 200 and answers any range of it with 416', async () => {
    writeMedia(root, title, 'empty.ts', 0);
    const a = await edge.get(title, 'empty.ts');
    // The origin answers the edge's slice Range on an empty file with 416 bytes */0: the object exists.
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe('video/mp2t');
    expect(a.body.length).toBe(0);
    expect(a.headers['content-length']).toBe('0');
    const b = await edge.get(title, 'empty.ts', { range: 'bytes=0-' });
    expect(b.status).toBe(416);
    expect(b.headers['content-range']).toBe('bytes */0');
  });
});

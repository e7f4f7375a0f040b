import { describe, expect, it } from 'vitest';
import { type ObjectMeta, type RequestView, etagListMatches, planResponse, requestView } from '../src/common/response-plan.js';
import { parseMultipartByteranges } from './helpers/http-tools.js';

const LM = 'Tue, 01 Oct 2024 10:00:00 GMT';
const EARLIER = 'Tue, 01 Oct 2024 09:00:00 GMT';
const LATER = 'Tue, 01 Oct 2024 11:00:00 GMT';
const meta: ObjectMeta = { size: 1000, contentType: 'video/mp4', etag: '"abc"', lastModified: LM, cacheControl: 'max-age=60' };
const get = (h: Partial<RequestView> = {}): RequestView => ({ method: 'GET', ...h });

describe('planResponse conditionals', () => {
  // [request headers, expected status]
  const cases: [string, Partial<RequestView>, number][] = [
    ['no conditionals', {}, 200],
    ['If-Match same strong etag', { ifMatch: '"abc"' }, 200],
    ['If-Match in a list', { ifMatch: '"x", "abc"' }, 200],
    ['If-Match *', { ifMatch: '*' }, 200],
    ['If-Match other etag', { ifMatch: '"zzz"' }, 412],
    ['If-Match weak form of the etag (strong comparison fails)', { ifMatch: 'W/"abc"' }, 412],
    ['If-Unmodified-Since before Last-Modified', { ifUnmodifiedSince: EARLIER }, 412],
    ['If-Unmodified-Since equal', { ifUnmodifiedSince: LM }, 200],
    ['If-Unmodified-Since later', { ifUnmodifiedSince: LATER }, 200],
    ['If-Unmodified-Since garbage is ignored', { ifUnmodifiedSince: 'yesterday' }, 200],
    ['If-Match wins over If-Unmodified-Since', { ifMatch: '"abc"', ifUnmodifiedSince: EARLIER }, 200],
    ['If-None-Match same etag', { ifNoneMatch: '"abc"' }, 304],
    ['If-None-Match weak comparison', { ifNoneMatch: 'W/"abc"' }, 304],
    ['If-None-Match in a list', { ifNoneMatch: '"a", "abc"' }, 304],
    ['If-None-Match *', { ifNoneMatch: '*' }, 304],
    ['If-None-Match other etag', { ifNoneMatch: '"zzz"' }, 200],
    ['If-Modified-Since equal', { ifModifiedSince: LM }, 304],
    ['If-Modified-Since later', { ifModifiedSince: LATER }, 304],
    ['If-Modified-Since earlier', { ifModifiedSince: EARLIER }, 200],
    ['If-Modified-Since garbage is ignored', { ifModifiedSince: 'soon' }, 200],
    ['If-None-Match wins over If-Modified-Since (mismatch)', { ifNoneMatch: '"zzz"', ifModifiedSince: LATER }, 200],
    ['If-None-Match wins over If-Modified-Since (match)', { ifNoneMatch: '"abc"', ifModifiedSince: EARLIER }, 304],
    ['412 is decided before 304', { ifMatch: '"zzz"', ifNoneMatch: '"abc"' }, 412],
    ['304 is decided before the range', { ifNoneMatch: '"abc"', range: 'bytes=0-1' }, 304],
    ['412 is decided before 416', { ifMatch: '"zzz"', range: 'bytes=5000-' }, 412],
  ];
  it.each(cases)('%s', (_name, h, status) => {
    const plan = planResponse(get(h), meta);
    expect(plan.status).toBe(status);
    if (status !== 200) expect(plan.body).toEqual([]);
    if (status === 304) {
      expect(plan.headers.etag).toBe('"abc"');
      expect(plan.headers['last-modified']).toBe(LM);
      expect(plan.headers['content-length']).toBeUndefined();
    }
  });

  it('If-Match * fails when the object has no etag', () => {
    expect(planResponse(get({ ifMatch: '*' }), { ...meta, etag: undefined }).status).toBe(412);
  });
  it('a weak stored etag never satisfies If-Match but satisfies If-None-Match', () => {
    const weak = { ...meta, etag: 'W/"abc"' };
    expect(planResponse(get({ ifMatch: 'W/"abc"' }), weak).status).toBe(412);
    expect(planResponse(get({ ifNoneMatch: '"abc"' }), weak).status).toBe(304);
  });
  it('date conditionals are ignored without Last-Modified', () => {
    const noLm = { ...meta, lastModified: undefined };
    expect(planResponse(get({ ifModifiedSince: LATER }), noLm).status).toBe(200);
    expect(planResponse(get({ ifUnmodifiedSince: EARLIER }), noLm).status).toBe(200);
  });
});

describe('planResponse If-Range', () => {
  const cases: [string, string, ObjectMeta, number][] = [
    ['matching strong etag → range', '"abc"', meta, 206],
    ['other etag → whole body', '"zzz"', meta, 200],
    ['weak etag never matches → whole body', 'W/"abc"', meta, 200],
    ['strong If-Range against a weak stored etag → whole body', '"abc"', { ...meta, etag: 'W/"abc"' }, 200],
    ['date equal to Last-Modified → range', LM, meta, 206],
    ['earlier date → whole body', EARLIER, meta, 200],
    ['later date → whole body (exact match only)', LATER, meta, 200],
    ['garbage → whole body', 'not a date', meta, 200],
    ['date without Last-Modified → whole body', LM, { ...meta, lastModified: undefined }, 200],
    ['etag without stored etag → whole body', '"abc"', { ...meta, etag: undefined }, 200],
  ];
  it.each(cases)('%s', (_name, ifRange, m, status) => {
    const plan = planResponse(get({ range: 'bytes=10-19', ifRange }), m);
    expect(plan.status).toBe(status);
    if (status === 206) expect(plan.headers['content-range']).toBe('bytes 10-19/1000');
    else expect(plan.headers['content-length']).toBe('1000');
  });
  it('If-Range without Range changes nothing', () => {
    expect(planResponse(get({ ifRange: '"zzz"' }), meta).status).toBe(200);
  });
  it('If-Range mismatch turns an unsatisfiable range into a 200, not a 416', () => {
    expect(planResponse(get({ range: 'bytes=5000-', ifRange: '"zzz"' }), meta).status).toBe(200);
  });
});

describe('planResponse bodies', () => {
  it('200: whole body, length, type, validators, accept-ranges', () => {
    const p = planResponse(get(), meta);
    expect(p.status).toBe(200);
    expect(p.headers).toMatchObject({
      'accept-ranges': 'bytes',
      'content-type': 'video/mp4',
      'content-length': '1000',
      etag: '"abc"',
      'last-modified': LM,
      'cache-control': 'max-age=60',
    });
    expect(p.body).toEqual([{ kind: 'bytes', range: { start: 0, end: 1000 } }]);
  });
  it('200 of an empty object has no body part', () => {
    const p = planResponse(get(), { ...meta, size: 0 });
    expect(p.headers['content-length']).toBe('0');
    expect(p.body).toEqual([]);
  });
  it('206 single range', () => {
    const p = planResponse(get({ range: 'bytes=-10' }), meta);
    expect(p.status).toBe(206);
    expect(p.headers['content-range']).toBe('bytes 990-999/1000');
    expect(p.headers['content-length']).toBe('10');
    expect(p.body).toEqual([{ kind: 'bytes', range: { start: 990, end: 1000 } }]);
  });
  it('416 says the size and has no body', () => {
    const p = planResponse(get({ range: 'bytes=1000-' }), meta);
    expect(p.status).toBe(416);
    expect(p.headers['content-range']).toBe('bytes */1000');
    expect(p.body).toEqual([]);
  });
  it('invalid Range is ignored', () => {
    expect(planResponse(get({ range: 'bytes=x-y' }), meta).status).toBe(200);
  });
  it('HEAD has the same headers and no body', () => {
    for (const range of [undefined, 'bytes=0-9', 'bytes=0-9,20-29']) {
      const g = planResponse(get({ range }), meta, 'B');
      const h = planResponse({ method: 'HEAD', range }, meta, 'B');
      expect(h.status).toBe(g.status);
      expect(h.headers).toEqual(g.headers);
      expect(h.body).toEqual([]);
    }
  });

  it('multipart/byteranges framing parses back and Content-Length is exact', () => {
    const data = Buffer.alloc(1000);
    for (let i = 0; i < 1000; i++) data[i] = (i * 7) & 0xff;
    const p = planResponse(get({ range: 'bytes=0-9,100-100,-5' }), meta, 'BOUNDARY42');
    expect(p.status).toBe(206);
    expect(p.headers['content-type']).toBe('multipart/byteranges; boundary=BOUNDARY42');
    const body = Buffer.concat(p.body.map((part) => (part.kind === 'literal' ? part.data : data.subarray(part.range.start, part.range.end))));
    expect(Number(p.headers['content-length'])).toBe(body.length);
    expect(p.headers['content-range']).toBeUndefined();
    const parts = parseMultipartByteranges(p.headers['content-type']!, body);
    expect(parts.map((x) => [x.start, x.end, x.size, x.contentType])).toEqual([
      [0, 9, 1000, 'video/mp4'],
      [100, 100, 1000, 'video/mp4'],
      [995, 999, 1000, 'video/mp4'],
    ]);
    for (const part of parts) expect(part.body.equals(data.subarray(part.start, part.end + 1))).toBe(true);
    expect(body.subarray(0, 12).toString()).toBe('--BOUNDARY42');
    expect(body.subarray(-18).toString()).toBe('\r\n--BOUNDARY42--\r\n');
  });
  it('uses a fresh random boundary per answer by default', () => {
    const a = planResponse(get({ range: 'bytes=0-1,5-6' }), meta).headers['content-type'];
    const b = planResponse(get({ range: 'bytes=0-1,5-6' }), meta).headers['content-type'];
    expect(a).not.toBe(b);
  });
  it('ranges that merge into one answer as a single part', () => {
    const p = planResponse(get({ range: 'bytes=0-9,10-19' }), meta);
    expect(p.headers['content-range']).toBe('bytes 0-19/1000');
  });
});

describe('etagListMatches / requestView', () => {
  it('compares strongly and weakly', () => {
    expect(etagListMatches('"a"', '"a"', 'strong')).toBe(true);
    expect(etagListMatches('W/"a"', '"a"', 'strong')).toBe(false);
    expect(etagListMatches('"a"', 'W/"a"', 'strong')).toBe(false);
    expect(etagListMatches('W/"a"', '"a"', 'weak')).toBe(true);
    expect(etagListMatches(' * ', '"a"', 'weak')).toBe(true);
    expect(etagListMatches('"b" ,  "a"', '"a"', 'weak')).toBe(true);
    expect(etagListMatches('"a"', undefined, 'weak')).toBe(false);
  });
  it('reads request headers, joining repeated ones', () => {
    expect(requestView('GET', { range: 'bytes=0-1', 'if-none-match': ['"a"', '"b"'] })).toEqual({
      method: 'GET',
      range: 'bytes=0-1',
      ifRange: undefined,
      ifMatch: undefined,
      ifNoneMatch: '"a", "b"',
      ifModifiedSince: undefined,
      ifUnmodifiedSince: undefined,
    });
  });
});

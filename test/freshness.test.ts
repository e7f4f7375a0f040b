import { describe, expect, it } from 'vitest';
import { computeFreshness, parseCacheControl } from '../src/edge/freshness.js';

const now = Date.parse('2024-10-01T12:00:00Z');
const s = 1000;

describe('parseCacheControl', () => {
  it('reads directives case-insensitively, with quoted and bare values', () => {
    const cc = parseCacheControl('Public, MAX-AGE=60, s-maxage="120", no-transform,, stale-if-error=30');
    expect(cc.get('public')).toBe(true);
    expect(cc.get('max-age')).toBe('60');
    expect(cc.get('s-maxage')).toBe('120');
    expect(cc.get('no-transform')).toBe(true);
    expect(cc.get('stale-if-error')).toBe('30');
  });
  it('is empty for no header', () => {
    expect(parseCacheControl(undefined).size).toBe(0);
  });
});

describe('computeFreshness', () => {
  // [cache-control, extra input, storable, fresh for (ms), stale-if-error extra (ms)]
  const cases: [string, string | undefined, Partial<Parameters<typeof computeFreshness>[0]>, boolean, number, number][] = [
    ['max-age', 'max-age=60', {}, true, 60 * s, 0],
    ['s-maxage wins over max-age (shared cache)', 'max-age=60, s-maxage=10', {}, true, 10 * s, 0],
    ['Age is subtracted', 'max-age=60', { age: '45' }, true, 15 * s, 0],
    ['Age beyond the lifetime is stale now', 'max-age=60', { age: '100' }, true, 0, 0],
    ['no-cache stores but always revalidates', 'no-cache, max-age=60', {}, true, 0, 0],
    ['no-store is never stored', 'no-store', {}, false, 0, 0],
    ['private is never stored by a shared cache', 'private, max-age=60', {}, false, 0, 0],
    ['stale-if-error extends the error window', 'max-age=10, stale-if-error=30', {}, true, 10 * s, 30 * s],
    ['must-revalidate forbids stale-if-error', 'max-age=10, stale-if-error=30, must-revalidate', {}, true, 10 * s, 0],
    ['proxy-revalidate forbids stale-if-error', 'max-age=10, stale-if-error=30, proxy-revalidate', {}, true, 10 * s, 0],
    ['malformed max-age is ignored', 'max-age=abc', {}, true, 0, 0],
    ['negative max-age is ignored', 'max-age=-5', {}, true, 0, 0],
    // RFC 9111 §4.2.2 heuristic: 10% of (Date − Last-Modified), capped at a day here
    ['heuristic from Last-Modified', undefined, { lastModified: new Date(now - 1000 * s).toUTCString() }, true, 100 * s, 0],
    ['heuristic uses Date when given', undefined, { lastModified: new Date(now - 1000 * s).toUTCString(), date: new Date(now - 500 * s).toUTCString() }, true, 50 * s, 0],
    ['heuristic is capped at a day', undefined, { lastModified: new Date(now - 100 * 86400 * s).toUTCString() }, true, 86400 * s, 0],
    ['no validators, no lifetime → stale at once', undefined, {}, true, 0, 0],
    ['Last-Modified in the future gives no heuristic lifetime', undefined, { lastModified: new Date(now + 1000 * s).toUTCString() }, true, 0, 0],
    // RFC 9111 §1.2.2: delta-seconds too large to represent are 2^31, not "absent"
    ['huge max-age is treated as 2^31 seconds', 'max-age=99999999999999', {}, true, 2 ** 31 * s, 0],
    ['huge Age makes it stale', 'max-age=60', { age: '99999999999999' }, true, 0, 0],
  ];
  it.each(cases)('%s', (_name, cacheControl, extra, storable, freshFor, staleIfError) => {
    const f = computeFreshness({ cacheControl, now, ...extra });
    expect(f.storable).toBe(storable);
    expect(f.freshUntil - now).toBe(freshFor);
    expect(f.staleIfErrorUntil - f.freshUntil).toBe(staleIfError);
  });
});

import { describe, expect, it } from 'vitest';
import { nextObject, prefetchRange, resolveNor } from '../../src/edge/prefetch-target.js';

/** Where a prefetch for a request of /c/movie/video/720p/seg1.m4s may go, from its CMCD nor/nrr. */
describe('prefetch target: nor resolved inside the title', () => {
  const at = (nor: string) => resolveNor('movie', 'video/720p/seg1.m4s', nor);

  it.each([
    ['seg2.m4s', 'video/720p/seg2.m4s'],
    ['seg2.m4s?e=1&k=k1&t=abc', 'video/720p/seg2.m4s'], // the query is dropped: the edge signs its own
    ['seg2.m4s#frag', 'video/720p/seg2.m4s'],
    ['1080p/seg2.m4s', 'video/720p/1080p/seg2.m4s'],
    ['/c/movie/audio/seg2.m4s', 'audio/seg2.m4s'], // an absolute path, inside the title
    ['seg%7E2.m4s', 'video/720p/seg~2.m4s'], // percent-encoding of the path itself, undone as for a request
    // Dot segments are resolved as a browser resolves them, and followed while the result stays in the title.
    ['../audio/seg2.m4s', 'video/audio/seg2.m4s'],
    ['../../seg2.m4s', 'seg2.m4s'],
    ['./seg2.m4s', 'video/720p/seg2.m4s'],
    ['1080p/../seg2.m4s', 'video/720p/seg2.m4s'],
    // hls.js's form: up to /c/ and down again through the title, with the next segment's signed query.
    ['../../../movie/video/720p/seg2.m4s?e=1&k=k1&t=x', 'video/720p/seg2.m4s'],
    ['/c/movie/video/../audio/seg2.m4s', 'audio/seg2.m4s'],
  ])('%s → %s', (nor, file) => {
    expect(at(nor)).toEqual({ ok: true, file });
  });

  it.each([
    ['http://evil.example/c/movie/seg2.m4s', 'absolute URL'],
    ['https://other-edge:8443/c/movie/seg2.m4s', 'absolute URL'],
    ['//evil.example/c/movie/seg2.m4s', 'absolute URL'],
    ['javascript:alert(1)', 'absolute URL'],
    ['/c/other-title/seg2.m4s', 'leaves the title'],
    ['/o/movie/seg2.m4s', 'leaves the title'],
    ['/c/movie2/seg2.m4s', 'leaves the title'],
    ['../../../other/seg.m4s', 'leaves the title'],
    ['../../../movie2/seg.m4s', 'leaves the title'],
    ['../../../seg.m4s', 'leaves the title'], // /c/seg.m4s: no title at all
    ['../../../../seg.m4s', 'leaves the title'], // /seg.m4s
    ['../../../../../etc/passwd', 'climbs above the root'],
    ['/c/movie/../other/seg.m4s', 'leaves the title'],
    ['..', 'names a folder'],
    ['.', 'names a folder'],
    ['../../', 'empty'],
    // Encoded dots are no dot segments here: left as they are, refused as a request path refuses them.
    ['%2e%2e/seg2.m4s', 'dot segment'],
    ['%2E%2E/%2E%2E/%2E%2E/other/seg.m4s', 'dot segment'],
    ['a%2Fb.m4s', 'encoded slash'],
    ['a%2fb.m4s', 'encoded slash'],
    ['a%5Cb.m4s', 'encoded slash'],
    ['a\\b.m4s', 'backslash'],
    ['..\\..\\x', 'backslash'],
    ['a%00b', 'NUL'],
    ['seg//2.m4s', 'empty'],
    ['seg%202.m4s', 'unsupported character'], // what parseObjectPath refuses in a request, it refuses here
    ['', 'empty nor'],
    ['?e=1', 'no path'],
    ['x'.repeat(2000), 'too long'],
  ])('refuses %s', (nor, why) => {
    const r = at(nor);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason.toLowerCase()).toContain(why.split(' ')[0]!.toLowerCase());
  });

  it('resolves against the title root when the current file is at the root', () => {
    expect(resolveNor('movie', 'seg1.ts', 'seg2.ts')).toEqual({ ok: true, file: 'seg2.ts' });
  });
});

describe('prefetch target: nor and nrr together', () => {
  it('nor alone: the whole next object', () => {
    expect(nextObject('movie', 'v/seg1.m4s', { nor: 'seg2.m4s' })).toEqual({ ok: true, title: 'movie', file: 'v/seg2.m4s', range: undefined });
  });

  it('nrr with nor: a range of the next object; nrr alone: a range of the current one', () => {
    expect(nextObject('movie', 'v/seg1.m4s', { nor: 'seg2.m4s', nrr: '100-199' })).toEqual({
      ok: true,
      title: 'movie',
      file: 'v/seg2.m4s',
      range: { header: 'bytes=100-199', firstByte: 100 },
    });
    expect(nextObject('movie', 'v/all.mp4', { nrr: '1000000-' })).toEqual({ ok: true, title: 'movie', file: 'v/all.mp4', range: { header: 'bytes=1000000-', firstByte: 1000000 } });
    expect(nextObject('movie', 'v/all.mp4', { nrr: '-500' })).toEqual({ ok: true, title: 'movie', file: 'v/all.mp4', range: { header: 'bytes=-500', firstByte: undefined } });
  });

  it.each(['', 'bytes=0-1', '5-1', '0-1,5-9', 'a-b', '-', '1-2-3', ' 0-1'])('refuses nrr %j', (nrr) => {
    expect(nextObject('movie', 'v/all.mp4', { nrr }).ok).toBe(false);
  });

  it('refuses nothing to do: no hints, or nor naming the object being answered', () => {
    expect(nextObject('movie', 'v/seg1.m4s', {}).ok).toBe(false);
    expect(nextObject('movie', 'v/seg1.m4s', { nor: 'seg1.m4s' }).ok).toBe(false);
  });

  it('a refused nor is refused whatever nrr says', () => {
    expect(nextObject('movie', 'v/seg1.m4s', { nor: '../../other/x', nrr: '0-1' }).ok).toBe(false);
  });
});

describe('prefetchRange: the bytes brought once the size is known', () => {
  it('whole object, clamped ranges, suffixes, nothing past the end', () => {
    expect(prefetchRange(undefined, 1000)).toEqual({ start: 0, end: 1000 });
    expect(prefetchRange({ header: 'bytes=100-199', firstByte: 100 }, 1000)).toEqual({ start: 100, end: 200 });
    expect(prefetchRange({ header: 'bytes=900-', firstByte: 900 }, 1000)).toEqual({ start: 900, end: 1000 });
    expect(prefetchRange({ header: 'bytes=900-5000', firstByte: 900 }, 1000)).toEqual({ start: 900, end: 1000 });
    expect(prefetchRange({ header: 'bytes=-300', firstByte: undefined }, 1000)).toEqual({ start: 700, end: 1000 });
    expect(prefetchRange({ header: 'bytes=1000-', firstByte: 1000 }, 1000)).toBeUndefined();
    expect(prefetchRange(undefined, 0)).toBeUndefined();
  });
});

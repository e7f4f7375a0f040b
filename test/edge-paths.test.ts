import { describe, expect, it } from 'vitest';
import { MAX_PATH_LENGTH, isValidFilePath, isValidTitle, objectKey, parseObjectPath } from '../src/common/paths.js';

describe('parseObjectPath', () => {
  const ok: [string, string, string][] = [
    ['title-1/index.m3u8', 'title-1', 'index.m3u8'],
    ['t/video/1080p/seg_00001.m4s', 't', 'video/1080p/seg_00001.m4s'],
    ['t/a%20b.mp4'.replace('%20', '%2B'), 't', 'a+b.mp4'],
    ['T.9_x/init@1=2,3~.mp4', 'T.9_x', 'init@1=2,3~.mp4'],
    ['t/%61.ts', 't', 'a.ts'],
    ['t/.hidden', 't', '.hidden'],
    ['t/...', 't', '...'],
  ];
  it.each(ok)('accepts %j', (raw, title, file) => {
    expect(parseObjectPath(raw)).toEqual({ ok: true, title, file });
  });

  const bad: [string, string, RegExp][] = [
    ['dot-dot segment', 't/../etc/passwd', /dot segment/],
    ['dot-dot as title', '../x', /dot segment/],
    ['dot segment', 't/./a.ts', /dot segment/],
    ['encoded dot-dot', 't/%2e%2e/x.ts', /dot segment/],
    ['mixed-case encoded dot-dot', 't/%2E%2e/x.ts', /dot segment/],
    ['half-encoded dot-dot', 't/.%2e/x.ts', /dot segment/],
    ['encoded slash', 't/a%2Fb.ts', /encoded slash/],
    ['encoded slash lower case', 't/..%2fetc', /encoded slash/],
    ['encoded backslash', 't/a%5cb.ts', /encoded slash/],
    ['raw backslash', 't/..\\x', /encoded slash/],
    ['encoded NUL', 't/a%00.ts', /NUL/],
    ['raw NUL', 't/a\0.ts', /NUL/],
    ['double-encoded dot-dot', 't/%252e%252e/x', /unsupported character/],
    ['bad percent-encoding', 't/%zz', /percent-encoding/],
    ['truncated percent-encoding', 't/a%', /percent-encoding/],
    ['empty segment', 't//a.ts', /empty/],
    ['trailing slash', 't/a/', /empty/],
    ['leading slash', '/t/a.ts', /empty/],
    ['space', 't/a%20b.ts', /unsupported character/],
    ['query-like character', 't/a?.ts', /unsupported character/],
    ['non-ASCII', 't/%C3%A9.ts', /unsupported character/],
    ['no file', 't', /no file/],
    ['title starting with a dot', '.t/a.ts', /bad title/],
    ['title too long', `${'t'.repeat(129)}/a.ts`, /bad title/],
    ['segment too long', `t/${'a'.repeat(256)}`, /unsupported character/],
    ['overlong path', `t/${'a/'.repeat(MAX_PATH_LENGTH / 2)}a`, /too long/],
  ];
  it.each(bad)('refuses %s (%j)', (_name, raw, reason) => {
    const got = parseObjectPath(raw);
    expect(got.ok).toBe(false);
    expect(!got.ok && got.reason).toMatch(reason);
  });

  it('accepts a path of exactly MAX_PATH_LENGTH characters and refuses one more', () => {
    const exact = `t/${'a'.repeat(200)}/${'b'.repeat(200)}/${'c'.repeat(200)}/${'d'.repeat(200)}/`;
    const pad = MAX_PATH_LENGTH - exact.length;
    const raw = exact + 'e'.repeat(pad);
    expect(raw.length).toBe(MAX_PATH_LENGTH);
    expect(parseObjectPath(raw).ok).toBe(true);
    expect(parseObjectPath(raw + 'e').ok).toBe(false);
  });
});

describe('path helpers', () => {
  it('isValidTitle / isValidFilePath share the URL rules', () => {
    expect(isValidTitle('title-1')).toBe(true);
    expect(isValidTitle('-x')).toBe(false);
    expect(isValidFilePath('a/b.ts')).toBe(true);
    expect(isValidFilePath('a/../b.ts')).toBe(false);
    expect(isValidFilePath('a//b.ts')).toBe(false);
  });
  it('objectKey cannot collide by moving a separator', () => {
    expect(objectKey('a/b', 'c')).not.toBe(objectKey('a', 'b/c'));
    expect(objectKey('a', 'b')).toBe('["a","b"]');
  });
});

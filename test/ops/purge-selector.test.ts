import { describe, expect, it } from 'vitest';
import { describePurge, parsePurgeSelector, purgeMatches, purgeMatchesKey } from '../../src/common/purge-selector.js';
import { objectKey } from '../../src/common/paths.js';

describe('purge selector', () => {
  it('takesEachFormAndRefusesEverythingElseNamingTheField', () => {
    expect(parsePurgeSelector({ title: 't1' })).toEqual({ ok: true, selector: { title: 't1' } });
    expect(parsePurgeSelector({ title: 't1', file: 'v/a.ts' })).toEqual({ ok: true, selector: { title: 't1', file: 'v/a.ts' } });
    expect(parsePurgeSelector({ title: 't1', prefix: 'v/' })).toEqual({ ok: true, selector: { title: 't1', prefix: 'v/' } });
    expect(parsePurgeSelector({ prefix: 'show-s01' })).toEqual({ ok: true, selector: { prefix: 'show-s01' } });
    const refused: [unknown, RegExp][] = [
      [{}, /^title: missing/],
      [undefined, /^title: missing/],
      [{ title: 5 }, /^title: 5 is not a title id/],
      [{ title: '..', file: 'x' }, /^title: /],
      [{ title: 't', file: '../x' }, /^file: /],
      [{ title: 't', file: 7 }, /^file must be a string/],
      [{ prefix: '' }, /^prefix must be a non-empty string/],
      [{ prefix: 'x'.repeat(1025) }, /^prefix must be/],
      [{ title: 't', file: 'a', prefix: 'b' }, /^file and prefix: give one, not both/],
      [{ file: 'a' }, /^title: missing/],
      [{ title: 't', tilte: 'x' }, /^tilte: unknown field/],
      [[], /^body must be JSON/],
    ];
    for (const [body, reason] of refused) {
      const r = parsePurgeSelector(body);
      expect(r.ok, JSON.stringify(body)).toBe(false);
      if (!r.ok) expect(r.reason, JSON.stringify(body)).toMatch(reason);
    }
  });

  it('matchesExactlyWhatItNames', () => {
    const objects: [string, string][] = [
      ['show-s01e01', 'a.ts'],
      ['show-s01e02', 'v/1080/a.ts'],
      ['show-s02e01', 'a.ts'],
      ['show', 'a.ts'],
      ['t1', 'v/1080/a.ts'],
      ['t1', 'v/720/a.ts'],
      ['t1', 'v/1080'],
      ['t10', 'v/1080/a.ts'],
    ];
    const hits = (sel: Parameters<typeof purgeMatches>[0]) => objects.filter(([t, f]) => purgeMatches(sel, t, f)).map(([t, f]) => `${t}/${f}`);
    expect(hits({ prefix: 'show-s01' })).toEqual(['show-s01e01/a.ts', 'show-s01e02/v/1080/a.ts']);
    expect(hits({ title: 't1' })).toEqual(['t1/v/1080/a.ts', 't1/v/720/a.ts', 't1/v/1080']);
    expect(hits({ title: 't1', prefix: 'v/1080/' })).toEqual(['t1/v/1080/a.ts']);
    expect(hits({ title: 't1', file: 'v/1080' })).toEqual(['t1/v/1080']);
    // On cache keys alike; a key of another shape never matches.
    for (const [t, f] of objects) expect(purgeMatchesKey({ prefix: 'show-s01' }, objectKey(t, f))).toBe(purgeMatches({ prefix: 'show-s01' }, t, f));
    expect(purgeMatchesKey({ prefix: 's' }, 'show/a.ts')).toBe(false);
    expect(purgeMatchesKey({ prefix: 's' }, '["show"]')).toBe(false);
  });

  it('saysWhatItPurgesInWords', () => {
    expect(describePurge({ title: 't1' })).toBe('title t1');
    expect(describePurge({ title: 't1', file: 'a.ts' })).toBe('t1/a.ts');
    expect(describePurge({ title: 't1', prefix: 'v/' })).toBe('files of t1 starting "v/"');
    expect(describePurge({ prefix: 'show' })).toBe('titles starting "show"');
  });
});

import { describe, expect, it } from 'vitest';
import { isVersionId, newVersionId, planSweep, versionTime } from '../../src/origin/title-versions.js';

const T0 = Date.parse('2026-03-02T12:00:00.123Z');
const MIN = 60_000;
const v = (at: number, tag = '00000000') => newVersionId(at, tag);

describe('version ids', () => {
  it('itNamesTheIngestTimeAndSortsInPublicationOrder', () => {
    expect(v(T0, '1a2b3c4d')).toBe('v20260302T120000123Z-1a2b3c4d');
    expect(versionTime(v(T0))).toBe(T0);
    const ids = [v(T0 + 1), v(T0 + 10 * MIN), v(T0), v(T0 + 24 * 60 * MIN)];
    expect([...ids].sort().map(versionTime)).toEqual([T0, T0 + 1, T0 + 10 * MIN, T0 + 24 * 60 * MIN]);
  });

  it.each(['', 'movie', 'v20260302T120000123Z', 'v20260302T120000123Z-1A2B3C4D', 'v20260302T120000123Z-1a2b3c4d/x', '.staging-x', 'stream_360p.mp4'])(
    'itIsNotAVersionId %j',
    (name) => {
      expect(isVersionId(name)).toBe(false);
      expect(versionTime(name)).toBeUndefined();
    },
  );

  it('itRefusesATagThatIsNot8HexDigits', () => {
    expect(() => newVersionId(T0, 'xyz')).toThrow(/8 hex digits/);
  });
});

describe('planSweep', () => {
  const grace = 10 * MIN;
  const a = v(T0, 'aaaaaaaa');
  const b = v(T0 + 1 * MIN, 'bbbbbbbb');
  const c = v(T0 + 20 * MIN, 'cccccccc');

  it('itCountsTheGraceFromWhenTheCatalogNamedTheCurrentVersionNotFromItsId', () => {
    // On S3 an ingest names its version before a 5-minute upload: b's id says T0+1min, but the
    // catalog stopped naming a only at T0+6min, when b was published (its ingestedAt).
    const current = { version: b, publishedAt: T0 + 6 * MIN };
    expect(planSweep({ names: [a, b], current, now: T0 + 11 * MIN, graceMs: grace })).toEqual([]);
    expect(planSweep({ names: [a, b], current, now: T0 + 16 * MIN, graceMs: grace })).toEqual([a]);
    // Loose files of the unversioned layout, replaced by the first version folder, likewise.
    expect(planSweep({ names: ['master.m3u8', b], current, now: T0 + 11 * MIN, graceMs: grace })).toEqual([]);
    expect(planSweep({ names: ['master.m3u8', b], current, now: T0 + 16 * MIN, graceMs: grace })).toEqual(['master.m3u8']);
  });

  it('itKeepsTheCurrentVersionAlways', () => {
    expect(planSweep({ names: [a], current: { version: a }, now: T0 + 1000 * MIN, graceMs: 0 })).toEqual([]);
  });

  it('itKeepsAReplacedVersionForTheGracePeriodAfterItsSuccessorWasPublished', () => {
    // a was replaced by b at T0+1min, b by c at T0+20min.
    const names = [c, a, b];
    expect(planSweep({ names, current: { version: c }, now: T0 + 20 * MIN, graceMs: grace })).toEqual([a]);
    expect(planSweep({ names, current: { version: c }, now: T0 + 30 * MIN - 1, graceMs: grace })).toEqual([a]);
    expect(planSweep({ names, current: { version: c }, now: T0 + 30 * MIN, graceMs: grace })).toEqual([a, b]);
  });

  it('itCountsAnOrphanFromItsOwnPublication', () => {
    // c was renamed into place by an ingest that crashed before saving the catalog (or is being
    // saved right now by another process): the catalog still names b.
    const names = [b, c];
    expect(planSweep({ names, current: { version: b }, now: T0 + 20 * MIN, graceMs: grace })).toEqual([]);
    expect(planSweep({ names, current: { version: b }, now: T0 + 30 * MIN, graceMs: grace })).toEqual([c]);
  });

  it('itLeavesATitleTheCatalogDoesNotKnowAlone', () => {
    expect(planSweep({ names: [a, b, 'x.m4s'], current: undefined, now: T0 + 1000 * MIN, graceMs: 0 })).toEqual([]);
  });

  it('itKeepsTheFilesOfAnUnversionedEntry', () => {
    const names = ['master.m3u8', 'video', 'seg.m4s'];
    expect(planSweep({ names, current: { version: undefined }, now: T0 + 1000 * MIN, graceMs: 0 })).toEqual([]);
    // An orphan version beside them goes after its grace; the loose files stay.
    expect(planSweep({ names: [...names, a], current: { version: undefined }, now: T0 + 1000 * MIN, graceMs: grace })).toEqual([a]);
  });

  it('itRemovesUnversionedFilesOnlyAfterTheFirstVersionReplacedThemForTheGracePeriod', () => {
    const names = ['master.m3u8', a, 'video', b];
    expect(planSweep({ names, current: { version: b }, now: T0 + 5 * MIN, graceMs: grace })).toEqual([]);
    expect(planSweep({ names, current: { version: b }, now: T0 + 10 * MIN, graceMs: grace })).toEqual(['master.m3u8', 'video']);
    expect(planSweep({ names, current: { version: b }, now: T0 + 11 * MIN, graceMs: grace })).toEqual([a, 'master.m3u8', 'video']);
  });
});

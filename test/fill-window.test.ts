import { describe, expect, it } from 'vitest';
import { inWindow, localMinutes, nextWindowStart, parseWindow, windowEnd } from '../src/edge/fill-window.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

describe('fill window', () => {
  it('readsLocalTimeInTheNodesTimezone', () => {
    // 12:00 UTC is 14:00 in Berlin in summer, 13:00 in winter, 05:00 in Los Angeles, 17:30 in Kolkata.
    expect(localMinutes(at('2024-06-01T12:00:00Z'), 'Europe/Berlin')).toBe(14 * 60);
    expect(localMinutes(at('2024-01-15T12:00:00Z'), 'Europe/Berlin')).toBe(13 * 60);
    expect(localMinutes(at('2024-06-01T12:00:00Z'), 'America/Los_Angeles')).toBe(5 * 60);
    expect(localMinutes(at('2024-06-01T12:00:00Z'), 'Asia/Kolkata')).toBe(17 * 60 + 30);
  });

  it('opensAndClosesAtLocalTimesInBerlinSummerAndWinter', () => {
    const w = parseWindow('02:00-06:00', 'Europe/Berlin');
    expect(inWindow(w, at('2024-06-01T23:59:00Z'))).toBe(false); // 01:59 CEST
    expect(inWindow(w, at('2024-06-02T00:00:00Z'))).toBe(true); // 02:00 CEST
    expect(inWindow(w, at('2024-06-02T03:59:00Z'))).toBe(true); // 05:59
    expect(inWindow(w, at('2024-06-02T04:00:00Z'))).toBe(false); // 06:00: end is exclusive
    expect(inWindow(w, at('2024-01-15T01:00:00Z'))).toBe(true); // 02:00 CET
    expect(inWindow(w, at('2024-01-15T00:59:00Z'))).toBe(false);
    expect(inWindow(w, at('2024-01-15T05:00:00Z'))).toBe(false); // 06:00 CET
  });

  it('handlesAWindowAcrossMidnightInLosAngeles', () => {
    const w = parseWindow('22:00-04:00', 'America/Los_Angeles');
    expect(inWindow(w, at('2024-06-01T04:59:00Z'))).toBe(false); // 21:59 PDT
    expect(inWindow(w, at('2024-06-01T05:00:00Z'))).toBe(true); // 22:00 PDT
    expect(inWindow(w, at('2024-06-01T07:00:00Z'))).toBe(true); // 00:00 PDT, the next day
    expect(inWindow(w, at('2024-06-01T10:59:00Z'))).toBe(true); // 03:59
    expect(inWindow(w, at('2024-06-01T11:00:00Z'))).toBe(false); // 04:00
    expect(inWindow(w, at('2024-06-01T20:00:00Z'))).toBe(false); // 13:00
    // From the afternoon, the window opens at 22:00 local and closes at 04:00 the day after.
    const start = nextWindowStart(w, at('2024-06-01T20:00:00Z'));
    expect(iso(start)).toBe('2024-06-02T05:00:00.000Z');
    expect(iso(windowEnd(w, start))).toBe('2024-06-02T11:00:00.000Z');
  });

  it('handlesAHalfHourOffsetInKolkata', () => {
    const w = parseWindow('01:30-05:00', 'Asia/Kolkata');
    expect(inWindow(w, at('2024-06-01T19:59:00Z'))).toBe(false); // 01:29 IST
    expect(inWindow(w, at('2024-06-01T20:00:00Z'))).toBe(true); // 01:30 IST
    expect(iso(nextWindowStart(w, at('2024-06-01T12:00:00Z')))).toBe('2024-06-01T20:00:00.000Z');
    expect(iso(windowEnd(w, at('2024-06-01T21:00:00Z')))).toBe('2024-06-01T23:30:00.000Z');
  });

  it('opensLateAndKeepsItsEndOnTheSpringForwardNightInBerlin', () => {
    // 2024-03-31: 02:00 CET jumps to 03:00 CEST at 01:00 UTC; 02:xx never happens.
    const w = parseWindow('02:00-06:00', 'Europe/Berlin');
    const start = nextWindowStart(w, at('2024-03-30T23:00:00Z')); // 00:00 CET
    expect(iso(start)).toBe('2024-03-31T01:00:00.000Z'); // 03:00 CEST, the first minute in the window
    expect(iso(windowEnd(w, start))).toBe('2024-03-31T04:00:00.000Z'); // 06:00 CEST: a 3-hour night
  });

  it('isFiveHoursLongOnTheFallBackNightInBerlin', () => {
    // 2024-10-27: 03:00 CEST falls back to 02:00 CET at 01:00 UTC; 02:xx happens twice.
    const w = parseWindow('02:00-06:00', 'Europe/Berlin');
    const start = nextWindowStart(w, at('2024-10-26T22:00:00Z')); // 00:00 CEST
    expect(iso(start)).toBe('2024-10-27T00:00:00.000Z'); // 02:00 CEST
    expect(inWindow(w, at('2024-10-27T01:30:00Z'))).toBe(true); // 02:30 CET, second time round
    expect(iso(windowEnd(w, start))).toBe('2024-10-27T05:00:00.000Z'); // 06:00 CET
  });

  it('handlesTheSpringForwardNightInLosAngeles', () => {
    // 2024-03-10: 02:00 PST jumps to 03:00 PDT at 10:00 UTC; a 01:00-03:00 window is one hour long.
    const w = parseWindow('01:00-03:00', 'America/Los_Angeles');
    const start = nextWindowStart(w, at('2024-03-10T08:00:00Z')); // 00:00 PST
    expect(iso(start)).toBe('2024-03-10T09:00:00.000Z');
    expect(iso(windowEnd(w, start))).toBe('2024-03-10T10:00:00.000Z');
  });

  it('treatsEqualEndsAndTwentyFourHundredAsAllDay', () => {
    const w = parseWindow('00:00-24:00', 'UTC');
    expect(inWindow(w, at('2024-06-01T12:34:00Z'))).toBe(true);
    expect(windowEnd(w, at('2024-06-01T12:34:00Z'))).toBeUndefined();
    const late = parseWindow('22:00-24:00', 'UTC');
    expect(inWindow(late, at('2024-06-01T23:59:00Z'))).toBe(true);
    expect(inWindow(late, at('2024-06-02T00:00:00Z'))).toBe(false);
  });

  it('rejectsWhatIsNotATimeOfDay', () => {
    expect(() => parseWindow('2-6', 'UTC')).toThrow(/must look like/);
    expect(() => parseWindow('25:00-06:00', 'UTC')).toThrow(/not a time of day/);
  });
});

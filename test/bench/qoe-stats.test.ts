import { describe, expect, it } from 'vitest';
import { type RequestRecord, type SessionRecord, formatRun, goalVerdicts, percentile, summarizeRun } from '../../bench/qoe-stats.js';

const req = (kind: RequestRecord['kind'], xCache = '', bytes = 1000): RequestRecord => ({ kind, status: 200, xCache, bytes, realMs: 10 });

const session = (o: Partial<SessionRecord> & { requests: RequestRecord[] }): SessionRecord => ({
  player: 0,
  title: 't',
  capKbps: 1000,
  startupS: 1,
  stallS: 0,
  stallCount: 0,
  playedS: 10,
  bitrateSeconds: 5000,
  mediaS: 10,
  switches: 0,
  ...o,
});

describe('percentile', () => {
  it('is the nearest rank', () => {
    const v = [5, 1, 4, 2, 3, 6, 7, 8, 9, 10];
    expect(percentile(v, 50)).toBe(5);
    expect(percentile(v, 90)).toBe(9);
    expect(percentile(v, 100)).toBe(10);
    expect(percentile(v, 0)).toBe(1);
    expect(percentile([7], 90)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });
});

describe('summarizeRun', () => {
  const sessions = [
    session({
      startupS: 1,
      stallS: 1,
      stallCount: 1,
      playedS: 9,
      bitrateSeconds: 4000,
      mediaS: 10,
      switches: 2,
      requests: [req('manifest'), req('manifest'), req('init', 'MISS', 500), req('media', 'MISS'), req('init', 'MISS', 500), req('media', 'HIT-MEM'), req('media', 'HIT-FILL')],
    }),
    session({ startupS: 3, bitrateSeconds: 16000, mediaS: 10, requests: [req('manifest'), req('media', 'MISS'), req('media', 'HIT-MEM'), req('media', 'HIT-MEM')] }),
    session({ startupS: undefined, playedS: 0, bitrateSeconds: 0, mediaS: 0, error: 'media /c/t/x answered 503', requests: [req('manifest')] }),
  ];
  const s = summarizeRun({ label: 'x', prefetch: true, sessions, originBytes: 123, edgeCpuS: 0.07, edgeIdleCpuS: 0.01, wallS: 5 });

  it('counts media requests after each session’s first segment, by X-Cache (init segments apart)', () => {
    expect(s.laterMediaRequests).toBe(4);
    expect(s.laterXCache).toEqual({ 'HIT-MEM': 3, 'HIT-FILL': 1 });
    expect(s.hitMemAfterFirst).toBe(0.75);
  });

  it('sums startup, rebuffering and bitrate over the sessions', () => {
    expect(s.sessions).toBe(3);
    expect(s.failed).toBe(1);
    expect(s.startupP50S).toBe(1);
    expect(s.startupP90S).toBe(3);
    expect(s.rebufferRatio).toBeCloseTo(1 / 20, 9); // 1 s stalled of 19 played + 1 stalled
    expect(s.stalls).toBe(1);
    expect(s.avgBitrateKbps).toBe(1000); // 20000 kbps·s over 20 s
    expect(s.switches).toBe(2);
  });

  it('divides the edge’s CPU by what it answered (init and media, not steering’s manifests)', () => {
    expect(s.edgeAnswers).toBe(8);
    expect(s.edgeCpuUsPerAnswer).toBeCloseTo(8750, 6);
    expect(s.edgeCpuUsPerAnswerAboveIdle).toBeCloseTo(7500, 6);
    expect(s.edgeBytes).toBe(7000);
    expect(formatRun(s).join('\n')).toContain('HIT-MEM 75.0 % (HIT-MEM 3, HIT-FILL 1)');
  });

  it('an answer without X-Cache is counted by its status', () => {
    const r = summarizeRun({ label: 'y', prefetch: false, sessions: [session({ requests: [req('media', 'MISS'), { ...req('media'), status: 503 }] })], originBytes: 0, edgeCpuS: 0, edgeIdleCpuS: 0, wallS: 1 });
    expect(r.laterXCache).toEqual({ 'status 503': 1 });
    expect(r.hitMemAfterFirst).toBe(0);
  });
});

describe('goalVerdicts', () => {
  const base = summarizeRun({ label: 'off', prefetch: false, sessions: [], originBytes: 0, edgeCpuS: 0, edgeIdleCpuS: 0, wallS: 1 });

  it('HIT-MEM: met at 95 % and above', () => {
    const off = { ...base, startupP90S: 1 };
    expect(goalVerdicts(off, { ...base, prefetch: true, hitMemAfterFirst: 0.95, startupP90S: 1 }).hitMem.met).toBe(true);
    expect(goalVerdicts(off, { ...base, prefetch: true, hitMemAfterFirst: 0.949, startupP90S: 1 }).hitMem.met).toBe(false);
  });

  it('startup: no worse within 5 %', () => {
    const off = { ...base, startupP90S: 2 };
    const on = (p90: number) => goalVerdicts(off, { ...base, prefetch: true, hitMemAfterFirst: 1, startupP90S: p90 });
    expect(on(2.1).startup.met).toBe(true);
    expect(on(2.11).startup.met).toBe(false);
    expect(on(2.11).lines[1]).toBe('p90 startup with prefetch: 2.11 s vs 2.00 s without (goal: no worse, within 5 %) — NOT met');
    expect(on(1).lines[0]).toMatch(/^HIT-MEM after first segment with prefetch: 100.0 % \(goal ≥ 95 %\) — met/);
  });
});

describe('summarizeRun: requests after a rendition switch', () => {
  it('gives the HIT-MEM share of the requests in the rendition before apart (what nor could announce)', () => {
    const media = (xCache: string, switched: boolean): RequestRecord => ({ ...req('media', xCache), switched });
    const s = summarizeRun({
      label: 'z',
      prefetch: true,
      sessions: [session({ requests: [media('MISS', false), media('HIT-MEM', false), media('MISS', true), media('HIT-MEM', false), media('HIT-DISK', false)] })],
      originBytes: 0,
      edgeCpuS: 0,
      edgeIdleCpuS: 0,
      wallS: 1,
    });
    expect(s.laterMediaRequests).toBe(4);
    expect(s.hitMemAfterFirst).toBe(0.5);
    expect(s.sameRenditionRequests).toBe(3);
    expect(s.hitMemSameRendition).toBeCloseTo(2 / 3, 9);
  });
});

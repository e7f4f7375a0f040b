import { describe, expect, it } from 'vitest';
import { type QoeCounts, QoeHistory, STARTUP_BOUNDS_MS, asQoeCounts, bucketQuantile, emptyQoe, qoeDelta, summarize } from '../../src/steering/qoe-history.js';

/** A cumulative qoe block as an edge's /health carries it. */
const qoe = (o: Partial<Omit<QoeCounts, 'startupCounts'>> & { startup?: Record<number, number> } = {}): QoeCounts => {
  const c = emptyQoe();
  for (const [k, v] of Object.entries(o)) if (k !== 'startup') (c as unknown as Record<string, number>)[k] = v as number;
  for (const [i, n] of Object.entries(o.startup ?? {})) c.startupCounts[Number(i)] = n;
  return c;
};
const EDGES = [
  { id: 'a1', isp: 'isp-a' },
  { id: 'a2', isp: 'isp-a' },
  { id: 'b1', isp: 'isp-b' },
];
const MIN = 60_000;

describe('startup buckets to percentiles', () => {
  it('interpolates inside the bucket the rank falls in, from 0 for the first', () => {
    const b = STARTUP_BOUNDS_MS;
    // 10 startups all in (500, 1000]: p50 is half-way, p90 nine tenths of the way.
    const c = [0, 0, 10, 0, 0, 0, 0, 0, 0, 0];
    expect(bucketQuantile(c, b, 0.5)).toBe(750);
    expect(bucketQuantile(c, b, 0.9)).toBe(950);
    // 4 in [0, 250], 4 in (250, 500], 2 in (1000, 1500]: p50 is rank 5, the first of the second bucket.
    const d = [4, 4, 0, 2, 0, 0, 0, 0, 0, 0];
    expect(bucketQuantile(d, b, 0.5)).toBeCloseTo(250 + 250 * (1 / 4), 10);
    expect(bucketQuantile(d, b, 0.9)).toBeCloseTo(1000 + 500 * (1 / 2), 10); // rank 9: the first of two in (1000,1500]
    expect(bucketQuantile([2, 0, 0, 0, 0, 0, 0, 0, 0, 0], b, 0.5)).toBe(125);
  });

  it('says "at least 15 s" for a quantile in the open bucket, and null for nothing', () => {
    const c = [1, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    expect(bucketQuantile(c, STARTUP_BOUNDS_MS, 0.5)).toBe(15000);
    expect(bucketQuantile(c, STARTUP_BOUNDS_MS, 0.9)).toBe(15000);
    expect(bucketQuantile(new Array(10).fill(0), STARTUP_BOUNDS_MS, 0.5)).toBeNull();
  });

  it('summarizes ratios and averages, null where nothing was counted', () => {
    const s = summarize(qoe({ sessions: 3, requests: 50, mediaRequests: 40, starved: 2, brKbpsSum: 40 * 1500, brCount: 40, blMsSum: 30 * 8000, blCount: 30, startup: { 2: 3 } }));
    expect(s).toEqual({ sessions: 3, requests: 50, mediaRequests: 40, startups: 3, startupP50Ms: 750, startupP90Ms: 500 + 500 * 0.9, rebufferRatio: 0.05, avgBitrateKbps: 1500, avgBufferMs: 8000 });
    expect(summarize(qoe({ requests: 2 }))).toMatchObject({ startupP50Ms: null, rebufferRatio: null, avgBitrateKbps: null, avgBufferMs: null });
  });
});

describe('reading the qoe block of a /health report', () => {
  const wire = { sessions: 1, requests: 2, mediaRequests: 1, starved: 0, brKbpsSum: 800, brCount: 1, blMsSum: 4000, blCount: 1, startupBoundsMs: [...STARTUP_BOUNDS_MS], startupCounts: [0, 1, 0, 0, 0, 0, 0, 0, 0, 0] };
  it('takes the contract shape', () => {
    expect(asQoeCounts(wire)).toEqual(qoe({ sessions: 1, requests: 2, mediaRequests: 1, brKbpsSum: 800, brCount: 1, blMsSum: 4000, blCount: 1, startup: { 1: 1 } }));
  });
  it('refuses an absent block, negative or non-numbers, and other buckets (they could not be added)', () => {
    expect(asQoeCounts(undefined)).toBeUndefined();
    expect(asQoeCounts(null)).toBeUndefined();
    expect(asQoeCounts({ ...wire, requests: -1 })).toBeUndefined();
    expect(asQoeCounts({ ...wire, starved: '3' })).toBeUndefined();
    expect(asQoeCounts({ ...wire, brKbpsSum: Number.NaN })).toBeUndefined();
    expect(asQoeCounts({ ...wire, startupBoundsMs: [100, 200] })).toBeUndefined();
    expect(asQoeCounts({ ...wire, startupCounts: [1, 2, 3] })).toBeUndefined();
    expect(asQoeCounts({ ...wire, startupCounts: [0, 0, 0, 0, 0, 0, 0, 0, 0, 'x'] })).toBeUndefined();
  });
  it('a delta is undefined when any counter went down', () => {
    expect(qoeDelta(qoe({ requests: 5 }), qoe({ requests: 4 }))).toBeUndefined();
    expect(qoeDelta(qoe({ requests: 5, startup: { 3: 2 } }), qoe({ requests: 9, startup: { 3: 1 } }))).toBeUndefined();
    expect(qoeDelta(qoe({ requests: 5 }), qoe({ requests: 9 }))!.requests).toBe(4);
  });
});

describe('QoE history', () => {
  it('sums interval deltas per edge and per ISP, not the edges\' totals', () => {
    const h = new QoeHistory();
    // Before steering's first sample edge a1 had already served 100 CMCD requests: not in the window.
    h.add(0, [{ id: 'a1', isp: 'isp-a', qoe: qoe({ sessions: 9, requests: 100, mediaRequests: 100, brKbpsSum: 100 * 9000, brCount: 100 }) }, { id: 'b1', isp: 'isp-b', qoe: qoe() }]);
    h.add(5000, [
      { id: 'a1', isp: 'isp-a', qoe: qoe({ sessions: 10, requests: 110, mediaRequests: 108, starved: 1, brKbpsSum: 100 * 9000 + 8 * 1000, brCount: 108, blMsSum: 8 * 5000, blCount: 8, startup: { 2: 1 } }) },
      { id: 'a2', isp: 'isp-a', qoe: qoe({ requests: 4 }) }, // first seen: no delta yet
      { id: 'b1', isp: 'isp-b', qoe: qoe() },
    ]);
    h.add(10_000, [
      { id: 'a1', isp: 'isp-a', qoe: qoe({ sessions: 10, requests: 110, mediaRequests: 108, starved: 1, brKbpsSum: 100 * 9000 + 8 * 1000, brCount: 108, blMsSum: 8 * 5000, blCount: 8, startup: { 2: 1 } }) },
      { id: 'a2', isp: 'isp-a', qoe: qoe({ sessions: 1, requests: 6, mediaRequests: 2, brKbpsSum: 2 * 4000, brCount: 2, startup: { 4: 1 } }) },
      { id: 'b1', isp: 'isp-b', qoe: qoe() },
    ]);
    const w = h.window(10_000, EDGES);
    const a1 = w.edges.find((e) => e.id === 'a1')!.qoe!;
    expect(a1).toMatchObject({ sessions: 1, requests: 10, mediaRequests: 8, startups: 1, rebufferRatio: 1 / 8, avgBitrateKbps: 1000, avgBufferMs: 5000, startupP50Ms: 750 });
    const a2 = w.edges.find((e) => e.id === 'a2')!.qoe!;
    expect(a2).toMatchObject({ sessions: 1, requests: 2, mediaRequests: 2, avgBitrateKbps: 4000, startupP50Ms: 1750 });
    expect(w.edges.find((e) => e.id === 'b1')!.qoe).toBeNull(); // no CMCD: null, not zeros
    const ispA = w.isps.find((i) => i.id === 'isp-a')!;
    expect(ispA.edges).toEqual(['a1', 'a2']);
    expect(ispA.qoe).toMatchObject({ sessions: 2, requests: 12, mediaRequests: 10, startups: 2, rebufferRatio: 0.1, avgBitrateKbps: (8000 + 8000) / 10 });
    // Two startups, one in (500,1000], one in (1500,2000]: p50 is the first's bucket top, p90 80% into the second.
    expect(ispA.qoe!.startupP50Ms).toBe(1000);
    expect(ispA.qoe!.startupP90Ms).toBeCloseTo(1500 + 500 * 0.8, 10);
    expect(w.isps.find((i) => i.id === 'isp-b')!.qoe).toBeNull();
    expect(w.startupBoundsMs).toEqual(STARTUP_BOUNDS_MS);
  });

  it('drops the interval of an edge that restarted (counters down), then counts from its new baseline', () => {
    const h = new QoeHistory();
    h.add(0, [{ id: 'a1', isp: 'isp-a', qoe: qoe({ requests: 50, mediaRequests: 50, starved: 5 }) }]);
    h.add(5000, [{ id: 'a1', isp: 'isp-a', qoe: qoe({ requests: 3, mediaRequests: 3, starved: 3 }) }]);
    expect(h.window(5000, EDGES).edges[0]!.qoe).toBeNull(); // never negative, never the new totals
    h.add(10_000, [{ id: 'a1', isp: 'isp-a', qoe: qoe({ requests: 7, mediaRequests: 7, starved: 3 }) }]);
    expect(h.window(10_000, EDGES).edges[0]!.qoe).toMatchObject({ requests: 4, mediaRequests: 4, rebufferRatio: 0 });
  });

  it('drops a restart the counters hide when the uptime went back', () => {
    const h = new QoeHistory();
    h.add(0, [{ id: 'a1', isp: 'isp-a', uptimeSec: 600, qoe: qoe({ requests: 10 }) }]);
    // Restarted and already past its old count by the next sample: the uptime tells.
    h.add(5000, [{ id: 'a1', isp: 'isp-a', uptimeSec: 3, qoe: qoe({ requests: 40 }) }]);
    expect(h.window(5000, EDGES).edges[0]!.qoe).toBeNull();
    h.add(10_000, [{ id: 'a1', isp: 'isp-a', uptimeSec: 8, qoe: qoe({ requests: 45 }) }]);
    expect(h.window(10_000, EDGES).edges[0]!.qoe!.requests).toBe(5);
  });

  it('keeps what an edge served across missed samples (its report stays), but not an interval longer than the window', () => {
    const h = new QoeHistory({ windowMs: 10 * MIN });
    h.add(0, [{ id: 'a1', isp: 'isp-a', qoe: qoe({ requests: 10 }) }]);
    // An edge without a qoe block in one sample (an older version for a while): no delta either side of it.
    h.add(5000, [{ id: 'a1', isp: 'isp-a' }]);
    h.add(10_000, [{ id: 'a1', isp: 'isp-a', qoe: qoe({ requests: 20 }) }]);
    expect(h.window(10_000, EDGES).edges[0]!.qoe).toBeNull();
    // Steering sampled nothing for 2 minutes: the delta covers them, at the time it was seen.
    h.add(130_000, [{ id: 'a1', isp: 'isp-a', qoe: qoe({ requests: 32 }) }]);
    expect(h.window(130_000, EDGES).edges[0]!.qoe!.requests).toBe(12);
    // Nothing sampled for longer than the window: when those requests came cannot be said.
    h.add(130_000 + 11 * MIN, [{ id: 'a1', isp: 'isp-a', qoe: qoe({ requests: 99 }) }]);
    expect(h.window(130_000 + 11 * MIN, EDGES).edges[0]!.qoe).toBeNull();
  });

  it('counts only the intervals that ended in the last hour, and stays bounded', () => {
    const h = new QoeHistory({ maxIntervals: 1000 });
    // One CMCD request per 5 s interval for two hours.
    for (let t = 0, n = 0; t <= 2 * 60 * MIN; t += 5000, n++) h.add(t, [{ id: 'a1', isp: 'isp-a', qoe: qoe({ requests: n, sessions: n }) }]);
    const now = 2 * 60 * MIN;
    expect(h.size).toBe(720); // an hour of 5 s intervals
    expect(h.window(now, EDGES).edges[0]!.qoe!.requests).toBe(720);
    // Asked 30 minutes later (no sample since): only the newer half hour remains in the window.
    expect(h.window(now + 30 * MIN, EDGES).edges[0]!.qoe!.requests).toBe(360);
    expect(h.window(now + 61 * MIN, EDGES).edges[0]!.qoe).toBeNull();
    const small = new QoeHistory({ maxIntervals: 10 });
    for (let t = 0; t <= 100_000; t += 1000) small.add(t, [{ id: 'a1', isp: 'isp-a', qoe: qoe({ requests: t }) }]);
    expect(small.size).toBe(10);
  });

  it('ignores a sample whose monotonic time did not advance, and edges a reload removed', () => {
    const h = new QoeHistory();
    h.add(1000, [{ id: 'a1', isp: 'isp-a', qoe: qoe({ requests: 1 }) }, { id: 'gone', isp: 'isp-a', qoe: qoe({ requests: 1 }) }]);
    h.add(1000, [{ id: 'a1', isp: 'isp-a', qoe: qoe({ requests: 5 }) }]);
    h.add(2000, [{ id: 'a1', isp: 'isp-a', qoe: qoe({ requests: 3 }) }, { id: 'gone', isp: 'isp-a', qoe: qoe({ requests: 9 }) }]);
    const w = h.window(2000, EDGES);
    expect(w.edges.map((e) => e.id)).toEqual(['a1', 'a2', 'b1']);
    expect(w.edges[0]!.qoe!.requests).toBe(2);
    expect(w.isps.find((i) => i.id === 'isp-a')!.qoe!.requests).toBe(2);
  });
});

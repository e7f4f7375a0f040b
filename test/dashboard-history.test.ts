import { describe, expect, it } from 'vitest';
import { type ClusterSample, type TierCounts, DashboardHistory, ratios } from '../src/steering/dashboard-history.js';

const tiers = (mem: number, disk: number, miss: number, size = 100): TierCounts => ({
  'HIT-MEM': { requests: mem, bytes: mem * size },
  'HIT-DISK': { requests: disk, bytes: disk * size },
  'HIT-FILL': { requests: 0, bytes: 0 },
  MISS: { requests: miss, bytes: miss * size },
});

const sample = (at: number, a1: TierCounts | undefined, originBytes?: number, state: 'up' | 'down' = 'up'): ClusterSample => ({
  at,
  edges: [
    { id: 'a1', isp: 'isp-a', state, tiers: a1, bytesPerSec: 1000 },
    { id: 'b1', isp: 'isp-b', state: 'up', tiers: tiers(0, 0, 0), bytesPerSec: 0 },
  ],
  originBytes,
});

describe('dashboard history', () => {
  it('computes each interval from counter deltas, not totals', () => {
    const h = new DashboardHistory();
    expect(h.add(sample(0, tiers(0, 0, 0), 0))).toBeUndefined();
    const p1 = h.add(sample(1000, tiers(15, 0, 5), 500))!;
    expect(p1.edges.a1).toMatchObject({ requests: 0.75, bytes: 0.75, up: 1, bytesPerSec: 1000 });
    expect(p1.isps['isp-a']).toEqual({ requests: 0.75, bytes: 0.75 });
    expect(p1.isps['isp-b']).toEqual({ requests: null, bytes: null }); // nothing answered: a gap, not 0%
    expect(p1.originBytesPerSec).toBe(500);
    const p2 = h.add(sample(3000, tiers(25, 10, 5), 500))!;
    expect(p2.edges.a1!.requests).toBe(1); // 20 more answers, all hits
    expect(p2.originBytesPerSec).toBe(0);
  });

  it('shows a restarted edge or origin as a gap, and a down edge as down', () => {
    const h = new DashboardHistory();
    h.add(sample(0, tiers(10, 0, 10), 1000));
    const p = h.add(sample(1000, tiers(1, 0, 0), 10, 'down'))!;
    expect(p.edges.a1).toMatchObject({ requests: null, up: 0, bytesPerSec: 0 });
    expect(p.originBytesPerSec).toBeNull();
  });

  it('keeps one hour, bounded, and answers incrementally', () => {
    const h = new DashboardHistory({ windowMs: 60_000, maxPoints: 40 });
    for (let t = 0; t <= 120_000; t += 1000) h.add(sample(t, tiers(t, 0, t)));
    expect(h.size).toBe(40);
    const all = h.columns();
    expect(all.t[0]).toBe(81);
    expect(all.t.at(-1)).toBe(120);
    expect(all.edges.a1!.hitRequests.every((v) => v === 0.5)).toBe(true);
    const newer = h.columns(118_000);
    expect(newer.t).toEqual([119, 120]);
    const h2 = new DashboardHistory({ windowMs: 10_000 });
    for (let t = 0; t <= 60_000; t += 1000) h2.add(sample(t, tiers(0, 0, 0)));
    expect(h2.size).toBe(11);
  });

  it('ratios of nothing are null', () => {
    expect(ratios(tiers(0, 0, 0))).toEqual({ requests: null, bytes: null });
    expect(ratios(tiers(1, 1, 2))).toEqual({ requests: 0.5, bytes: 0.5 });
  });
});

import { describe, expect, it } from 'vitest';
import { type ClusterSample, DashboardHistory } from '../../src/steering/dashboard-history.js';

const sample = (at: number, mono: number, originBytes: number): ClusterSample => ({
  at,
  mono,
  edges: [{ id: 'a1', isp: 'isp-a', state: 'up', tiers: { 'HIT-MEM': { requests: mono, bytes: mono }, 'HIT-DISK': { requests: 0, bytes: 0 }, 'HIT-FILL': { requests: 0, bytes: 0 }, MISS: { requests: 0, bytes: 0 } }, bytesPerSec: 0 }],
  originBytes,
});

describe('dashboard history and a wall clock that jumps', () => {
  it('keepsAddingPointsWhenTheWallClockIsSteppedBackAnHour', () => {
    const h = new DashboardHistory();
    const wall = Date.parse('2024-06-01T03:00:00Z');
    h.add(sample(wall, 10_000, 0));
    h.add(sample(wall + 1000, 11_000, 1000));
    // The wall clock goes back an hour; monotonic time carries on a second later.
    const p = h.add(sample(wall + 2000 - 3_600_000, 12_000, 3000));
    expect(p).toBeDefined();
    expect(p!.originBytesPerSec).toBe(2000);
    expect(h.size).toBe(2);
  });

  it('trimsTheWindowByMonotonicTime', () => {
    const h = new DashboardHistory({ windowMs: 10_000 });
    const wall = Date.parse('2024-06-01T03:00:00Z');
    for (let i = 0; i <= 5; i++) h.add(sample(wall + i * 1000, i * 1000, 0));
    // A wall clock jumping an hour ahead is not an hour of history gone.
    h.add(sample(wall + 3_600_000 + 6000, 6000, 0));
    expect(h.size).toBe(6);
  });
});

import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/common/clock.js';
import { TrafficStats } from '../../src/edge/traffic-stats.js';

describe('edge traffic stats and a wall clock that jumps', () => {
  it('keepsTheLastTenSecondsRatesWhenTheWallClockIsSteppedBack', () => {
    const clock = new FakeClock(Date.parse('2024-06-01T03:00:00Z'));
    const stats = new TrafficStats(clock);
    for (let s = 0; s < 5; s++) {
      stats.record(200, 1000, 'HIT-MEM');
      stats.record(502, 0, undefined);
      clock.advance(1000);
    }
    clock.stepWall(-3_600_000);
    const snap = stats.snapshot();
    expect(snap.requestsPerSec).toBe(1);
    expect(snap.bytesPerSec).toBe(500);
    expect(snap.errorRatio).toBe(0.5);
    // and answers recorded after the step still count
    stats.record(200, 1000, 'HIT-MEM');
    expect(stats.snapshot().requestsPerSec).toBe(1.1);
  });

  it('doesNotDropTheWindowWhenTheWallClockJumpsForward', () => {
    const clock = new FakeClock(0);
    const stats = new TrafficStats(clock);
    stats.record(200, 1000, 'MISS');
    clock.stepWall(3_600_000);
    expect(stats.snapshot().requestsPerSec).toBe(0.1);
  });
});

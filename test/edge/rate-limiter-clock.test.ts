import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/common/clock.js';
import { RateLimiter } from '../../src/edge/rate-limiter.js';

const turn = () => new Promise((r) => setImmediate(r));

describe('fill rate limiter and a wall clock that jumps', () => {
  it('keepsItsRateWhenTheWallClockIsSteppedBackAnHour', async () => {
    const clock = new FakeClock(Date.parse('2024-06-01T03:00:00Z'));
    const limiter = new RateLimiter(1000, clock, 1000);
    let done = 0;
    void limiter.take(500).then(() => done++);
    clock.advance(500);
    await turn();
    expect(done).toBe(1);

    clock.stepWall(-3_600_000); // NTP or an operator sets the clock back an hour
    for (let i = 0; i < 4; i++) void limiter.take(500).then(() => done++);
    // 2000 bytes at 1000 B/s: two seconds of monotonic time, not an hour and two seconds.
    for (let ms = 0; ms < 2000; ms += 100) {
      clock.advance(100);
      await turn();
    }
    expect(done).toBe(5);
  });

  it('doesNotHandOutABurstWhenTheWallClockJumpsForward', async () => {
    const clock = new FakeClock(0);
    const limiter = new RateLimiter(1000, clock, 1000);
    clock.stepWall(3_600_000);
    let done = false;
    void limiter.take(1000).then(() => (done = true));
    await turn();
    expect(done).toBe(false); // the bucket starts empty; an hour of wall time is not an hour idle
    clock.advance(1000);
    await turn();
    expect(done).toBe(true);
  });
});

import { describe, expect, it } from 'vitest';
import { FakeClock, VirtualClock } from '../src/common/clock.js';
import { RateLimiter } from '../src/edge/rate-limiter.js';

describe('fill rate limiter', () => {
  it('holdsTheRateOverAVirtualMinute', async () => {
    const clock = new VirtualClock(Date.parse('2024-06-01T00:00:00Z'));
    const rate = 1_000_000;
    const limiter = new RateLimiter(rate, clock, rate);
    const t0 = clock.now();
    let sent = 0;
    while (clock.now() - t0 < 60_000) {
      await limiter.take(65_536);
      sent += 65_536;
    }
    const measured = sent / ((clock.now() - t0) / 1000);
    expect(Math.abs(measured - rate) / rate).toBeLessThan(0.02);
  });

  it('sharesOneBudgetBetweenConcurrentCallersInOrder', async () => {
    const clock = new VirtualClock(0);
    const limiter = new RateLimiter(100_000, clock);
    const order: string[] = [];
    const t0 = clock.now();
    await Promise.all(
      ['a', 'b', 'c', 'd'].map(async (who) => {
        for (let i = 0; i < 5; i++) {
          await limiter.take(50_000);
          order.push(who);
        }
      }),
    );
    // 20 × 50 kB at 100 kB/s with an empty bucket at start: 10 s whoever asks.
    expect(clock.now() - t0).toBeGreaterThanOrEqual(9_990);
    expect(clock.now() - t0).toBeLessThanOrEqual(10_010);
    expect(order.slice(0, 4).sort()).toEqual(['a', 'b', 'c', 'd']);
  });

  it('doesNotLetAnIdleSpellBuyMoreThanTheBurst', async () => {
    const clock = new FakeClock(0);
    const limiter = new RateLimiter(1000, clock, 1000);
    clock.advance(3_600_000); // an idle hour earns one second's worth, no more
    let done = false;
    void limiter.take(1000).then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(true);
    let second = false;
    void limiter.take(500).then(() => (second = true));
    await new Promise((r) => setImmediate(r));
    expect(second).toBe(false);
    clock.advance(499);
    await new Promise((r) => setImmediate(r));
    expect(second).toBe(false);
    clock.advance(1);
    await new Promise((r) => setImmediate(r));
    expect(second).toBe(true);
  });
});

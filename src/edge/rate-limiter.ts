import type { Clock } from '../common/clock.js';

/**
 * A token bucket in bytes for the whole node's fill traffic: `take(n)` resolves when n bytes
 * may be sent under `bytesPerSec`, sleeping on the injected clock. Burst is one second's worth.
 * Refills by the monotonic clock: a wall clock stepped back would otherwise stall fill for as long.
 */
export class RateLimiter {
  private tokens: number;
  private last: number;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly bytesPerSec: number,
    private readonly clock: Clock,
    private readonly burst = bytesPerSec,
  ) {
    this.tokens = 0;
    this.last = clock.monotonic();
  }

  private refill(): void {
    const now = this.clock.monotonic();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.bytesPerSec);
    this.last = now;
  }

  /** Waits until `bytes` may go; callers are served in order so no one starves. */
  take(bytes: number): Promise<void> {
    const turn = this.queue.then(async () => {
      this.refill();
      this.tokens -= bytes; // may go negative: a large chunk is paid for by waiting
      if (this.tokens < 0) {
        const waitMs = (-this.tokens / this.bytesPerSec) * 1000;
        await new Promise<void>((resolve) => this.clock.setTimeout(resolve, waitMs));
        this.refill();
      }
    });
    this.queue = turn.catch(() => {});
    return turn;
  }
}

/**
 * Steering's own budget for steering manifest reloads: a token bucket (`perSecond` tokens a
 * second, at most `burst` saved). Reloads are the deferrable part of steering's work — every
 * player repeats one each TTL, and a player refused one keeps its pathway — so they are what
 * gives way, with 429 and a Retry-After (HLS Content Steering; hls.js and dash.js honour it),
 * before play starts slow down. Pure: time is passed in (monotonic ms).
 */
export interface BudgetVerdict {
  ok: boolean;
  /** With !ok: whole seconds to wait (at least 1). */
  retryAfterSec: number;
}

export class DecisionBudget {
  private tokens: number;
  private last: number | undefined;

  /** perSecond 0: no budget, every reload is answered. */
  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  get enabled(): boolean {
    return this.perSecond > 0;
  }

  /**
   * One reload. A refused one is told to come back once the bucket has refilled — spread over
   * a second such span by `spreadKey` (the client's), so refused players do not all return in
   * the same second.
   */
  take(now: number, spreadKey = 0): BudgetVerdict {
    if (!this.enabled) return { ok: true, retryAfterSec: 0 };
    if (this.last !== undefined && now > this.last) this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    if (this.last === undefined || now > this.last) this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true, retryAfterSec: 0 };
    }
    const refill = Math.max(1, Math.ceil(this.burst / this.perSecond));
    return { ok: false, retryAfterSec: refill + ((spreadKey >>> 0) % refill) };
  }
}

import { mix32 } from './ranking.js';

/**
 * Steering's own budget for steering manifest reloads: a token bucket for the process
 * (`perSecond` tokens a second, at most `burst` saved) of which one client may take only a small
 * share. Reloads are the deferrable part of steering's work — every player repeats one each TTL —
 * so they are what gives way before plays slow down; but only a reload whose player may keep
 * what it has is ever refused (the caller decides that, see server.ts), and how it is refused
 * depends on the player (player-hints.ts `overBudgetAnswer`). Pure: time is passed in
 * (monotonic ms), clients by a stable key (a hash of the trusted client address).
 */
export interface BudgetVerdict {
  ok: boolean;
  /** With !ok: whole seconds to come back after (at least 1), spread by client. */
  retryAfterSec: number;
}

/**
 * One client key may take at most this share of the budget (rate and burst), but never less than
 * one reload a second: a single address (a player, a NAT) cannot starve the others.
 */
export const CLIENT_SHARE = 1 / 16;
/**
 * Refused clients are told to come back over at least this many seconds, by their key: with
 * burst = perSecond the bucket refills in one second, and every refused player would otherwise
 * return in the same one.
 */
export const MIN_RETRY_SPREAD_SEC = 5;
/** Client keys are kept in this many slots (keys sharing a slot share a share): fixed memory. */
const SLOTS = 4096;

export class DecisionBudget {
  private tokens: number;
  private last: number | undefined;
  private readonly keyRate: number;
  private readonly keyBurst: number;
  private readonly keyTokens = new Float64Array(SLOTS);
  /** Monotonic ms of each slot's last take; NaN: never (full). */
  private readonly keyLast = new Float64Array(SLOTS).fill(Number.NaN);
  private readonly retryBase: number;
  private readonly retrySpread: number;

  /** perSecond 0: no budget, every reload is answered. */
  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
    this.keyRate = Math.max(1, perSecond * CLIENT_SHARE);
    this.keyBurst = Math.max(1, burst * CLIENT_SHARE);
    this.retryBase = perSecond > 0 ? Math.max(1, Math.ceil(burst / perSecond)) : 1;
    this.retrySpread = Math.max(MIN_RETRY_SPREAD_SEC, this.retryBase);
  }

  get enabled(): boolean {
    return this.perSecond > 0;
  }

  /**
   * One reload of the client with this key. `force`: a reload that must be answered (its player
   * has to move) is never refused, but spends like any other, so the deferrable ones give way
   * to it. A refused one is told to come back once the bucket has refilled, plus an offset by
   * its key over MIN_RETRY_SPREAD_SEC or more, so refused players do not all return at once.
   */
  take(now: number, clientKey: number, force = false): BudgetVerdict {
    if (!this.enabled) return { ok: true, retryAfterSec: 0 };
    if (this.last !== undefined && now > this.last) this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    if (this.last === undefined || now > this.last) this.last = now;
    const h = mix32(clientKey >>> 0);
    const slot = h & (SLOTS - 1);
    const then = this.keyLast[slot]!;
    let mine = Number.isNaN(then) ? this.keyBurst : Math.min(this.keyBurst, this.keyTokens[slot]! + (Math.max(0, now - then) / 1000) * this.keyRate);
    if (Number.isNaN(then) || now > then) this.keyLast[slot] = now;
    const ok = force || (this.tokens >= 1 && mine >= 1);
    if (ok) {
      this.tokens = Math.max(0, this.tokens - 1);
      mine = Math.max(0, mine - 1);
    }
    this.keyTokens[slot] = mine;
    if (ok) return { ok: true, retryAfterSec: 0 };
    return { ok: false, retryAfterSec: this.retryBase + ((h >>> 12) % this.retrySpread) };
  }
}

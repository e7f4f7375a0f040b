/**
 * The bench players' network model (pure): each player's bandwidth cap (a spread across
 * players, some with a dip mid-session so the ABR has to come down and go up again) and the
 * pacing that holds a read to the cap. Caps are in media time: with the playback clock `speed`
 * times faster than real time, a cap of C kbps reads at C × speed kbps of real time, so what the
 * player measures in media time is C again.
 */
import { seededRandom } from './seeded-random.js';

export interface CapPlan {
  /** The player's cap outside a dip, kbps (media time). */
  baseKbps: number;
  /** Share of the cap left during the dip (1: no dip). */
  dipShare: number;
  /** The dip, as shares of the title's duration [from, to). */
  dipFrom: number;
  dipTo: number;
}

export interface CapSpread {
  loKbps: number;
  hiKbps: number;
  /** Every `dipEvery`-th player (by index) has a dip; 0: none. */
  dipEvery: number;
  dipShare: number;
  dipFrom: number;
  dipTo: number;
}

export const DEFAULT_CAPS: CapSpread = { loKbps: 350, hiKbps: 3500, dipEvery: 3, dipShare: 0.4, dipFrom: 0.4, dipTo: 0.6 };

/**
 * Caps spread evenly on a log scale from lo to hi, handed out in a seeded order (so a player's
 * cap does not follow its start time), the same for the same `n` and seed on every run.
 */
export function capPlans(n: number, spread: CapSpread = DEFAULT_CAPS, seed = 12): CapPlan[] {
  const levels = Array.from({ length: n }, (_, i) => spread.loKbps * (spread.hiKbps / spread.loKbps) ** (n === 1 ? 0.5 : i / (n - 1)));
  const rng = seededRandom(seed);
  for (let i = levels.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [levels[i], levels[j]] = [levels[j]!, levels[i]!];
  }
  return levels.map((kbps, i) => {
    const dip = spread.dipEvery > 0 && i % spread.dipEvery === spread.dipEvery - 1;
    return { baseKbps: Math.round(kbps), dipShare: dip ? spread.dipShare : 1, dipFrom: spread.dipFrom, dipTo: spread.dipTo };
  });
}

/** The cap at media time `t` of a title `totalS` long, kbps. */
export function capAt(plan: CapPlan, t: number, totalS: number): number {
  const share = t / totalS;
  return share >= plan.dipFrom && share < plan.dipTo ? plan.baseKbps * plan.dipShare : plan.baseKbps;
}

/** Real-time bytes per millisecond of a cap in media-time kbps, with the clock `speed` times fast. */
export function realBytesPerMs(capKbps: number, speed: number): number {
  return (capKbps * speed) / 8;
}

/**
 * How long to hold off reading after `bytesSoFar` arrived `elapsedMs` after the read began, so
 * that the read does not outrun `bytesPerMs`: the cap as a pace, not as a bucket that a pause
 * could save up for later.
 */
export function pacedWaitMs(bytesSoFar: number, bytesPerMs: number, elapsedMs: number): number {
  if (!(bytesPerMs > 0)) return 0;
  return Math.max(0, bytesSoFar / bytesPerMs - elapsedMs);
}

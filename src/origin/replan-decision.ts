/**
 * Whether the origin should make a new fill plan (pure): only when what the plan is made of
 * changed enough to matter. A plan costs seconds of CPU at production catalog sizes
 * (docs/fill.md, "Planning cost"), and the edges poll their manifests every few minutes whatever
 * changed — so the plan is remade when:
 *
 * - the day turned (the standing plan and the decay of every play change), the catalog, the
 *   cluster file (edges, disks, pinned titles, fill settings) or the standing plan (another
 *   replica's) changed: at once — the plan made before is for something that no longer is;
 * - the plays counted since the last plan reach `playsRatio` of a day's plays, or the bytes the
 *   edges reported serving `servedRatio` of a day's: at most once per `minIntervalMs`. Within a
 *   day the prediction moves only by new counts (the decay is by whole days), and today's
 *   counts weigh about a third of the prediction at the default 2-day half-life, so 5 % of a
 *   day's plays move a title's predicted plays by a few per cent at most — inside the
 *   hysteresis band (stayRatio 0.8), where the plan would not move anything anyway;
 * - anything at all was counted and `maxIntervalMs` passed: small drifts still land, hourly.
 */

/** What a plan was made of, as cheap stamps (identities and counters, not contents). */
export interface PlanInputsStamp {
  /** UTC day the plan is for. */
  day: string;
  /** The catalog object (a reload makes a new one). */
  catalog: unknown;
  /** Goes up with every cluster-file reload the plans take. */
  config: number;
  /** Names the standing plan the plan is made against ('' for none). */
  standing: string;
  /** Plays counted since the process started (a counter; another replica's saves add theirs). */
  plays: number;
  /** Bytes of serve reports counted since the process started (the same). */
  served: number;
}

/** The last plan made (or tried). */
export interface LastPlan {
  stamp: PlanInputsStamp;
  /** Monotonic ms when its inputs were taken. */
  at: number;
  /** Plays a day in the plan's history (mean over its days): what "enough new plays" is a share of. */
  dailyPlays: number;
  /** Serve-report bytes a day in the plan's history (mean over its days). */
  dailyServed: number;
}

export interface ReplanPolicy {
  /** New counts replan at most this often (ms). The origin's `replanMs`, default 60000. */
  minIntervalMs: number;
  /** Any new count replans after this long (ms). Default 3600000. */
  maxIntervalMs: number;
  /** New plays, as a share of a day's, that are worth a plan. Default 0.05. */
  playsRatio: number;
  /** New serve-report bytes, as a share of a day's, that are worth a plan. Default 0.05. */
  servedRatio: number;
}

export const DEFAULT_REPLAN_POLICY: ReplanPolicy = Object.freeze({ minIntervalMs: 60_000, maxIntervalMs: 3_600_000, playsRatio: 0.05, servedRatio: 0.05 });

export type ReplanReason = 'first' | 'day' | 'catalog' | 'config' | 'standing' | 'plays' | 'served' | 'drift';
export type ReplanVerdict = { due: true; why: ReplanReason } | { due: false; why: 'unchanged' | 'too soon' | 'small change' };

/** True when the two stamps are of the same day, catalog, cluster file and standing plan: a plan of one is a plan of the other. */
export function sameGround(a: PlanInputsStamp, b: PlanInputsStamp): boolean {
  return a.day === b.day && a.catalog === b.catalog && a.config === b.config && a.standing === b.standing;
}

export function replanDue(last: LastPlan | undefined, now: PlanInputsStamp, nowMono: number, policy: ReplanPolicy = DEFAULT_REPLAN_POLICY): ReplanVerdict {
  if (!last) return { due: true, why: 'first' };
  const was = last.stamp;
  if (now.day !== was.day) return { due: true, why: 'day' };
  if (now.config !== was.config) return { due: true, why: 'config' };
  if (now.catalog !== was.catalog) return { due: true, why: 'catalog' };
  if (now.standing !== was.standing) return { due: true, why: 'standing' };
  // Counters only go up in one process; a smaller one (another replica's document shrank) is a change too.
  const plays = Math.abs(now.plays - was.plays);
  const served = Math.abs(now.served - was.served);
  if (plays === 0 && served === 0) return { due: false, why: 'unchanged' };
  const age = nowMono - last.at;
  if (age < policy.minIntervalMs) return { due: false, why: 'too soon' };
  // A plan made with no plays (or no reports) at all: the first ones change everything.
  if (plays > 0 && plays >= policy.playsRatio * last.dailyPlays) return { due: true, why: 'plays' };
  if (served > 0 && served >= policy.servedRatio * last.dailyServed) return { due: true, why: 'served' };
  if (age >= policy.maxIntervalMs) return { due: true, why: 'drift' };
  return { due: false, why: 'small change' };
}

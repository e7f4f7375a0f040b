import { describe, expect, it } from 'vitest';
import { type LastPlan, type PlanInputsStamp, type ReplanPolicy, replanDue, sameGround } from '../../src/origin/replan-decision.js';

const catalog = {};
const base: PlanInputsStamp = { day: '2026-03-01', catalog, config: 0, standing: '2026-02-28 ["v1"]', plays: 1_000, served: 5e9 };
const policy: ReplanPolicy = { minIntervalMs: 60_000, maxIntervalMs: 3_600_000, playsRatio: 0.05, servedRatio: 0.05 };
/** A plan made at monotonic 1,000 s from `base`, with 16,000 plays and 100 GB of reports a day behind it. */
const last: LastPlan = { stamp: base, at: 1_000_000, dailyPlays: 16_000, dailyServed: 100e9 };
const later = (ms: number) => last.at + ms;

describe('when the origin makes a new fill plan', () => {
  it('makesTheFirstPlanWhateverTheInputs', () => {
    expect(replanDue(undefined, base, 0, policy)).toEqual({ due: true, why: 'first' });
  });

  it('doesNotReplanWhenNothingChangedHoweverLongItHasBeen', () => {
    expect(replanDue(last, { ...base }, later(60_000), policy)).toEqual({ due: false, why: 'unchanged' });
    expect(replanDue(last, { ...base }, later(30 * 86_400_000), policy)).toEqual({ due: false, why: 'unchanged' });
  });

  it('replansAtOnceForANewDayCatalogClusterFileOrStandingPlan', () => {
    // Even a second after the last plan: what it was made for no longer is.
    const soon = later(1_000);
    expect(replanDue(last, { ...base, day: '2026-03-02' }, soon, policy)).toEqual({ due: true, why: 'day' });
    expect(replanDue(last, { ...base, catalog: {} }, soon, policy)).toEqual({ due: true, why: 'catalog' });
    expect(replanDue(last, { ...base, config: 1 }, soon, policy)).toEqual({ due: true, why: 'config' });
    expect(replanDue(last, { ...base, standing: '2026-03-01 ["v2"]' }, soon, policy)).toEqual({ due: true, why: 'standing' });
  });

  it('replansForNewPlaysOnlyOnceTheyAreAShareOfADaysAndTheIntervalPassed', () => {
    // 5 % of 16,000 plays a day is 800.
    expect(replanDue(last, { ...base, plays: base.plays + 799 }, later(120_000), policy)).toEqual({ due: false, why: 'small change' });
    expect(replanDue(last, { ...base, plays: base.plays + 800 }, later(120_000), policy)).toEqual({ due: true, why: 'plays' });
    // Enough plays, but within a minute of the last plan: wait.
    expect(replanDue(last, { ...base, plays: base.plays + 5_000 }, later(59_999), policy)).toEqual({ due: false, why: 'too soon' });
  });

  it('replansForNewServeReportsOnceTheyAreAShareOfADays', () => {
    expect(replanDue(last, { ...base, served: base.served + 4.9e9 }, later(120_000), policy)).toEqual({ due: false, why: 'small change' });
    expect(replanDue(last, { ...base, served: base.served + 5e9 }, later(120_000), policy)).toEqual({ due: true, why: 'served' });
  });

  it('letsASmallDriftLandAfterTheLongInterval', () => {
    const drift = { ...base, plays: base.plays + 3, served: base.served + 1e6 };
    expect(replanDue(last, drift, later(3_599_999), policy).due).toBe(false);
    expect(replanDue(last, drift, later(3_600_000), policy)).toEqual({ due: true, why: 'drift' });
  });

  it('takesTheFirstPlaysOrReportsAfterAPlanMadeWithoutAnyAsAChangeThatMatters', () => {
    const empty: LastPlan = { ...last, dailyPlays: 0, dailyServed: 0 };
    expect(replanDue(empty, { ...base, plays: base.plays + 1 }, later(60_000), policy)).toEqual({ due: true, why: 'plays' });
    expect(replanDue(empty, { ...base, served: base.served + 1 }, later(60_000), policy)).toEqual({ due: true, why: 'served' });
  });

  it('countsACounterThatWentDownAsAChange', () => {
    // Another replica's document, read back smaller (old days pruned): the counts moved.
    expect(replanDue(last, { ...base, plays: base.plays - 900 }, later(120_000), policy)).toEqual({ due: true, why: 'plays' });
  });

  it('judgesTwoStampsOnTheSameGroundByDayCatalogClusterFileAndStandingPlanOnly', () => {
    expect(sameGround(base, { ...base, plays: 9, served: 9 })).toBe(true);
    expect(sameGround(base, { ...base, catalog: {} })).toBe(false);
    expect(sameGround(base, { ...base, day: '2026-03-02' })).toBe(false);
    expect(sameGround(base, { ...base, config: 2 })).toBe(false);
    expect(sameGround(base, { ...base, standing: '' })).toBe(false);
  });
});

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/common/clock.js';
import { Catalog } from '../../src/origin/catalog.js';
import { FillPlans, type PlanOutcomeKind } from '../../src/origin/fill-plans.js';
import type { ReplanReason } from '../../src/origin/replan-decision.js';
import { PlayStore } from '../../src/origin/play-store.js';
import { tempDir, testCluster } from '../helpers/cluster.js';
import { playsOfThree, tinyTitle } from './fill-plans-fixtures.js';

const entry = tinyTitle;
const plays = playsOfThree;

describe('origin fill plans: when a plan is made', () => {
  it('itReplansForNewPlaysEveryReplanMsOfMonotonicTimeWhateverTheWallClockDoes', async () => {
    const clock = new FakeClock(Date.parse('2024-06-01T12:00:00Z'));
    const store = await PlayStore.open({ file: join(tempDir(), 'plays.json'), clock });
    const catalog = new Catalog(['t0', 't1', 't2'].map(entry));
    const made: ReplanReason[] = [];
    const plans = new FillPlans({ config: testCluster(), clock, catalog: () => catalog, plays: () => store, replanMs: 60_000, onPlan: (o, _s, why) => o === 'made' && made.push(why) });
    store.record(plays(100, clock.now()));
    const first = await plans.current();
    // 20 % of a day's plays more: worth a plan, but not before a minute has passed.
    store.record(plays(20, clock.now()));
    clock.advance(30_000);
    expect(await plans.current()).toBe(first);
    clock.advance(31_000);
    const second = await plans.current();
    expect(second).not.toBe(first);
    store.record(plays(20, clock.now()));
    clock.stepWall(-3_600_000);
    clock.advance(61_000);
    // A minute has passed, whatever the wall clock says: not an hour and a minute.
    expect(await plans.current()).not.toBe(second);
    expect(made).toEqual(['first', 'plays', 'plays']);
    await plans.close();
    await store.close();
  });

  it('makesNoPlanWhenNothingChangedAndOneAtOnceForANewCatalog', async () => {
    const clock = new FakeClock(Date.parse('2024-06-01T12:00:00Z'));
    const store = await PlayStore.open({ file: join(tempDir(), 'plays.json'), clock });
    let catalog = new Catalog(['t0', 't1'].map(entry));
    const outcomes: PlanOutcomeKind[] = [];
    const plans = new FillPlans({ config: testCluster(), clock, catalog: () => catalog, plays: () => store, replanMs: 60_000, onPlan: (o) => outcomes.push(o) });
    store.record(plays(100, clock.now()));
    const first = await plans.current();
    clock.advance(10 * 60_000);
    expect(await plans.current()).toBe(first);
    // A few plays (1 % of a day's): not worth a plan within the hour…
    store.record(plays(1, clock.now()));
    clock.advance(10 * 60_000);
    expect(await plans.current()).toBe(first);
    // …and a new catalog is, at once.
    catalog = new Catalog(['t0', 't1', 't2'].map(entry));
    const next = await plans.current();
    expect(next).not.toBe(first);
    expect(next.manifests.get('edge-a1')!.titles).toContain('t2');
    expect(outcomes).toEqual(['made', 'made']);
    // A small drift lands within the hour.
    store.record(plays(1, clock.now()));
    clock.advance(59 * 60_000);
    expect(await plans.current()).toBe(next);
    clock.advance(60_000);
    expect(await plans.current()).not.toBe(next);
    await plans.close();
    await store.close();
  });
});

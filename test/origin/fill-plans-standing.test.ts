import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/common/clock.js';
import { FillPlans } from '../../src/origin/fill-plans.js';
import { type Plan, planChurn } from '../../src/origin/fill-planner.js';
import { PlayStore } from '../../src/origin/play-store.js';
import { tempDir, testCluster } from '../helpers/cluster.js';
import { catalog, held, playsOf, titles } from './fill-plans-fixtures.js';

const MB = 1e6;
const DAY = 86_400_000;
const DAY1 = Date.parse('2024-06-01T12:00:00Z');



describe('origin fill plans against the standing plan', () => {
  // One edge of 100 MB: 90 MB for 5 MB titles — 18 of them. A night may move one title (5 % of
  // the disk; the default 2 % would let none move).
  const config = testCluster({ diskBytes: 100 * MB }, { origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'origin', fill: { maxChurnRatio: 0.05 } } });

  it('plansEachDayAgainstTheDayBeforesLastPlanAndKeepsItAcrossARestart', async () => {
    const clock = new FakeClock(DAY1);
    const dir = tempDir();
    const store = await PlayStore.open({ file: join(dir, 'plays.json'), clock });
    const standingFile = join(dir, 'fill-standing.json');
    const open = async () => {
      const p = new FillPlans({ config, clock, catalog: () => catalog, plays: () => store, replanMs: 60_000, standingFile });
      await p.open();
      return p;
    };

    store.record(playsOf(DAY1));
    const plans = await open();
    const day1 = await plans.current();
    expect(plans.standingPlan()).toBeUndefined();
    expect(held(day1)).toEqual(new Set(titles.slice(0, 18)));

    // Day 2: t18 now slightly ahead of t17 (4 %), inside the band: nothing moves.
    clock.advance(DAY);
    store.record(playsOf(DAY1 + DAY, { t18: 90 }));
    const day2 = await plans.current();
    expect(plans.standingPlan()).toBe(day1);
    expect(held(day2)).toEqual(held(day1));
    expect(planChurn(day1, day2).bytes).toBe(0);
    await plans.flush();

    // A restarted origin on day 2 plans against the same standing plan, read from the file.
    const again = await open();
    expect(again.standingPlan()?.manifests.get('edge-a1')!.version).toBe(day1.manifests.get('edge-a1')!.version);
    expect((await again.current()).manifests.get('edge-a1')!.version).toBe(day2.manifests.get('edge-a1')!.version);
    // Without the file it plans from scratch and swaps t17 for t18.
    const fresh = new FillPlans({ config, clock, catalog: () => catalog, plays: () => store });
    expect(held(await fresh.current()).has('t18')).toBe(true);
    expect(held(await fresh.current()).has('t17')).toBe(false);

    // Day 3: t18 far ahead (well above the cut): it enters, within the night's budget.
    clock.advance(DAY);
    store.record(playsOf(DAY1 + 2 * DAY, { t18: 400 }));
    const day3 = await again.current();
    expect(again.standingPlan()!.manifests.get('edge-a1')!.version).toBe(day2.manifests.get('edge-a1')!.version);
    expect(held(day3).has('t18')).toBe(true);
    expect(planChurn(day2, day3).bytes).toBe(5 * MB);
    await again.flush();
    await store.close();
  });

  it('plansFromScratchWhenTheStandingFileIsUnreadable', async () => {
    const clock = new FakeClock(DAY1);
    const dir = tempDir();
    const store = await PlayStore.open({ file: join(dir, 'plays.json'), clock });
    const standingFile = join(dir, 'fill-standing.json');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(standingFile, '{ not json');
    const warnings: unknown[] = [];
    const logger = { warn: (o: unknown) => warnings.push(o), error: () => {} } as unknown as import('../../src/common/logger.js').Logger;
    store.record(playsOf(DAY1));
    const plans = new FillPlans({ config, clock, catalog: () => catalog, plays: () => store, standingFile, logger });
    await plans.open();
    expect(held(await plans.current())).toEqual(new Set(titles.slice(0, 18)));
    expect(warnings).toHaveLength(1);
    await plans.flush();
    await store.close();
  });
});

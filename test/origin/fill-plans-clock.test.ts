import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/common/clock.js';
import { Catalog } from '../../src/origin/catalog.js';
import { FillPlans } from '../../src/origin/fill-plans.js';
import { PlayStore } from '../../src/origin/play-store.js';
import { tempDir, testCluster } from '../helpers/cluster.js';

describe('origin fill plans and a wall clock that jumps', () => {
  it('itStillReplansEveryReplanMsAfterTheWallClockIsSteppedBack', async () => {
    const clock = new FakeClock(Date.parse('2024-06-01T12:00:00Z'));
    const store = await PlayStore.open({ file: join(tempDir(), 'plays.json'), clock });
    const catalog = Catalog.empty();
    const plans = new FillPlans({ config: testCluster(), clock, catalog: () => catalog, plays: () => store, replanMs: 60_000 });
    const first = plans.current();
    clock.advance(30_000);
    expect(plans.current()).toBe(first);
    clock.advance(31_000);
    const second = plans.current();
    expect(second).not.toBe(first);
    clock.stepWall(-3_600_000);
    clock.advance(61_000);
    // A minute has passed, whatever the wall clock says: not an hour and a minute.
    expect(plans.current()).not.toBe(second);
    await store.close();
  });
});

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/common/clock.js';
import type { Logger } from '../../src/common/logger.js';
import { Catalog } from '../../src/origin/catalog.js';
import { type PlanJob, lazyPlan, manifestVersions, serialPlanJson } from '../../src/origin/fill-plan-job.js';
import { type PlanRunner, WorkerPlanRunner, inlinePlanRunner } from '../../src/origin/fill-plan-runner.js';
import { FillPlans, type PlanOutcomeKind } from '../../src/origin/fill-plans.js';
import { PlayStore } from '../../src/origin/play-store.js';
import { tempDir, testCluster } from '../helpers/cluster.js';
import { playsOfThree, tinyTitle } from './fill-plans-fixtures.js';

const entry = tinyTitle;
const plays = playsOfThree;

/**
 * The real planner (in this thread) behind a gate the test opens: a plan stays "under way"
 * until `release()`, as a plan of seconds does in the worker. `failNext` makes the next plan fail.
 */
function gatedRunner() {
  const inner = inlinePlanRunner();
  const gates: (() => void)[] = [];
  let failNext = false;
  const runner: PlanRunner & { runs: number; release(): void; failNext(): void; waiting(): number } = {
    runs: 0,
    async run(job, ground) {
      runner.runs++;
      await new Promise<void>((resolve) => gates.push(resolve));
      if (failNext) {
        failNext = false;
        throw new Error('the planner ran out of memory');
      }
      return inner.run(job, ground);
    },
    close: () => inner.close(),
    release: () => gates.shift()?.(),
    failNext: () => (failNext = true),
    waiting: () => gates.length,
  };
  return runner;
}

const settle = () => new Promise((r) => setTimeout(r, 10));

describe('origin fill plans made off the event loop', () => {
  it('makesOnePlanAtATimeHoweverManyAskForIt', async () => {
    const clock = new FakeClock(Date.parse('2024-06-01T12:00:00Z'));
    const store = await PlayStore.open({ file: join(tempDir(), 'plays.json'), clock });
    const catalog = new Catalog(['t0', 't1', 't2'].map(entry));
    const runner = gatedRunner();
    const plans = new FillPlans({ config: testCluster(), clock, catalog: () => catalog, plays: () => store, runner });
    store.record(plays(100, clock.now()));
    const asks = Array.from({ length: 5 }, () => plans.current());
    await settle();
    expect(runner.runs).toBe(1);
    runner.release();
    const got = await Promise.all(asks);
    expect(new Set(got).size).toBe(1);
    expect(got[0]!.manifests.get('edge-a1')!.titles.sort()).toEqual(['t0', 't1', 't2']);
    await plans.close();
    await store.close();
  });

  it('dropsAPlanWhoseCatalogChangedWhileItWasMadeAndMakesItAgain', async () => {
    const clock = new FakeClock(Date.parse('2024-06-01T12:00:00Z'));
    const store = await PlayStore.open({ file: join(tempDir(), 'plays.json'), clock });
    let catalog = new Catalog(['t0', 't1'].map(entry));
    const runner = gatedRunner();
    const outcomes: PlanOutcomeKind[] = [];
    const plans = new FillPlans({ config: testCluster(), clock, catalog: () => catalog, plays: () => store, runner, onPlan: (o) => outcomes.push(o) });
    store.record(plays(100, clock.now()));
    const asked = plans.current();
    await settle();
    // An ingest lands while the plan is under way: the plan is of a catalog that no longer is.
    catalog = new Catalog(['t0', 't1', 't2'].map(entry));
    runner.release();
    await settle();
    expect(outcomes).toEqual(['stale']);
    expect(runner.runs).toBe(2);
    runner.release();
    const plan = await asked;
    expect(outcomes).toEqual(['stale', 'made']);
    expect(plan.manifests.get('edge-a1')!.titles).toContain('t2');
    await plans.close();
    await store.close();
  });

  it('keepsThePlanInHandWhenTheNextFailsAndTriesAgainAfterReplanMs', async () => {
    const clock = new FakeClock(Date.parse('2024-06-01T12:00:00Z'));
    const store = await PlayStore.open({ file: join(tempDir(), 'plays.json'), clock });
    const catalog = new Catalog(['t0', 't1', 't2'].map(entry));
    const runner = gatedRunner();
    const errors: unknown[] = [];
    const logger = { error: (o: unknown) => errors.push(o), warn: () => {}, info: () => {} } as unknown as Logger;
    const plans = new FillPlans({ config: testCluster(), clock, catalog: () => catalog, plays: () => store, runner, replanMs: 60_000, logger });
    store.record(plays(100, clock.now()));
    const first = plans.current();
    await settle();
    runner.release();
    const plan = await first;

    store.record(plays(50, clock.now()));
    clock.advance(61_000);
    runner.failNext();
    const during = plans.current();
    await settle();
    runner.release();
    expect(await during).toBe(plan);
    expect(errors).toEqual([expect.objectContaining({ err: 'the planner ran out of memory' })]);
    // Not tried again at every request…
    expect(await plans.current()).toBe(plan);
    expect(runner.runs).toBe(2);
    // …but once replanMs has passed.
    clock.advance(61_000);
    const again = plans.current();
    await settle();
    expect(runner.runs).toBe(3);
    runner.release();
    expect(await again).not.toBe(plan);
    await plans.close();
    await store.close();
  });
});

describe('the fill planner thread', () => {
  const job: PlanJob = {
    today: '2024-06-01',
    generatedAt: '2024-06-01T12:00:00.000Z',
    nodes: [{ id: 'a1', isp: 'isp-a', url: 'http://a1', diskBytes: 1e6 }],
    pinned: [],
    originUrl: 'http://origin',
    fill: { headroomRatio: 0.1, halfLifeDays: 2, stayRatio: 0.8, enterRatio: 1, maxChurnRatio: 0.02, spareReplicas: false },
    plays: [['2024-05-31', { 'isp-a': { t0: 5 } }]],
  };
  const catalogJson = JSON.stringify({ version: 1, titles: [{ title: 't0', bytes: 1_000, files: [{ path: 'a.m4s', size: 1_000, sha256: 'a'.repeat(64) }] }] });

  it('plansFromTheCatalogsTextAndSurvivesAJobThatFailsInIt', async () => {
    const runner = new WorkerPlanRunner();
    try {
      await expect(runner.run(job, { catalog: { json: '{ not json' } })).rejects.toThrow(/fill plan failed: SyntaxError/);
      // The thread is still there, and the next job sends what it needs again.
      const catalog = { json: catalogJson };
      const out = await runner.run(job, { catalog });
      const plan = lazyPlan(out.text);
      expect(plan.manifests.get('a1')!.titles).toEqual(['t0']);
      expect(JSON.parse(serialPlanJson(out.text)).manifests.a1.titles).toEqual(['t0']);
      expect(manifestVersions(plan)).toEqual([plan.manifests.get('a1')!.version]);
      expect(out.dailyPlays).toBe(5);
      // The same catalog again: not sent again, still known to the thread.
      const next = await runner.run({ ...job, plays: [['2024-05-31', { 'isp-a': { t0: 7 } }]] }, { catalog });
      expect(next.dailyPlays).toBe(7);
    } finally {
      await runner.close();
    }
  });
});

import { CATALOG_FILE } from './catalog.js';
import type { PlanRunner } from './fill-plan-runner.js';
import { FillPlans } from './fill-plans.js';
import { type OriginContext, startedPlays } from './origin-context.js';

/** The origin's fill plans over its catalog, play counts and serve sums, counted in its metrics. */
export function createOriginPlans(ctx: OriginContext, opts: { replanMs?: number; planRunner?: PlanRunner }): FillPlans {
  const { metrics, storage, state } = ctx;
  for (const outcome of ['made', 'stale', 'failed']) metrics.fillPlans.inc({ outcome }, 0);
  // Plans are made in a worker thread, only when their inputs moved (fill-plans.ts): `/o/` never waits for one.
  return new FillPlans({
    config: ctx.boot,
    clock: ctx.clock,
    catalog: () => state.catalog,
    // The bytes `catalog` was verified from, when they are still what is stored (a stat's tag is the read's).
    catalogText: async (c) => {
      const doc = await storage.readDocument(CATALOG_FILE);
      return doc !== undefined && c === state.catalog && doc.tag === state.catalogStamp ? doc.text : undefined;
    },
    plays: () => startedPlays(state),
    replanMs: opts.replanMs,
    ...(opts.planRunner ? { runner: opts.planRunner } : {}),
    served: () => state.servedStore,
    standing: { storage, key: 'fill-standing.json' },
    logger: ctx.logger,
    onPlan: (outcome, seconds, _why, cpuSeconds) => {
      metrics.fillPlans.inc({ outcome });
      if (outcome === 'failed') return;
      metrics.fillPlanSeconds.observe(seconds);
      metrics.fillPlanCpuSeconds.inc(cpuSeconds);
    },
  });
}

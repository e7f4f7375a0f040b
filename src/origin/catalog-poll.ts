import type { TimerHandle } from '../common/clock.js';
import type { CatalogSource } from './catalog-source.js';
import type { FillPlans } from './fill-plans.js';
import type { OriginContext } from './origin-context.js';

export interface CatalogPoll {
  /** Looks every `pollMs` (clock time) from now on; 0 = never. */
  start(): void;
  /** No look after this one; one under way finishes. */
  stop(): void;
}

/** Looks for a catalog changed by `reelcdn ingest`, and takes in what other replicas saved. */
export function catalogPoll(ctx: OriginContext, catalog: CatalogSource, plans: FillPlans, pollMs: number): CatalogPoll {
  const { clock, logger, state } = ctx;
  let timer: TimerHandle | undefined;
  let closed = false;
  const schedule = () => {
    if (pollMs <= 0 || closed) return;
    timer = clock.setTimeout(() => {
      void (async () => {
        await catalog.reloadIfChanged();
        // Replicas sharing the play counts, serve sums and standing fill plan (S3) take in each other's saves.
        await state.playStore?.refresh().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'play counts not refreshed'));
        await state.servedStore?.refresh().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'serve sums not refreshed'));
        await plans.refresh().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'fill standing plan not refreshed'));
        schedule();
      })();
    }, pollMs);
  };
  return {
    start: schedule,
    stop() {
      closed = true;
      if (timer) clock.clearTimeout(timer);
    },
  };
}

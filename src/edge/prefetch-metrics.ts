import { Counter, type Registry } from 'prom-client';

/**
 * How each prefetch ask ended (reelcdn_edge_prefetch_total{outcome}). Asks that do not start:
 * `refused` (no usable target: outside the title, malformed), `cached` (every slice of it held
 * or on its way already, or the same prefetch running), then `skipped_buffer`,
 * `skipped_overload`, `skipped_budget`. One that starts counts `started`, then one of `done`
 * (brought bytes), `cached` (nothing was left to bring), `failed` (upstream failed, or the object
 * changed or is gone), `refused` (past the object's end, or not cacheable), `skipped_budget` (its
 * bytes did not fit once its size was known), `skipped_overload` (the node became busy before
 * it brought anything).
 */
export type PrefetchOutcome = 'started' | 'done' | 'skipped_buffer' | 'skipped_overload' | 'skipped_budget' | 'refused' | 'cached' | 'failed';

export const PREFETCH_OUTCOMES: readonly PrefetchOutcome[] = ['started', 'done', 'skipped_buffer', 'skipped_overload', 'skipped_budget', 'refused', 'cached', 'failed'];

/** Where a prefetcher counts (PrefetchMetrics, or a test's tally). */
export interface PrefetchCounts {
  outcome(o: PrefetchOutcome): void;
  /** Bytes a prefetch brought from upstream. */
  bytes(n: number): void;
}

/** The prefetch series, on the edge's registry (a node sums its workers'). */
export class PrefetchMetrics implements PrefetchCounts {
  private readonly outcomes: Counter<'outcome'>;
  private readonly fetched: Counter;

  /** `hits`: the cache's count of answers served bytes a prefetch brought (EdgeCache.prefetchHits), read on scrape. */
  constructor(registry: Registry, hits: () => number) {
    const registers = [registry];
    this.outcomes = new Counter({ name: 'reelcdn_edge_prefetch_total', help: 'Prefetch asks (CMCD nor/nrr) by outcome', labelNames: ['outcome'], registers });
    // Every outcome present from the start: a rate over a series that appears late misses its first step.
    for (const outcome of PREFETCH_OUTCOMES) this.outcomes.inc({ outcome }, 0);
    this.fetched = new Counter({ name: 'reelcdn_edge_prefetch_bytes_total', help: 'Bytes prefetches brought from upstream', registers });
    new Counter({
      name: 'reelcdn_edge_prefetch_hits_total',
      help: 'Answers served bytes a prefetch brought (each prefetched slice counted at its first use)',
      registers,
      collect() {
        this.reset();
        this.inc(hits());
      },
    });
  }

  outcome(o: PrefetchOutcome): void {
    this.outcomes.inc({ outcome: o });
  }

  bytes(n: number): void {
    if (n > 0) this.fetched.inc(n);
  }
}

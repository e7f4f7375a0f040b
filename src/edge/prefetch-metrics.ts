import { Counter, type Registry } from 'prom-client';

/**
 * How each prefetch ask ended (reelcdn_edge_prefetch_total{outcome}). Every ask ends in exactly
 * one of the end outcomes; `started` is no end but a mark besides it, counted for the asks that
 * began a prefetch — so asks = the sum over every outcome but `started`, and a sum over all of
 * them counts a started ask twice. Asks that do not start: `refused` (no usable target: outside
 * the title, malformed, a HEAD), `cached` (every slice of it held or on its way already, or the
 * same prefetch running), then `skipped_buffer`, `skipped_overload`, `skipped_budget`. One that
 * starts counts `started`, then one of `done` (brought bytes), `cached` (nothing was left to
 * bring), `failed` (upstream failed, or the object changed or is gone), `refused` (past the
 * object's end, or not cacheable), `skipped_budget` (its bytes did not fit once its size was
 * known, or the budget cut it before it brought anything), `skipped_overload` (the node became
 * busy before it brought anything).
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

  /**
   * `hits`: the cache's count of answers served bytes a prefetch brought (EdgeCache.prefetchHits);
   * `wasted`: bytes of prefetched slices let go unread (EdgeCache.prefetchWastedBytes); read on scrape.
   */
  constructor(registry: Registry, hits: () => number, wasted: () => number = () => 0) {
    const registers = [registry];
    this.outcomes = new Counter({ name: 'reelcdn_edge_prefetch_total', help: 'Prefetch asks (CMCD nor/nrr) by outcome; started is counted besides the end outcome of each ask that began', labelNames: ['outcome'], registers });
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
    new Counter({
      name: 'reelcdn_edge_prefetch_wasted_bytes_total',
      help: 'Bytes of prefetched slices the memory tier let go (evicted, purged, replaced version) before any answer read them',
      registers,
      collect() {
        this.reset();
        this.inc(wasted());
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

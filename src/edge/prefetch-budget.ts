import type { PrefetchConfig } from '../common/config.js';

/**
 * Whether a prefetch may start, and how many bytes it may bring: pure decisions over numbers the
 * prefetcher keeps (src/edge/prefetch.ts).
 */

/** Why a prefetch did not start (reelcdn_edge_prefetch_total's outcomes). */
export type PrefetchSkip = 'skipped_buffer' | 'skipped_overload' | 'skipped_budget';

/** What the prefetcher has running now. */
export interface PrefetchLoad {
  /** Prefetches started and not finished. */
  running: number;
  /** Bytes the running prefetches reserved and have not brought yet. */
  bytesInFlight: number;
}

/**
 * Whether a prefetch asked now may start. `bufferMs`: the player's CMCD `bl` (undefined: it did
 * not say — prefetched for, as a player that sends `nor` wants it). `busy`: the node is
 * overloaded or draining. Order: the player's own need first (the cheapest to tell and the most
 * common reason), then the node, then the budget. `startBytes`: what a prefetch reserves as it
 * starts (the slice it may fetch to learn its object, which is fetched whatever comes next): it
 * must fit, so the bytes in flight never pass the budget.
 */
export function admitPrefetch(cfg: PrefetchConfig, load: PrefetchLoad, bufferMs: number | undefined, busy: boolean, startBytes = 0): PrefetchSkip | 'start' {
  if (bufferMs !== undefined && bufferMs >= cfg.maxBufferMs) return 'skipped_buffer';
  if (busy) return 'skipped_overload';
  if (load.running >= cfg.maxConcurrent || load.bytesInFlight >= cfg.maxBytesInFlight) return 'skipped_budget';
  if (load.bytesInFlight + startBytes > cfg.maxBytesInFlight) return 'skipped_budget';
  return 'start';
}

/**
 * The bytes a prefetch of `wanted` bytes (whole slices) may reserve now, or 'skipped_budget'.
 * Others running: it must fit in what is left. Alone: it is cut to the budget (one object larger
 * than the budget still has its first part brought, as a player seeking into it asks first).
 */
export function reserveBytes(cfg: PrefetchConfig, bytesInFlight: number, wanted: number): number | 'skipped_budget' {
  if (bytesInFlight === 0) return Math.min(wanted, cfg.maxBytesInFlight);
  return bytesInFlight + wanted <= cfg.maxBytesInFlight ? wanted : 'skipped_budget';
}

/**
 * One worker's part of the node's prefetch budget: the workers of a node share its port
 * (SO_REUSEPORT spreads connections about evenly) and hold their own memory tiers, so each gets
 * 1/N of the concurrency and of the bytes — at least one prefetch and one slice — and no worker
 * asks another before it starts (no IPC on the way of an answer).
 */
export function prefetchShare(cfg: PrefetchConfig, workers: number, sliceBytes: number): PrefetchConfig {
  if (workers <= 1) return cfg;
  return {
    ...cfg,
    maxConcurrent: Math.max(1, Math.floor(cfg.maxConcurrent / workers)),
    maxBytesInFlight: Math.max(sliceBytes, Math.floor(cfg.maxBytesInFlight / workers)),
  };
}

/** How many times the answer under way's size one prefetch may bring (see `prefetchCap`). */
export const ANSWER_MULTIPLE = 4;

/**
 * The most one prefetch asked by an answer of `answerBytes` may bring: ANSWER_MULTIPLE times that
 * answer (a player's next segment is about the size of this one; a little more covers a rendition
 * switch upward), at least one slice (what learning an unknown object costs anyway), never more
 * than `maxBytesInFlight`. Without it a request of one byte naming a 1 GB file would pull the
 * budget's worth of it into memory, evicting hot slices. An unusable size counts as none.
 */
export function prefetchCap(cfg: PrefetchConfig, answerBytes: number, sliceBytes: number): number {
  const answer = Number.isFinite(answerBytes) && answerBytes > 0 ? answerBytes : 0;
  return Math.min(cfg.maxBytesInFlight, Math.max(sliceBytes, ANSWER_MULTIPLE * answer));
}

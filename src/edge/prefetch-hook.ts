import type { Cmcd } from '../common/cmcd.js';

/**
 * What the edge's answering paths hand to a prefetcher (src/edge/prefetch.ts implements it):
 * the hook alone, so the hit path and the object routes depend on nothing of how it fetches.
 */
export interface PrefetchAsk {
  /** The object being answered now (already token-checked). */
  title: string;
  file: string;
  /** The request's CMCD (has nor and/or nrr). */
  cmcd: Cmcd;
  /** Client address (for logs only). */
  remote: string | undefined;
  traceparent?: string;
}

/** Synchronous, never throws, cheap when it declines. */
export interface Prefetcher {
  consider(ask: PrefetchAsk): void;
}

/** Whether a request's CMCD names a next object or range (a prefetcher has something to consider). */
export function asksNext(c: Cmcd | undefined): c is Cmcd {
  return c !== undefined && (c.nor !== undefined || c.nrr !== undefined);
}

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
  /**
   * The request is a HEAD: it carries no body, so what it costs a client is no measure of what a
   * prefetch may bring on its word — a prefetcher never starts for one.
   */
  head: boolean;
  /**
   * Bytes of the answer under way (its Content-Length; for a HEAD, what a GET would carry). A
   * prefetch brings at most a few times this — a next segment is about the size of this one — so
   * a tiny request cannot pull a large object into memory.
   */
  answerBytes: number;
}

/** Synchronous and cheap when it declines; called through askPrefetcher, which keeps a throw from the answer. */
export interface Prefetcher {
  consider(ask: PrefetchAsk): void;
}

/** Whether a request's CMCD names a next object or range (a prefetcher has something to consider). */
export function asksNext(c: Cmcd | undefined): c is Cmcd {
  return c !== undefined && (c.nor !== undefined || c.nrr !== undefined);
}

/**
 * Hands `ask` to `prefetcher`, once the answer's body is with the socket: the one guard around
 * any prefetcher, for the hit path and the object routes alike. If a prefetcher throws, the answer
 * under way must not suffer for it.
 */
export function askPrefetcher(prefetcher: Prefetcher, ask: PrefetchAsk, logger: { warn(obj: object, msg: string): void }): void {
  try {
    prefetcher.consider(ask);
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'prefetcher failed');
  }
}

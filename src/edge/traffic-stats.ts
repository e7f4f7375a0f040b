import type { Clock } from '../common/clock.js';
import { TIERS, type Tier } from './edge-cache.js';

const WINDOW_SECONDS = 10;

interface Bucket {
  second: number;
  requests: number;
  bytes: number;
  errors: number;
}

export interface TrafficSnapshot {
  requestsPerSec: number;
  bytesPerSec: number;
  /** 5xx answers / all answers over the last window. */
  errorRatio: number;
  /** Answers in that window: a ratio over a handful of requests says little (steering wants a minimum). */
  windowRequests: number;
  byTier: Record<Tier, { requests: number; bytes: number }>;
  hitRatio: { requests: number; bytes: number };
}

/**
 * Rates over the last ten seconds and hit ratios since start, for /health (metrics have the rest).
 * Buckets are monotonic seconds: a wall clock stepped back would otherwise read as no traffic.
 */
export class TrafficStats {
  private readonly buckets: Bucket[] = Array.from({ length: WINDOW_SECONDS }, () => ({ second: -1, requests: 0, bytes: 0, errors: 0 }));
  private readonly tiers = Object.fromEntries(TIERS.map((t) => [t, { requests: 0, bytes: 0 }])) as Record<Tier, { requests: number; bytes: number }>;

  constructor(private readonly clock: Clock) {}

  private bucket(): Bucket {
    const second = Math.floor(this.clock.monotonic() / 1000);
    const b = this.buckets[second % WINDOW_SECONDS]!;
    if (b.second !== second) {
      b.second = second;
      b.requests = 0;
      b.bytes = 0;
      b.errors = 0;
    }
    return b;
  }

  /**
   * Counts one answer. `notAnError`: a 5xx that says nothing of the node's health (the 504 of
   * an only-if-cached miss is the answer RFC 9111 asks for, not a failure).
   */
  record(status: number, bytes: number, tier: Tier | undefined, notAnError = false): void {
    const b = this.bucket();
    b.requests++;
    b.bytes += bytes;
    if (status >= 500 && !notAnError) b.errors++;
    if (tier && (status === 200 || status === 206)) {
      this.tiers[tier].requests++;
      this.tiers[tier].bytes += bytes;
    }
  }

  snapshot(): TrafficSnapshot {
    const now = Math.floor(this.clock.monotonic() / 1000);
    let requests = 0;
    let bytes = 0;
    let errors = 0;
    for (const b of this.buckets) {
      if (b.second > now - WINDOW_SECONDS && b.second <= now) {
        requests += b.requests;
        bytes += b.bytes;
        errors += b.errors;
      }
    }
    const t = this.tiers;
    let allReq = 0;
    let allBytes = 0;
    for (const tier of TIERS) {
      allReq += t[tier].requests;
      allBytes += t[tier].bytes;
    }
    return {
      requestsPerSec: requests / WINDOW_SECONDS,
      bytesPerSec: bytes / WINDOW_SECONDS,
      errorRatio: requests === 0 ? 0 : errors / requests,
      windowRequests: requests,
      byTier: structuredClone(t),
      hitRatio: {
        requests: allReq === 0 ? 0 : (allReq - t.MISS.requests) / allReq,
        bytes: allBytes === 0 ? 0 : (allBytes - t.MISS.bytes) / allBytes,
      },
    };
  }
}

import type { Clock } from '../common/clock.js';
import type { Tier } from './edge-cache.js';

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
  byTier: Record<Tier, { requests: number; bytes: number }>;
  hitRatio: { requests: number; bytes: number };
}

/**
 * Rates over the last ten seconds and hit ratios since start, for /health (metrics have the rest).
 * Buckets are monotonic seconds: a wall clock stepped back would otherwise read as no traffic.
 */
export class TrafficStats {
  private readonly buckets: Bucket[] = Array.from({ length: WINDOW_SECONDS }, () => ({ second: -1, requests: 0, bytes: 0, errors: 0 }));
  private readonly tiers: Record<Tier, { requests: number; bytes: number }> = {
    'HIT-MEM': { requests: 0, bytes: 0 },
    'HIT-DISK': { requests: 0, bytes: 0 },
    MISS: { requests: 0, bytes: 0 },
  };

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

  record(status: number, bytes: number, tier: Tier | undefined): void {
    const b = this.bucket();
    b.requests++;
    b.bytes += bytes;
    if (status >= 500) b.errors++;
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
    const allReq = t['HIT-MEM'].requests + t['HIT-DISK'].requests + t.MISS.requests;
    const allBytes = t['HIT-MEM'].bytes + t['HIT-DISK'].bytes + t.MISS.bytes;
    return {
      requestsPerSec: requests / WINDOW_SECONDS,
      bytesPerSec: bytes / WINDOW_SECONDS,
      errorRatio: requests === 0 ? 0 : errors / requests,
      byTier: structuredClone(t),
      hitRatio: {
        requests: allReq === 0 ? 0 : (allReq - t.MISS.requests) / allReq,
        bytes: allBytes === 0 ? 0 : (allBytes - t.MISS.bytes) / allBytes,
      },
    };
  }
}

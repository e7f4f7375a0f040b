import { describe, expect, it } from 'vitest';
import { edgeViewLines, prefetchCounts, startupBucketBound } from '../../bench/qoe-edge-view.js';

const METRICS = `# HELP reelcdn_edge_prefetch_total Prefetch asks (CMCD nor/nrr) by outcome
# TYPE reelcdn_edge_prefetch_total counter
reelcdn_edge_prefetch_total{outcome="started"} 10
reelcdn_edge_prefetch_total{outcome="done"} 9
reelcdn_edge_prefetch_total{outcome="skipped_buffer"} 0
reelcdn_edge_prefetch_total{outcome="done",worker="2"} 3
reelcdn_edge_prefetch_bytes_total 2097152
reelcdn_edge_prefetch_hits_total 8
reelcdn_edge_prefetch_hits_total_other 99
reelcdn_edge_requests_total{tier="MISS"} 5
`;

describe('prefetchCounts', () => {
  it('sums the prefetch series by outcome and ignores every other series', () => {
    expect(prefetchCounts(METRICS)).toEqual({ outcomes: { started: 10, done: 12, skipped_buffer: 0 }, bytes: 2097152, hits: 8 });
    expect(prefetchCounts('')).toEqual({ outcomes: {}, bytes: 0, hits: 0 });
  });
});

describe('startupBucketBound', () => {
  const q = { startupBoundsMs: [250, 500, 1000], startupCounts: [1, 2, 6, 1] };

  it('is the upper bound of the bucket holding the percentile’s session', () => {
    expect(startupBucketBound(q, 10)).toBe(250);
    expect(startupBucketBound(q, 30)).toBe(500);
    expect(startupBucketBound(q, 50)).toBe(1000);
    expect(startupBucketBound(q, 90)).toBe(1000);
    expect(startupBucketBound(q, 100)).toBe(Infinity);
    expect(startupBucketBound({ ...q, startupCounts: [0, 0, 0, 0] }, 50)).toBeNaN();
  });

  it('goes into the edge’s lines', () => {
    const lines = edgeViewLines(
      { sessions: 3, requests: 30, mediaRequests: 20, starved: 1, brKbpsSum: 3000, brCount: 3, blMsSum: 30000, blCount: 3, startupBoundsMs: [250, 500, 1000], startupCounts: [1, 2, 0, 0] },
      { outcomes: { done: 2, failed: 0 }, bytes: 3 * 2 ** 20, hits: 2 },
    );
    expect(lines[0]).toContain('3 sessions, 20 media requests, starved 1, average br 1000 kbps, bl 10.0 s, startup p50 ≤ 0.5 s, p90 ≤ 0.5 s');
    expect(lines[1]).toBe("  the edge's prefetches: done 2; 3.0 MiB brought, 2 first uses");
  });
});

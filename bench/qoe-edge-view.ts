/**
 * What the edge itself saw of the bench's sessions (pure): its /health `qoe` block (from the
 * players' CMCD) and its prefetch counters from /metrics, as lines beside the players' own
 * figures. A cross-check: the edge's sessions and bitrate should match what the players did.
 */
import type { QoeBlock } from '../src/edge/qoe.js';

/** Sums of `reelcdn_edge_prefetch_total` by outcome, and the prefetch bytes and hits, from Prometheus text. */
export function prefetchCounts(metrics: string): { outcomes: Record<string, number>; bytes: number; hits: number } {
  const outcomes: Record<string, number> = {};
  let bytes = 0;
  let hits = 0;
  for (const line of metrics.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^(reelcdn_edge_prefetch_(?:total|bytes_total|hits_total))(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v)) continue;
    if (m[1] === 'reelcdn_edge_prefetch_bytes_total') bytes += v;
    else if (m[1] === 'reelcdn_edge_prefetch_hits_total') hits += v;
    else {
      const outcome = /outcome="([^"]*)"/.exec(m[2] ?? '')?.[1] ?? '';
      outcomes[outcome] = (outcomes[outcome] ?? 0) + v;
    }
  }
  return { outcomes, bytes, hits };
}

/** The upper bound (ms) of the bucket holding the `p`-th percentile session; Infinity past the last bound. */
export function startupBucketBound(q: Pick<QoeBlock, 'startupBoundsMs' | 'startupCounts'>, p: number): number {
  const total = q.startupCounts.reduce((a, n) => a + n, 0);
  if (total === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * total));
  let seen = 0;
  for (let i = 0; i < q.startupCounts.length; i++) {
    seen += q.startupCounts[i]!;
    if (seen >= rank) return q.startupBoundsMs[i] ?? Infinity;
  }
  return Infinity;
}

export function edgeViewLines(q: QoeBlock | undefined, prefetch: ReturnType<typeof prefetchCounts> | undefined): string[] {
  const out: string[] = [];
  if (q) {
    const le = (ms: number) => (Number.isFinite(ms) ? `≤ ${ms / 1000} s` : Number.isNaN(ms) ? 'n/a' : 'over the last bound');
    out.push(
      `  the edge's view (CMCD, /health qoe): ${q.sessions} sessions, ${q.mediaRequests} media requests, starved ${q.starved}, ` +
        `average br ${q.brCount > 0 ? Math.round(q.brKbpsSum / q.brCount) : 'n/a'} kbps, bl ${q.blCount > 0 ? (q.blMsSum / q.blCount / 1000).toFixed(1) : 'n/a'} s, ` +
        `startup p50 ${le(startupBucketBound(q, 50))}, p90 ${le(startupBucketBound(q, 90))} (real time, from su to the first request without)`,
    );
  }
  if (prefetch) {
    const o = Object.entries(prefetch.outcomes)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    out.push(`  the edge's prefetches: ${o || 'none'}; ${(prefetch.bytes / 2 ** 20).toFixed(1)} MiB brought, ${prefetch.hits} first uses`);
  }
  return out;
}

import type { HealthThresholds } from '../common/config.js';

/**
 * Health of one edge as a value (STYLE.md "Health as a value"): a pure state machine fed
 * one poll result at a time. Steering only reads snapshots of it.
 *
 *   unknown ──good──► up ◄──good── suspect ◄──bad── up
 *      │                ▲             │
 *      └──bad(n)──► down ┘ (upAfter    └──bad × downAfter──► down
 *                         good polls)
 *
 * A report that asks for no new clients (status draining/overloaded, a breached threshold)
 * sends the edge down at once: waiting `downAfter` polls would keep sending it new players.
 */

/** The edge's own /health answer (edge admin port). */
export interface EdgeHealthReport {
  status: 'ok' | 'draining' | 'overloaded';
  id: string;
  version?: string;
  uptimeSec?: number;
  connections: number;
  requestsPerSec?: number;
  bytesPerSec?: number;
  errorRatio: number;
  /** Answers over errorRatio's window (edges before this field: requestsPerSec × 10 s). */
  windowRequests?: number;
  memory?: { usedBytes: number; capacityBytes: number };
  disk?: { usedBytes: number; capacityBytes: number };
  hitRatio?: { requests: number; bytes: number };
  /** The edge's fill agent: titles held whole and verified rank the edge first for them. */
  fill?: { heldTitles?: string[] };
}

/** What one poll found. */
export type PollResult =
  | { ok: true; report: EdgeHealthReport; latencyMs: number }
  | { ok: false; error: string; latencyMs: number };

export type EdgeState =
  /** Not polled yet: not offered to clients. One good poll makes it up. */
  | 'unknown'
  /** Serving and offered to clients. */
  | 'up'
  /** Serving but its last poll(s) failed; still offered until `downAfter` failures in a row. */
  | 'suspect'
  /** Not offered to clients until `upAfter` good polls in a row. */
  | 'down';

export interface HealthParams {
  downAfter: number;
  upAfter: number;
  thresholds: HealthThresholds;
}

export interface EdgeHealth {
  state: EdgeState;
  /** Why the edge is in this state ('ok' when up). */
  reason: string;
  /** Failed polls in a row (resets on a good poll). */
  failures: number;
  /** Good polls in a row (resets on a bad one). */
  successes: number;
  /** Clock ms of the last state change. */
  since: number;
  /** Clock ms of the last poll, if any. */
  lastPollAt?: number;
  lastLatencyMs?: number;
  /** The last report the edge sent. */
  lastReport?: EdgeHealthReport;
  /**
   * Down only because its error ratio is over the threshold, while it answers its polls: a
   * last resort. When every edge is down so (the origin is down and every edge fails its misses),
   * steering still sends clients to them — their cached content serves — rather than 503.
   */
  lastResort?: boolean;
}

export function initialHealth(now: number): EdgeHealth {
  return { state: 'unknown', reason: 'not polled yet', failures: 0, successes: 0, since: now };
}

/** Whether clients may be sent to an edge in this state. */
export function isEligible(h: EdgeHealth): boolean {
  return h.state === 'up' || h.state === 'suspect';
}

/** Whether clients may be sent to an edge when no edge at all is eligible (see `lastResort`). */
export function isLastResort(h: EdgeHealth): boolean {
  return h.state === 'down' && h.lastResort === true;
}

/**
 * Judges one poll: good, a failure (counts toward downAfter), or a refusal of new clients
 * (down at once). Thresholds come from config.steering.thresholds.
 */
export function judge(
  result: PollResult,
  thresholds: HealthThresholds,
): { kind: 'good' } | { kind: 'failure'; reason: string } | { kind: 'refuse'; reason: string; lastResort?: boolean } {
  if (!result.ok) return { kind: 'failure', reason: `poll failed: ${result.error}` };
  const r = result.report;
  if (r.status === 'draining') return { kind: 'refuse', reason: 'draining' };
  if (r.status === 'overloaded') return { kind: 'refuse', reason: 'overloaded' };
  if (r.status !== 'ok') return { kind: 'failure', reason: `unknown status "${String(r.status)}"` };
  const volume = typeof r.windowRequests === 'number' ? r.windowRequests : (r.requestsPerSec ?? 0) * 10;
  if (typeof r.errorRatio === 'number' && r.errorRatio > thresholds.maxErrorRatio && volume >= thresholds.minRequestsForErrorRatio) {
    return { kind: 'refuse', reason: `error ratio ${r.errorRatio.toFixed(3)} above ${thresholds.maxErrorRatio}`, lastResort: true };
  }
  if (r.disk && r.disk.capacityBytes > 0) {
    const used = r.disk.usedBytes / r.disk.capacityBytes;
    if (used > thresholds.maxDiskUsedRatio) {
      return { kind: 'refuse', reason: `disk ${(used * 100).toFixed(1)}% used, above ${thresholds.maxDiskUsedRatio * 100}%` };
    }
  }
  if (typeof r.connections === 'number' && r.connections > thresholds.maxConnections) {
    return { kind: 'refuse', reason: `${r.connections} connections, above ${thresholds.maxConnections}` };
  }
  return { kind: 'good' };
}

/** The next health of an edge after one poll. Pure. */
export function step(h: EdgeHealth, result: PollResult, params: HealthParams, now: number): EdgeHealth {
  const verdict = judge(result, params.thresholds);
  const base: EdgeHealth = {
    ...h,
    lastPollAt: now,
    lastLatencyMs: result.latencyMs,
    lastReport: result.ok ? result.report : h.lastReport,
  };
  const to = (state: EdgeState, reason: string, failures: number, successes: number, lastResort = false): EdgeHealth => ({
    ...base,
    state,
    reason,
    failures,
    successes,
    since: state === h.state ? h.since : now,
    lastResort,
  });

  if (verdict.kind === 'refuse') return to('down', verdict.reason, 0, 0, verdict.lastResort);

  if (verdict.kind === 'failure') {
    const failures = h.failures + 1;
    switch (h.state) {
      case 'unknown':
        return failures >= params.downAfter ? to('down', verdict.reason, failures, 0) : to('unknown', verdict.reason, failures, 0);
      case 'up':
      case 'suspect':
        return failures >= params.downAfter ? to('down', verdict.reason, failures, 0) : to('suspect', verdict.reason, failures, 0);
      case 'down':
        return to('down', verdict.reason, failures, 0);
    }
  }

  const successes = h.successes + 1;
  switch (h.state) {
    case 'unknown':
    case 'up':
    case 'suspect':
      return to('up', 'ok', 0, successes);
    case 'down':
      return successes >= params.upAfter
        ? to('up', 'ok', 0, successes)
        : to('down', `recovering (${successes}/${params.upAfter} good polls)`, 0, successes, h.lastResort);
  }
}

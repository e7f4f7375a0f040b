import { describe, expect, it } from 'vitest';
import { type EdgeHealth, type EdgeHealthReport, type HealthParams, type PollResult, initialHealth, isEligible, isLastResort, step } from '../src/steering/health.js';

const params: HealthParams = { downAfter: 2, upAfter: 2, thresholds: { maxErrorRatio: 0.5, minRequestsForErrorRatio: 50, maxDiskUsedRatio: 0.9, maxConnections: 100 } };
const report = (over: Partial<EdgeHealthReport> = {}): EdgeHealthReport => ({
  status: 'ok',
  id: 'e1',
  connections: 3,
  errorRatio: 0,
  disk: { usedBytes: 10, capacityBytes: 100 },
  ...over,
});
const good = (over?: Partial<EdgeHealthReport>): PollResult => ({ ok: true, report: report(over), latencyMs: 1 });
const bad: PollResult = { ok: false, error: 'timeout', latencyMs: 500 };

function run(results: PollResult[], from: EdgeHealth = initialHealth(0)): EdgeHealth[] {
  const out: EdgeHealth[] = [];
  let h = from;
  results.forEach((r, i) => {
    h = step(h, r, params, i + 1);
    out.push(h);
  });
  return out;
}

describe('edge health state machine', () => {
  it('itStartsUnknownAndIneligibleThenUpOnTheFirstGoodPoll', () => {
    expect(isEligible(initialHealth(0))).toBe(false);
    expect(run([good()]).map((h) => h.state)).toEqual(['up']);
  });

  it('itGoesUpSuspectDownAfterDownAfterFailures', () => {
    const states = run([good(), bad, bad, bad]);
    expect(states.map((h) => h.state)).toEqual(['up', 'suspect', 'down', 'down']);
    expect(isEligible(states[1]!)).toBe(true);
    expect(isEligible(states[2]!)).toBe(false);
    expect(states[2]!.reason).toBe('poll failed: timeout');
  });

  it('itForgivesOneFailureFollowedByAGoodPoll', () => {
    expect(run([good(), bad, good(), bad]).map((h) => h.state)).toEqual(['up', 'suspect', 'up', 'suspect']);
  });

  it('itComesBackOnlyAfterUpAfterGoodPollsInARow', () => {
    const states = run([good(), bad, bad, good(), bad, good(), good()]);
    expect(states.map((h) => h.state)).toEqual(['up', 'suspect', 'down', 'down', 'down', 'down', 'up']);
    expect(states[3]!.reason).toMatch(/recovering/);
  });

  it.each([
    [{ status: 'draining' as const }, 'draining'],
    [{ status: 'overloaded' as const }, 'overloaded'],
    [{ errorRatio: 0.8, windowRequests: 50 }, 'error ratio'],
    [{ disk: { usedBytes: 95, capacityBytes: 100 } }, 'disk'],
    [{ connections: 500 }, 'connections'],
  ])('itTakesAnEdgeRefusingClientsDownAtOnce %j', (over, reason) => {
    const [, h] = run([good(), good(over)]);
    expect(h!.state).toBe('down');
    expect(h!.reason).toContain(reason);
  });

  it.each([
    [{ errorRatio: 1, windowRequests: 5 }],
    [{ errorRatio: 0.8, windowRequests: 49 }],
    // An edge from before windowRequests: its 10 s request rate stands for the volume.
    [{ errorRatio: 0.8, requestsPerSec: 1 }],
  ])('itIgnoresTheErrorRatioOfAFewRequests %j', (over) => {
    const [, h] = run([good(), good(over)]);
    expect(h!.state).toBe('up');
  });

  it('itJudgesTheErrorRatioOfAnOlderEdgeByItsRequestRate', () => {
    const [, h] = run([good(), good({ errorRatio: 0.8, requestsPerSec: 6 })]);
    expect(h!.state).toBe('down');
  });

  it('itKeepsAnEdgeDownForItsErrorRatioAsALastResortButNoOther', () => {
    const [, byRatio, recovering] = run([good(), good({ errorRatio: 0.9, windowRequests: 100 }), good()]);
    expect(byRatio!.state).toBe('down');
    expect(isLastResort(byRatio!)).toBe(true);
    expect(recovering!.state).toBe('down');
    expect(isLastResort(recovering!)).toBe(true);
    for (const h of run([good(), good({ status: 'draining' })]).concat(run([good(), bad, bad]), run([good(), good({ connections: 500 })]))) {
      expect(isLastResort(h)).toBe(false);
    }
  });

  it('itKeepsTheLastReportAndLatency', () => {
    const [, h] = run([good({ connections: 7 }), bad]);
    expect(h!.lastReport?.connections).toBe(7);
    expect(h!.lastLatencyMs).toBe(500);
    expect(h!.since).toBe(2);
  });
});

import { describe, expect, it } from 'vitest';
import type { LoadResult } from '../../bench/edge/load.js';
import { type SteeringMeasured, combineRounds, isClientBound, locateVerdicts } from '../../bench/steering/report.js';

const run = (server: SteeringMeasured['server'], reqPerSec: number, o: Partial<LoadResult> & { cpu?: number; workload?: string } = {}): SteeringMeasured => {
  const seconds = o.seconds ?? 10;
  return {
    server,
    workload: o.workload ?? 'locate',
    bodyBytes: 900,
    cpuUsPerAnswer: o.cpu ?? 30,
    load: {
      requests: reqPerSec * seconds,
      seconds,
      reqPerSec,
      bytesPerSec: reqPerSec * 1000,
      p50Ms: o.p50Ms ?? 1,
      p99Ms: o.p99Ms ?? 3,
      errors: o.errors ?? 0,
      non2xx: o.non2xx ?? 0,
      ...(o.clientCpuSeconds === undefined ? {} : { clientCpuSeconds: o.clientCpuSeconds }),
    },
  };
};

describe('steering bench: rounds', () => {
  it('itSumsAnswersAndCpuAndTakesTheMedianLatencies', () => {
    const c = combineRounds([
      run('ReelCDN', 10_000, { seconds: 3, cpu: 40, p99Ms: 2, clientCpuSeconds: 1 }),
      run('ReelCDN', 20_000, { seconds: 3, cpu: 25, p99Ms: 90, errors: 1, clientCpuSeconds: 1 }),
      run('ReelCDN', 30_000, { seconds: 3, cpu: 20, p99Ms: 3, clientCpuSeconds: 1 }),
    ]);
    expect(c.load.requests).toBe(180_000);
    expect(c.load.seconds).toBe(9);
    expect(c.load.reqPerSec).toBe(20_000);
    // CPU per answer over all answers: (30k·40 + 60k·25 + 90k·20) µs / 180k answers.
    expect(c.cpuUsPerAnswer).toBeCloseTo((30_000 * 40 + 60_000 * 25 + 90_000 * 20) / 180_000, 9);
    // One round in someone else's burst does not make the p99.
    expect(c.load.p99Ms).toBe(3);
    expect(c.load.errors).toBe(1);
    expect(c.load.clientCpuSeconds).toBe(3);
  });

  it('itKeepsOneRoundAsItIs', () => {
    const one = run('nginx', 50_000);
    expect(combineRounds([one])).toBe(one);
  });
});

describe('steering bench: the locate target', () => {
  it('itMeetsAt035xNginxWithP99Under5ms', () => {
    const v = locateVerdicts([run('ReelCDN', 35_000, { cpu: 28, p99Ms: 4.9 }), run('nginx', 100_000, { cpu: 10 })]);
    expect(v.map((x) => [x.rule, x.met])).toEqual([
      ['locate >= 0.35x nginx', 'yes'],
      ['locate p99 < 5 ms', 'yes'],
    ]);
    expect(v[0]!.cpuRatio).toBeCloseTo(10 / 28, 9);
  });

  it('itMissesJustUnderTheRatioOrAtTheP99Bound', () => {
    const v = locateVerdicts([run('ReelCDN', 34_999, { p99Ms: 5 }), run('nginx', 100_000)]);
    expect(v.map((x) => x.met)).toEqual(['NO', 'NO']);
  });

  it('itSaysNaWithoutNginxAndMarksAClientBoundPeer', () => {
    expect(locateVerdicts([run('ReelCDN', 30_000)])[0]!.met).toBe('n/a');
    const results = [run('node:http', 60_000), run('ReelCDN', 30_000), run('nginx', 59_000)];
    expect(isClientBound(results[2]!, results)).toBe(true);
    expect(isClientBound(results[1]!, results)).toBe(false);
    expect(locateVerdicts(results)[0]!.clientBound).toBe(true);
  });
});

import { describe, expect, it } from 'vitest';
import { DEFAULT_BALANCE_SPEC, runBalanceBench } from '../../bench/steering-balance.js';

describe('bench:steering-balance (steering ranking over a simulated ISP)', () => {
  it('boundedLoadsKeepTheBusiestEdgeWithinTheBoundAndMostOfTheRingsAffinity', () => {
    const rows = new Map(runBalanceBench({ ...DEFAULT_BALANCE_SPEC, sessions: 4000, arrivalSeconds: 3600 * 1.2 }).map((r) => [r.policy, r]));
    const plain = rows.get('plain ring')!;
    const bounded = rows.get('bounded loads')!;
    // The plain ring puts the hottest title's whole audience on one edge.
    expect(plain.maxOverMean).toBeGreaterThan(1.5);
    expect(bounded.maxOverMean).toBeLessThanOrEqual(DEFAULT_BALANCE_SPEC.balanceFactor);
    expect(bounded.affinity).toBeGreaterThanOrEqual(0.9 * plain.affinity);
    expect(rows.get('random')!.affinity).toBeLessThan(0.8 * plain.affinity);
  });
});

import { describe, expect, it } from 'vitest';
import { DecisionBudget } from '../../src/steering/decision-budget.js';
import { spreadKeyOf } from '../../src/steering/ranking.js';

/** Steering's reload budget: a process-wide token bucket, a small share of it per client, spread retries. */
describe('decision budget', () => {
  it('refusesReloadsOverTheBudgetAndRefills', () => {
    const b = new DecisionBudget(10, 20);
    let ok = 0;
    // Every reload from another client: the process-wide bucket alone limits them.
    for (let i = 0; i < 25; i++) if (b.take(1000, spreadKeyOf(`10.0.0.${i}`)).ok) ok++;
    expect(ok).toBe(20);
    const refused = b.take(1000, spreadKeyOf('10.0.1.1'));
    expect(refused.ok).toBe(false);
    // Back no sooner than the bucket refills (2 s).
    expect(refused.retryAfterSec).toBeGreaterThanOrEqual(2);
    expect(b.take(1100, spreadKeyOf('10.0.1.2')).ok).toBe(true); // 100 ms later: one token
    expect(b.take(1100, spreadKeyOf('10.0.1.3')).ok).toBe(false);
    expect(new DecisionBudget(0, 0).take(0, 1).ok).toBe(true);
  });

  it('oneClientCannotTakeTheWholeBudget', () => {
    // 100 reloads a second: one client hammering gets its share, the others still get theirs.
    const b = new DecisionBudget(100, 100);
    const greedy = spreadKeyOf('192.0.2.66');
    let greedyOk = 0;
    for (let i = 0; i < 200; i++) if (b.take(5000, greedy).ok) greedyOk++;
    expect(greedyOk).toBeGreaterThan(0);
    expect(greedyOk).toBeLessThanOrEqual(10);
    let othersOk = 0;
    for (let i = 0; i < 50; i++) if (b.take(5000, spreadKeyOf(`198.51.100.${i}`)).ok) othersOk++;
    expect(othersOk).toBe(50);
    // Its share refills like the bucket: a second later it gets a few more, not a hundred.
    let later = 0;
    for (let i = 0; i < 200; i++) if (b.take(6000, greedy).ok) later++;
    expect(later).toBeGreaterThan(0);
    expect(later).toBeLessThanOrEqual(10);
  });

  it('aForcedReloadIsNeverRefusedButSpendsTheBudget', () => {
    // A player that must move (its pathway down or over the bound) is answered; what it spends
    // is what deferrable reloads give way to.
    const b = new DecisionBudget(10, 10);
    for (let i = 0; i < 30; i++) expect(b.take(0, spreadKeyOf(`10.0.0.${i}`), true).ok).toBe(true);
    expect(b.take(0, spreadKeyOf('10.9.9.9')).ok).toBe(false);
    expect(b.take(100, spreadKeyOf('10.9.9.9')).ok).toBe(true);
  });

  it('spreadsRetryAfterOverSeveralSecondsByClientEvenWhenBurstEqualsPerSecond', () => {
    // burst = perSecond refills in one second: Retry-After must still spread refused players
    // over a few seconds, each client always told the same.
    const b = new DecisionBudget(10, 10);
    for (let i = 0; i < 10; i++) b.take(0, spreadKeyOf(`10.0.0.${i}`));
    const seen = new Map<number, number>();
    for (let i = 0; i < 500; i++) {
      const v = b.take(0, spreadKeyOf(`203.0.113.${i % 250}`));
      expect(v.ok).toBe(false);
      seen.set(v.retryAfterSec, (seen.get(v.retryAfterSec) ?? 0) + 1);
      expect(b.take(0, spreadKeyOf(`203.0.113.${i % 250}`)).retryAfterSec).toBe(v.retryAfterSec);
    }
    expect([...seen.keys()].every((s) => s >= 1)).toBe(true);
    expect(seen.size).toBeGreaterThanOrEqual(4);
    expect(Math.max(...seen.keys()) - Math.min(...seen.keys())).toBeGreaterThanOrEqual(3);
    // Roughly even: no second takes more than half of them.
    expect(Math.max(...seen.values())).toBeLessThan(250);
  });
});

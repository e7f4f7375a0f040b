import { describe, expect, it } from 'vitest';
import { type BreakerTransition, CircuitBreaker } from '../../src/edge/circuit-breaker.js';

function breaker(failures = 3, coolDownMs = 1000) {
  let t = 0;
  const transitions: BreakerTransition[] = [];
  const b = new CircuitBreaker({ failures, coolDownMs }, () => t, (tr) => transitions.push(tr));
  return {
    b,
    transitions,
    advance: (ms: number) => {
      t += ms;
    },
    fail: () => b.failed(b.admit()!),
    succeed: () => b.succeeded(b.admit()!),
  };
}

describe('CircuitBreaker', () => {
  it('staysClosedWhileFailuresAreInterruptedBySuccesses', () => {
    const { b, fail, succeed, transitions } = breaker(3);
    fail();
    fail();
    succeed();
    fail();
    fail();
    expect(b.state).toBe('closed');
    expect(b.admit()).toBeDefined();
    expect(transitions).toEqual([]);
  });

  it('opensAfterNConsecutiveFailuresAndTurnsRequestsAway', () => {
    const { b, fail, transitions } = breaker(3);
    fail();
    fail();
    fail();
    expect(b.state).toBe('open');
    expect(b.admit()).toBeUndefined();
    expect(transitions).toEqual([{ from: 'closed', to: 'open', reason: '3 consecutive failures' }]);
  });

  it('letsExactlyOneProbeThroughAfterTheCoolDown', () => {
    const { b, fail, advance } = breaker(1, 1000);
    fail();
    advance(999);
    expect(b.admit()).toBeUndefined();
    expect(b.state).toBe('open');
    advance(1);
    const probe = b.admit();
    expect(probe).toBeDefined();
    expect(b.state).toBe('half-open');
    // while the probe is out, everyone else goes elsewhere
    expect(b.admit()).toBeUndefined();
    expect(b.admit()).toBeUndefined();
    b.succeeded(probe!);
    expect(b.state).toBe('closed');
    expect(b.admit()).toBeDefined();
  });

  it('reopensForAnotherFullCoolDownWhenTheProbeFails', () => {
    const { b, fail, advance, transitions } = breaker(2, 500);
    fail();
    fail();
    advance(10_000);
    const probe = b.admit()!;
    advance(300); // the probe took a while to fail: the new cool-down starts at the failure
    b.failed(probe);
    expect(b.state).toBe('open');
    advance(499);
    expect(b.admit()).toBeUndefined();
    advance(1);
    expect(b.admit()).toBeDefined();
    expect(transitions.map((t) => `${t.from}→${t.to}`)).toEqual(['closed→open', 'open→half-open', 'half-open→open', 'open→half-open']);
    expect(transitions[2]!.reason).toBe('probe failed');
  });

  it('ignoresLateOutcomesOfRequestsAdmittedInAnEarlierState', () => {
    const { b, fail, advance } = breaker(2, 100);
    const slow = b.admit()!; // admitted while closed, answers much later
    fail();
    fail();
    expect(b.state).toBe('open');
    b.succeeded(slow); // a late success must not close an open breaker
    expect(b.state).toBe('open');
    advance(100);
    const probe = b.admit()!;
    b.succeeded(slow); // nor stand in for the probe
    expect(b.state).toBe('half-open');
    b.succeeded(probe);
    expect(b.state).toBe('closed');
    const late = b.admit()!;
    fail(); // counted: 1 of 2
    b.failed(slow); // admitted two generations ago: not counted
    expect(b.state).toBe('closed');
    b.failed(late);
    expect(b.state).toBe('open');
  });

  it('countsFailuresAfterClosingFromZero', () => {
    const { b, fail, advance } = breaker(2, 100);
    fail();
    fail();
    advance(100);
    b.succeeded(b.admit()!);
    fail();
    expect(b.state).toBe('closed');
    fail();
    expect(b.state).toBe('open');
  });

  it('refusesSettingsThatCouldNeverOpenOrClose', () => {
    expect(() => new CircuitBreaker({ failures: 0, coolDownMs: 1 }, () => 0)).toThrow(/failures/);
    expect(() => new CircuitBreaker({ failures: 1, coolDownMs: -1 }, () => 0)).toThrow(/coolDownMs/);
  });
});

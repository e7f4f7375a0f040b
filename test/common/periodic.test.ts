import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/common/clock.js';
import { Periodic } from '../../src/common/periodic.js';

/** A round that stays in flight until the test lets it finish. */
function gatedRounds() {
  const gates: Array<() => void> = [];
  const round = () => new Promise<void>((resolve) => gates.push(resolve));
  return { gates, round };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('Periodic', () => {
  it('itSchedulesTheNextRoundOnlyAfterThePreviousOneFinished', async () => {
    const clock = new FakeClock(0);
    const { gates, round } = gatedRounds();
    const p = new Periodic(clock, 100, round);
    p.start();
    expect(gates).toHaveLength(1);
    clock.advance(500);
    expect(gates).toHaveLength(1);
    gates[0]!();
    await settle();
    clock.advance(99);
    expect(gates).toHaveLength(1);
    clock.advance(1);
    expect(gates).toHaveLength(2);
    gates[1]!();
    await p.stop();
  });

  it('itJoinsTheRoundInFlightWhenAskedForOne', async () => {
    const { gates, round } = gatedRounds();
    const p = new Periodic(new FakeClock(0), 100, round);
    const a = p.runNow();
    expect(p.runNow()).toBe(a);
    expect(gates).toHaveLength(1);
    gates[0]!();
    await a;
    void p.runNow();
    expect(gates).toHaveLength(2);
    gates[1]!();
  });

  it('itStopsOnlyOnceTheRoundInFlightFinished', async () => {
    const clock = new FakeClock(0);
    const { gates, round } = gatedRounds();
    const p = new Periodic(clock, 100, round);
    p.start();
    let stopped = false;
    const stopping = p.stop().then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(false);
    gates[0]!();
    await stopping;
    clock.advance(1000);
    expect(gates).toHaveLength(1);
  });
});

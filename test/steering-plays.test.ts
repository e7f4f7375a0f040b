import { describe, expect, it } from 'vitest';
import { FakeClock } from '../src/common/clock.js';
import { type PlayRecord, PlayReporter } from '../src/steering/play-reporter.js';
import { silent } from './steering-harness.js';

function harness(opts: { maxBuffered?: number; batchSize?: number } = {}) {
  const clock = new FakeClock(1_000_000);
  const received: PlayRecord[] = [];
  let up = true;
  let calls = 0;
  const reporter = new PlayReporter({
    clock,
    logger: silent,
    flushMs: 2000,
    batchSize: opts.batchSize ?? 100,
    maxBuffered: opts.maxBuffered ?? 1000,
    minBackoffMs: 1000,
    maxBackoffMs: 8000,
    send: async (plays) => {
      calls++;
      if (!up) throw new Error('origin down');
      received.push(...plays);
    },
  });
  const settle = () => new Promise((r) => setImmediate(r));
  return { clock, reporter, received, setUp: (v: boolean) => (up = v), calls: () => calls, settle };
}

describe('play reporter', () => {
  it('itSendsPlaysInBatchesOnATimer', async () => {
    const h = harness();
    h.reporter.record({ title: 't', isp: 'isp-a', at: 1 });
    h.reporter.record({ title: 't', isp: 'isp-a', at: 2 });
    await h.settle();
    expect(h.received).toHaveLength(0);
    h.clock.advance(2000);
    await h.settle();
    expect(h.received.map((p) => p.at)).toEqual([1, 2]);
    expect(h.calls()).toBe(1);
  });

  it('itSendsAsSoonAsABatchIsFull', async () => {
    const h = harness({ batchSize: 10 });
    for (let i = 0; i < 10; i++) h.reporter.record({ title: 't', isp: 'a', at: i });
    await h.settle();
    expect(h.received).toHaveLength(10);
  });

  it('itKeepsPlaysWhileTheOriginIsDownAndLosesNoneWhenItReturns', async () => {
    const h = harness({ batchSize: 50 });
    h.setUp(false);
    for (let i = 0; i < 120; i++) h.reporter.record({ title: 't', isp: 'a', at: i });
    await h.settle();
    for (let s = 0; s < 5; s++) {
      h.clock.advance(2000);
      await h.settle();
    }
    expect(h.received).toHaveLength(0);
    expect(h.reporter.buffered).toBe(120);
    const callsWhileDown = h.calls();
    expect(callsWhileDown).toBeLessThan(8); // backing off, not hammering
    h.setUp(true);
    for (let s = 0; s < 10 && h.reporter.buffered > 0; s++) {
      h.clock.advance(8000);
      await h.settle();
      await h.settle();
    }
    expect(h.received.map((p) => p.at)).toEqual(Array.from({ length: 120 }, (_, i) => i));
    expect(h.reporter.sent).toBe(120);
    expect(h.reporter.dropped).toBe(0);
  });

  it('itDropsAndCountsPlaysBeyondTheBuffer', async () => {
    const h = harness({ maxBuffered: 5, batchSize: 100 });
    h.setUp(false);
    for (let i = 0; i < 8; i++) h.reporter.record({ title: 't', isp: 'a', at: i });
    expect(h.reporter.buffered).toBe(5);
    expect(h.reporter.dropped).toBe(3);
  });
});

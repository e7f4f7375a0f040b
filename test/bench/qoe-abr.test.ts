import { describe, expect, it } from 'vitest';
import { DEFAULT_ABR, ThroughputEstimate, chooseRendition } from '../../bench/qoe-abr.js';

const LADDER = [255, 475, 915, 1795];

describe('ThroughputEstimate', () => {
  it('says the default before any download, then the rate of a steady link', () => {
    const e = new ThroughputEstimate({ fastHalfLifeS: 3, slowHalfLifeS: 9, defaultKbps: 500 });
    expect(e.kbps()).toBe(500);
    for (let i = 0; i < 5; i++) e.sample(1, 125_000); // 1 Mbit in 1 s
    expect(e.kbps()).toBeCloseTo(1000, 6);
    expect(e.samples).toBe(5);
  });

  it('believes a drop quickly and a rise slowly (the lower average wins)', () => {
    const e = new ThroughputEstimate();
    for (let i = 0; i < 10; i++) e.sample(1, 250_000); // 2000 kbps
    e.sample(2, 50_000); // 200 kbps for 2 s
    const afterDrop = e.kbps();
    expect(afterDrop).toBeLessThan(1500);
    const rising = new ThroughputEstimate();
    for (let i = 0; i < 10; i++) rising.sample(1, 25_000); // 200 kbps
    rising.sample(2, 500_000); // 2000 kbps for 2 s
    expect(rising.kbps()).toBeLessThan(2000 - afterDrop); // moved less far up than the other moved down
  });

  it('ignores empty and instant downloads', () => {
    const e = new ThroughputEstimate();
    e.sample(0, 1000);
    e.sample(1, 0);
    expect(e.samples).toBe(0);
    expect(e.kbps()).toBe(500);
  });
});

describe('chooseRendition', () => {
  const base = { ladderKbps: LADDER, bufferS: 20, playing: true, segmentS: 2 };

  it('stays or goes down to the highest rendition under estimate × safety (0.8)', () => {
    expect(chooseRendition({ ...base, current: 3, estimateKbps: 2000 })).toBe(2); // 1795 > 1600 ≥ 915
    expect(chooseRendition({ ...base, current: 3, estimateKbps: 2300 })).toBe(3); // 1795 ≤ 1840
  });

  it('goes up only under estimate × the stricter up factor (0.7)', () => {
    // 915 ≤ 1250 × 0.8 but not ≤ 1250 × 0.7: kept when playing it, not taken from below.
    expect(chooseRendition({ ...base, current: 2, estimateKbps: 1250 })).toBe(2);
    expect(chooseRendition({ ...base, current: 1, estimateKbps: 1250 })).toBe(1);
    expect(chooseRendition({ ...base, current: 1, estimateKbps: 1320 })).toBe(2); // 915 ≤ 924
  });

  it('falls back to the lowest rendition when none is affordable', () => {
    expect(chooseRendition({ ...base, current: 2, estimateKbps: 100 })).toBe(0);
  });

  it('uses the throughput rule alone before playback starts (an empty buffer is not a reason to drop)', () => {
    expect(chooseRendition({ ...base, bufferS: 0, playing: false, current: undefined, estimateKbps: 500 })).toBe(0); // 475 > 400
    expect(chooseRendition({ ...base, bufferS: 0, playing: false, current: undefined, estimateKbps: 700 })).toBe(1);
  });

  it('with a low buffer, never goes up', () => {
    expect(chooseRendition({ ...base, bufferS: 4, current: 2, estimateKbps: 5000 })).toBe(2);
    expect(chooseRendition({ ...base, bufferS: DEFAULT_ABR.lowBufferS, current: 2, estimateKbps: 5000 })).toBe(3);
  });

  it('with a low buffer, steps down until the next segment is expected within half the buffer', () => {
    // 1795 kbps × 2 s / 2400 kbps = 1.50 s of download.
    expect(chooseRendition({ ...base, bufferS: 3, current: 3, estimateKbps: 2400 })).toBe(3); // 1.50 ≤ 1.5
    expect(chooseRendition({ ...base, bufferS: 2.5, current: 3, estimateKbps: 2400 })).toBe(2); // 1.50 > 1.25 ≥ 0.76
    expect(chooseRendition({ ...base, bufferS: 0, current: 3, estimateKbps: 2400 })).toBe(0); // stalled
  });

  it('refuses an empty ladder', () => {
    expect(() => chooseRendition({ ...base, ladderKbps: [], current: undefined, estimateKbps: 500 })).toThrow(/empty ladder/);
  });
});

import { describe, expect, it } from 'vitest';
import { capAt, capPlans, pacedWaitMs, realBytesPerMs } from '../../bench/qoe-network.js';

describe('capPlans', () => {
  const spread = { loKbps: 400, hiKbps: 3200, dipEvery: 3, dipShare: 0.5, dipFrom: 0.4, dipTo: 0.6 };

  it('spreads caps on a log scale from lo to hi, in a seeded order that is the same every run', () => {
    const plans = capPlans(4, spread);
    expect(plans.map((p) => p.baseKbps).sort((a, b) => a - b)).toEqual([400, 800, 1600, 3200]);
    expect(capPlans(4, spread)).toEqual(plans);
    expect(capPlans(24, spread).map((p) => p.baseKbps)).not.toEqual(capPlans(24, spread).map((p) => p.baseKbps).sort((a, b) => a - b));
  });

  it('gives every third player a dip', () => {
    const plans = capPlans(6, spread);
    expect(plans.map((p) => p.dipShare)).toEqual([1, 1, 0.5, 1, 1, 0.5]);
    expect(capPlans(3, { ...spread, dipEvery: 0 }).every((p) => p.dipShare === 1)).toBe(true);
  });

  it('one player gets the middle of the spread', () => {
    expect(capPlans(1, spread)[0]!.baseKbps).toBe(1131);
  });
});

describe('capAt', () => {
  it('is the base cap outside the dip and the dipped cap inside [from, to)', () => {
    const plan = { baseKbps: 1000, dipShare: 0.4, dipFrom: 0.4, dipTo: 0.6 };
    expect(capAt(plan, 0, 100)).toBe(1000);
    expect(capAt(plan, 40, 100)).toBe(400);
    expect(capAt(plan, 59.9, 100)).toBe(400);
    expect(capAt(plan, 60, 100)).toBe(1000);
    expect(capAt(plan, 10, Infinity)).toBe(1000); // length not known yet
  });
});

describe('pacing', () => {
  it('scales a media-time cap by the clock speed', () => {
    expect(realBytesPerMs(800, 1)).toBe(100); // 800 kbit/s = 100 bytes/ms
    expect(realBytesPerMs(800, 4)).toBe(400);
  });

  it('holds a read back to the pace, and never makes it wait for time already lost', () => {
    expect(pacedWaitMs(100_000, 100, 200)).toBe(800);
    expect(pacedWaitMs(100_000, 100, 1500)).toBe(0);
    expect(pacedWaitMs(100_000, 0, 0)).toBe(0);
  });
});

import { describe, expect, it } from 'vitest';
import type { DayCounts } from '../src/origin/plays.js';
import { predictPopularity } from '../src/origin/popularity.js';

const day = (isp: string, counts: Record<string, number>): DayCounts => ({ [isp]: counts });

describe('popularity prediction', () => {
  it('predictsNForATitlePlayedNTimesEveryDay', () => {
    const days: [string, DayCounts][] = ['2024-05-28', '2024-05-29', '2024-05-30', '2024-05-31'].map((d) => [d, day('isp-a', { steady: 100 })]);
    const p = predictPopularity(days, '2024-05-31', { halfLifeDays: 2 });
    expect(p.get('isp-a')!.get('steady')).toBeCloseTo(100, 6);
  });

  it('weighsADayHalfAsMuchOneHalfLifeLater', () => {
    const days: [string, DayCounts][] = [
      ['2024-05-29', { 'isp-a': { old: 100 } }],
      ['2024-05-31', { 'isp-a': { fresh: 100 } }],
    ];
    const p = predictPopularity(days, '2024-05-31', { halfLifeDays: 2 }).get('isp-a')!;
    expect(p.get('old')! / p.get('fresh')!).toBeCloseTo(0.5, 6);
    const slow = predictPopularity(days, '2024-05-31', { halfLifeDays: 8 }).get('isp-a')!;
    expect(slow.get('old')! / slow.get('fresh')!).toBeCloseTo(Math.pow(0.5, 2 / 8), 6);
  });

  it('letsARisingTitleOvertakeAFadingOne', () => {
    const days: [string, DayCounts][] = [
      ['2024-05-27', day('isp-a', { fading: 1000, rising: 0 })],
      ['2024-05-28', day('isp-a', { fading: 600, rising: 100 })],
      ['2024-05-29', day('isp-a', { fading: 300, rising: 400 })],
      ['2024-05-30', day('isp-a', { fading: 100, rising: 800 })],
    ];
    const p = predictPopularity(days, '2024-05-30', { halfLifeDays: 1 }).get('isp-a')!;
    expect(p.get('rising')!).toBeGreaterThan(p.get('fading')!);
  });

  it('keepsIspsApartAndIgnoresDaysAfterToday', () => {
    const p = predictPopularity(
      [
        ['2024-05-31', { 'isp-a': { x: 10 }, 'isp-b': { y: 5 } }],
        ['2024-06-05', { 'isp-a': { future: 1000 } }],
      ],
      '2024-05-31',
      { halfLifeDays: 2 },
    );
    expect([...p.get('isp-a')!.keys()]).toEqual(['x']);
    expect(p.get('isp-b')!.get('y')).toBeCloseTo(5);
  });
});

import { describe, expect, it } from 'vitest';
import {
  type Ceiling,
  type Figure,
  isClientBound,
  rssLimit,
  rssVerdict,
  targetVerdicts,
  verdictText,
  workersVerdicts,
} from '../../bench/edge/verdicts.js';

const MiB = 1024 * 1024;
const fig = (server: Figure['server'], workload: string, reqPerSec: number, workers = 1): Figure => ({ server, workload, workers, reqPerSec });

describe('edge bench: client-bound marking', () => {
  it('marks a figure above 70 % of the ceiling, not at or below it', () => {
    expect(isClientBound(7001, 10_000)).toBe(true);
    expect(isClientBound(7000, 10_000)).toBe(false);
    expect(isClientBound(100, 10_000)).toBe(false);
  });

  it('marks nothing when no ceiling was measured', () => {
    expect(isClientBound(1e9, undefined)).toBe(false);
    expect(isClientBound(1e9, 0)).toBe(false);
  });
});

describe('edge bench: target verdicts', () => {
  const ceilings: Ceiling[] = [
    { workload: 'hot-16k', workers: 1, reqPerSec: 40_000 },
    { workload: 'disk-tier', workers: 1, reqPerSec: 1_000 },
  ];

  it('judges each rule by the ratio of req/s in the run, in the issue order', () => {
    const figures = [
      fig('ReelCDN', 'hot-16k', 20_000),
      fig('nginx', 'hot-16k', 20_000),
      fig('ReelCDN', 'disk-tier', 500),
      fig('nginx', 'disk-tier', 1_000),
      fig('Varnish-file', 'disk-tier', 400),
    ];
    const v = targetVerdicts(figures, ceilings);
    expect(v.map((x) => [x.rule, x.ratio, x.met])).toEqual([
      ['hot-16k >= 1.0x nginx', 1, 'yes'],
      ['disk-tier >= 1.0x Varnish-file', 1.25, 'yes'],
      ['disk-tier >= 0.6x nginx', 0.5, 'NO'],
    ]);
  });

  it('says n/a when the peer did not run, and skips workloads that did not run', () => {
    const v = targetVerdicts([fig('ReelCDN', 'hot-2m', 900)], []);
    expect(v).toEqual([{ rule: 'hot-2m >= 1.2x Varnish', ratio: undefined, min: 1.2, met: 'n/a', clientBound: false }]);
  });

  it('flags a ratio whose peer figure is client-bound', () => {
    const v = targetVerdicts([fig('ReelCDN', 'hot-16k', 10_000), fig('nginx', 'hot-16k', 30_000)], ceilings);
    expect(v[0]).toMatchObject({ met: 'NO', clientBound: true });
    expect(verdictText(v[0]!)).toBe('NO (client-bound)');
    expect(verdictText({ met: 'n/a', clientBound: true })).toBe('n/a');
  });

  it('workers-2: the ratio to nginx must be no worse than on one core', () => {
    const figures = [
      fig('ReelCDN', 'hot-16k', 10_000),
      fig('nginx', 'hot-16k', 20_000),
      fig('ReelCDN', 'hot-16k', 21_000, 2),
      fig('nginx', 'hot-16k', 40_000, 2),
      fig('ReelCDN', 'disk-tier', 600),
      fig('nginx', 'disk-tier', 1_000),
      fig('ReelCDN', 'disk-tier', 1_000, 2),
      fig('nginx', 'disk-tier', 2_000, 2),
    ];
    const v = workersVerdicts(figures, [], 2);
    expect(v.map((x) => [x.rule.split(' ')[0], x.ratio, x.min, x.met])).toEqual([
      ['hot-16k', 0.525, 0.5, 'yes'],
      ['disk-tier', 0.5, 0.6, 'NO'],
    ]);
  });

  it('workers-2 without the 1-core figures has nothing to compare with', () => {
    const v = workersVerdicts([fig('ReelCDN', 'hot-16k', 1, 2), fig('nginx', 'hot-16k', 2, 2)], [], 2);
    expect(v).toHaveLength(1);
    expect(v[0]!.met).toBe('n/a');
  });
});

describe('edge bench: the HTTPS targets', () => {
  it('judges tls-hot-16k and tls-hot-2m against nginx at 0.9x, after the plain rules', () => {
    const figures = [
      fig('ReelCDN', 'hot-16k', 10_000),
      fig('nginx', 'hot-16k', 20_000),
      fig('ReelCDN', 'tls-hot-16k', 9_000),
      fig('nginx', 'tls-hot-16k', 10_000),
      fig('ReelCDN', 'tls-hot-2m', 890),
      fig('nginx', 'tls-hot-2m', 1_000),
      fig('Varnish', 'hot-16k', 30_000),
    ];
    const v = targetVerdicts(figures, [{ workload: 'tls-hot-2m', workers: 1, reqPerSec: 1_200 }]);
    expect(v.map((x) => [x.rule, x.ratio, x.met, x.clientBound])).toEqual([
      ['hot-16k >= 1.0x nginx', 0.5, 'NO', false],
      ['tls-hot-16k >= 0.9x nginx', 0.9, 'yes', false],
      ['tls-hot-2m >= 0.9x nginx', 0.89, 'NO', true],
    ]);
  });

  it('gives the ratio by CPU per answer beside the req/s one, when both servers measured it', () => {
    const withCpu = (f: Figure, cpuUsPerAnswer: number): Figure => ({ ...f, cpuUsPerAnswer });
    const v = targetVerdicts(
      [withCpu(fig('ReelCDN', 'tls-hot-16k', 5_000), 80), withCpu(fig('nginx', 'tls-hot-16k', 20_000), 36), withCpu(fig('ReelCDN', 'tls-hot-2m', 300), 1_200), fig('nginx', 'tls-hot-2m', 200)],
      [],
    );
    expect(v.map((x) => [x.rule, x.ratio, x.cpuRatio])).toEqual([
      ['tls-hot-16k >= 0.9x nginx', 0.25, 0.45],
      ['tls-hot-2m >= 0.9x nginx', 1.5, undefined],
    ]);
  });
});

describe('edge bench: the RSS rule', () => {
  it('allows memoryBytes + 150 MiB per worker, summed over the node', () => {
    expect(rssLimit(192 * MiB, 1)).toBe(342 * MiB);
    expect(rssLimit(192 * MiB, 2)).toBe(492 * MiB);
    expect(rssVerdict(342 * MiB, 192 * MiB, 1)).toBe('yes');
    expect(rssVerdict(342 * MiB + 1, 192 * MiB, 1)).toBe('NO');
    expect(rssVerdict(400 * MiB, 192 * MiB, 2)).toBe('yes');
    expect(rssVerdict(0, 192 * MiB, 1)).toBe('n/a');
  });
});

import { describe, expect, it } from 'vitest';
import { type PendingPlay, PlayGate, playClientKey } from '../../src/steering/play-gate.js';

const HOUR = 3_600_000;

function gate(opts: { maxTracked?: number; dedupWindowMs?: number; confirmWithinMs?: number } = {}) {
  let n = 0;
  return new PlayGate({
    maxTracked: opts.maxTracked ?? 1000,
    confirmWithinMs: opts.confirmWithinMs ?? 600_000,
    dedupWindowMs: opts.dedupWindowMs ?? HOUR,
    newId: () => `id-${++n}`,
  });
}

const play = (client: string, title = 't1', isp = 'isp-a'): PendingPlay => ({ client, title, isp, at: 1_700_000_000_000 });

describe('PlayGate', () => {
  it('itCountsAPlayOnlyWhenItsIdIsConfirmed', () => {
    const g = gate();
    const id = g.issue(play('10.0.0.1'), 0);
    expect(g.pendingCount).toBe(1);
    const v = g.confirm(id, 1000);
    expect(v).toEqual({ outcome: 'counted', play: play('10.0.0.1') });
    expect(g.pendingCount).toBe(0);
  });

  it('itCountsNothingForIdsItDidNotIssueOrAlreadyConfirmed', () => {
    const g = gate();
    expect(g.confirm('made-up', 0).outcome).toBe('unknown');
    const id = g.issue(play('10.0.0.1'), 0);
    expect(g.confirm(id, 1).outcome).toBe('counted');
    expect(g.confirm(id, 2).outcome).toBe('unknown'); // a second segment, or a second edge
    expect(g.totals).toEqual({ counted: 1, duplicate: 0, unknown: 2 });
  });

  it('itForgetsAPlayWhoseSegmentsNeverCame', () => {
    const g = gate({ confirmWithinMs: 60_000 });
    const id = g.issue(play('10.0.0.1'), 0);
    expect(g.confirm(id, 60_000).outcome).toBe('unknown');
  });

  it('itCountsAClientsPlaysOfATitleOncePerWindow', () => {
    const g = gate({ dedupWindowMs: HOUR });
    expect(g.confirm(g.issue(play('10.0.0.1'), 0), 10).outcome).toBe('counted');
    expect(g.confirm(g.issue(play('10.0.0.1'), 20), 30).outcome).toBe('duplicate');
    expect(g.confirm(g.issue(play('10.0.0.1'), HOUR - 100), HOUR - 50).outcome).toBe('duplicate');
    // Another title, another client: counted.
    expect(g.confirm(g.issue(play('10.0.0.1', 't2'), 40), 50).outcome).toBe('counted');
    expect(g.confirm(g.issue(play('10.0.1.1'), 40), 50).outcome).toBe('counted');
    // The window has passed since the first count.
    expect(g.confirm(g.issue(play('10.0.0.1'), HOUR + 20), HOUR + 30).outcome).toBe('counted');
  });

  it('itCountsEveryConfirmedPlayWhenTheWindowIsZero', () => {
    const g = gate({ dedupWindowMs: 0 });
    expect(g.confirm(g.issue(play('10.0.0.1'), 0), 1).outcome).toBe('counted');
    expect(g.confirm(g.issue(play('10.0.0.1'), 2), 3).outcome).toBe('counted');
  });

  it('itReusesTheOpenPlayIdOfAClientFetchingTheManifestAgain', () => {
    const g = gate();
    const ids = new Set(Array.from({ length: 30 }, (_, i) => g.issue(play('10.0.0.1'), i)));
    expect(ids.size).toBe(1);
    expect(g.pendingCount).toBe(1);
  });

  it('itTreatsAnIpv6Slash64AsOneClient', () => {
    expect(playClientKey('2001:db8:a:b::1')).toBe(playClientKey('2001:db8:a:b:ffff:1:2:3'));
    expect(playClientKey('2001:db8:a:b::1')).not.toBe(playClientKey('2001:db8:a:c::1'));
    expect(playClientKey('::ffff:10.0.0.1')).toBe('10.0.0.1');
    const g = gate();
    expect(g.confirm(g.issue(play('2001:db8:a:b::1'), 0), 1).outcome).toBe('counted');
    expect(g.confirm(g.issue(play('2001:db8:a:b::2'), 2), 3).outcome).toBe('duplicate');
  });

  it('itHoldsAtMostMaxTrackedPendingPlaysAndCountedClients', () => {
    const g = gate({ maxTracked: 100 });
    const first = g.issue(play('10.0.0.0'), 0);
    for (let i = 1; i < 5000; i++) g.issue(play(`10.1.${i >> 8}.${i & 255}`), i);
    expect(g.pendingCount).toBe(100);
    expect(g.evicted.pending).toBe(4900);
    // The oldest pending play was pushed out by the bound: it no longer counts.
    expect(g.confirm(first, 5000).outcome).toBe('unknown');
    for (let i = 0; i < 5000; i++) g.confirm(g.issue(play(`10.2.${i >> 8}.${i & 255}`), 6000 + i), 6000 + i);
    expect(g.countedPairs).toBe(100);
    expect(g.evicted.counted).toBe(4900);
  });
});

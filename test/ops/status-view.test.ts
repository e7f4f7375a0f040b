import { describe, expect, it } from 'vitest';
import { formatStatusTable, statusRows, statusSummary } from '../../src/cli/status-view.js';

const tiers = (req: number) => ({ 'HIT-MEM': { requests: req, bytes: req * 10 }, 'HIT-DISK': { requests: 0, bytes: 0 }, MISS: { requests: req, bytes: req * 10 } });
const report = (over: Record<string, unknown> = {}) => ({
  status: 'ok',
  connections: 3,
  bytesPerSec: 2048,
  hitRatio: { requests: 0.5, bytes: 0.5 },
  byTier: tiers(4),
  disk: { usedBytes: 1024, capacityBytes: 4096 },
  fill: { state: 'idle', filesDone: 2, filesTotal: 3, bytesDone: 1, bytesTotal: 2 },
  ...over,
});

describe('reelcdn status rows', () => {
  it('showsNumbersOnlyWhenTheyAreCurrentAndMeanSomething', () => {
    const rows = statusRows({
      edges: [
        { id: 'e1', isp: 'a', state: 'up', eligible: true, reason: 'ok', failures: 0, health: report() },
        // Answered nothing yet: no ratio, not 0%.
        { id: 'e2', isp: 'a', state: 'up', eligible: true, reason: 'ok', failures: 0, health: report({ hitRatio: { requests: 0, bytes: 0 }, byTier: tiers(0) }) },
        // Its polls fail: its last report is not shown as current.
        { id: 'e3', isp: 'b', state: 'down', eligible: false, reason: 'poll failed: ECONNREFUSED', failures: 3, health: report() },
        // Draining answers its polls: its own numbers.
        { id: 'e4', isp: 'b', state: 'down', eligible: false, reason: 'draining', failures: 0, health: report({ status: 'draining' }) },
        { id: 'e5', isp: 'b', state: 'unknown', eligible: false, reason: 'not polled yet', failures: 0, health: null },
      ],
    });
    expect(rows.map((r) => [r.id, r.stale, r.hitRatio?.requests ?? null, r.connections])).toEqual([
      ['e1', false, 0.5, 3],
      ['e2', false, null, 3],
      ['e3', true, null, null],
      ['e4', false, 0.5, 3],
      ['e5', true, null, null],
    ]);
    const table = formatStatusTable(rows).split('\n');
    expect(table[1]).toBe('e1    a    up       50.0%    50.0%      2.0 KiB/s   3      1.0 KiB/4.0 KiB 25.0%  idle 2/3  ok');
    expect(table[3]).toBe('e3    b    down     -        -          -           -      -                      -         poll failed: ECONNREFUSED');
    expect(statusSummary(rows)).toBe('2 of 5 edges take new sessions; not: e3, e4, e5\n');
    expect(() => statusRows({ nope: 1 })).toThrow(/no "edges" list/);
  });
});

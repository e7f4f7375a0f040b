import { describe, expect, it } from 'vitest';
import { type PlanInput, type PlanTitle, planChurn, planFill } from '../src/origin/fill-planner.js';

/**
 * A file a node already holds as cache costs it no fetch (the fill agent verifies it in place),
 * so the planner may place it beyond the night's churn budget when told what is cached.
 */
const GB = 1e9;
const title = (name: string): PlanTitle => ({ title: name, bytes: 10 * GB, files: [{ path: 'a.mp4', size: 10 * GB, sha256: `${name}`.padEnd(64, '0') }] });
const titles = ['t0', 't1', 't2', 't3', 't4', 't5'].map(title);
const base = (plays: Record<string, number>, over: Partial<PlanInput> = {}): PlanInput => ({
  // One node of 40 GB, no headroom: four 10 GB titles. A night may fetch 10 % of the disk: no whole title.
  nodes: [{ id: 'n1', isp: 'isp-a', url: 'http://n1', diskBytes: 40 * GB }],
  titles,
  prediction: new Map([['isp-a', new Map(Object.entries(plays))]]),
  pinned: new Map(),
  headroomRatio: 0,
  originUrl: 'http://origin',
  generatedAt: '2026-01-01T00:00:00.000Z',
  stability: { stayRatio: 0.8, enterRatio: 1, maxChurnRatio: 0.1 },
  ...over,
});
const held = (p: ReturnType<typeof planFill>) => new Set(p.manifests.get('n1')!.titles);

describe('placement with what the nodes have cached', () => {
  it('letsACachedTitleInBeyondTheChurnBudgetAndNothingElse', () => {
    const night1 = planFill(base({ t0: 100, t1: 90, t2: 80, t3: 70, t4: 10, t5: 10 }));
    expect(held(night1)).toEqual(new Set(['t0', 't1', 't2', 't3']));
    // t4 and t5 are now far above t3; the budget (4 GB) cannot fetch a 10 GB title…
    const plays = { t0: 100, t1: 90, t2: 80, t3: 20, t4: 300, t5: 250 };
    const blind = planFill(base(plays, { previous: night1 }));
    expect(held(blind)).toEqual(held(night1));
    // …but t5 is cached whole on n1 (it was read there yesterday): it enters at no cost, t4 still waits.
    const told = planFill(base(plays, { previous: night1, cached: (node, t, path) => (node === 'n1' && t === 't5' && path === 'a.mp4' ? 10 * GB : 0) }));
    expect(held(told)).toEqual(new Set(['t0', 't1', 't2', 't5']));
    expect(planChurn(night1, told).bytes).toBe(10 * GB); // what the plan lists as new; the node fetches none of it
  });
});

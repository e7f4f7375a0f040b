import type { Clock } from '../common/clock.js';
import type { FileWeights } from './file-weights.js';
import type { OriginState } from './origin-context.js';
import { utcDay } from './plays.js';

/** Per-file weights from the edges' serve reports, for planning today (file-weights.ts). */
export function weightsToday(state: OriginState, clock: Clock): FileWeights {
  if (!state.servedStore || !state.playStore) throw new Error('origin not started');
  const c = state.catalog;
  const store = state.playStore;
  // A title's plays as steering confirmed them, all ISPs: what its reads are divided by.
  const byDay = new Map<string, Map<string, number>>();
  const plays = (day: string, title: string) => {
    let m = byDay.get(day);
    if (!m) {
      byDay.set(day, (m = new Map()));
      for (const titles of Object.values(store.countsFor(day))) for (const [t, n] of Object.entries(titles)) m.set(t, (m.get(t) ?? 0) + n);
    }
    return m.get(title);
  };
  const nowMs = clock.now();
  return state.servedStore.weights(utcDay(nowMs), state.cluster.origin.fill.halfLifeDays, (t, f) => c.file(t, f)?.size, {
    catalogStamp: c,
    plays,
    // Plays arrive all the time: weights are recomputed at most once a minute for them.
    playsStamp: Math.floor(nowMs / 60_000),
  });
}

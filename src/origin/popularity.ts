import type { DayCounts } from './plays.js';

/** Predicted plays per day, per ISP, per title. */
export type Prediction = Map<string, Map<string, number>>;

export interface PopularityOptions {
  /** Days after which a day's plays weigh half as much. */
  halfLifeDays: number;
}

const DAY_MS = 86_400_000;

function ageInDays(day: string, today: string): number {
  return Math.round((Date.parse(`${today}T00:00:00Z`) - Date.parse(`${day}T00:00:00Z`)) / DAY_MS);
}

/**
 * Tomorrow's popularity from past days' plays, exponentially smoothed: the plays of a day
 * `a` days old weigh 0.5^(a / halfLife), divided by the weight of every day in the horizon
 * (days without plays count as zero), so a title played N times every day predicts N and a
 * title that stopped being played fades with the half-life. Pure: days in, prediction out.
 */
export function predictPopularity(days: Iterable<[string, DayCounts]>, today: string, options: PopularityOptions): Prediction {
  const list = [...days].map(([day, counts]) => ({ age: ageInDays(day, today), counts })).filter((d) => d.age >= 0);
  const out: Prediction = new Map();
  if (list.length === 0) return out;
  const weight = (age: number) => Math.pow(0.5, age / options.halfLifeDays);
  const horizon = Math.max(...list.map((d) => d.age));
  let total = 0;
  for (let a = 0; a <= horizon; a++) total += weight(a);
  for (const { age, counts } of list) {
    const w = weight(age) / total;
    for (const [isp, titles] of Object.entries(counts)) {
      let m = out.get(isp);
      if (!m) out.set(isp, (m = new Map()));
      for (const [title, n] of Object.entries(titles)) m.set(title, (m.get(title) ?? 0) + w * n);
    }
  }
  return out;
}

/**
 * Plays reported by steering (`POST /v1/plays`), counted per UTC day, per ISP, per title.
 * Pure: validation and counting; persistence lives in play-store.ts.
 */

export interface Play {
  title: string;
  /** The ISP id steering placed the client in. */
  isp: string;
  /** When the play started, ms since the epoch. */
  at: number;
}

/** isp id → title → plays. A plain value: safe to hand to a popularity model. */
export type DayCounts = Record<string, Record<string, number>>;

/** One POST carries at most this many plays; steering batches below it. */
export const MAX_PLAYS_PER_POST = 10_000;

/** Same shape as cluster-file ids (config.ts) and titles (paths.ts): a short safe token. */
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The UTC calendar day of a time, `YYYY-MM-DD`. Days are UTC so every node agrees on them. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

export type PlaysBody = { ok: true; plays: Play[] } | { ok: false; error: string };

/** Validates `{ plays: [{ title, isp, at }] }`; the error names the first bad field. */
export function parsePlaysBody(body: unknown): PlaysBody {
  const bad = (error: string): PlaysBody => ({ ok: false, error });
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('body must be a JSON object { "plays": [...] }');
  const list = (body as { plays?: unknown }).plays;
  if (!Array.isArray(list)) return bad('plays: must be an array');
  if (list.length > MAX_PLAYS_PER_POST) return bad(`plays: at most ${MAX_PLAYS_PER_POST} per request`);
  const plays: Play[] = [];
  for (let i = 0; i < list.length; i++) {
    const p = list[i] as Record<string, unknown> | null;
    const f = `plays[${i}]`;
    if (typeof p !== 'object' || p === null || Array.isArray(p)) return bad(`${f}: must be an object`);
    if (typeof p.title !== 'string' || !ID_RE.test(p.title)) return bad(`${f}.title: must be a title id`);
    if (typeof p.isp !== 'string' || !ID_RE.test(p.isp)) return bad(`${f}.isp: must be an ISP id`);
    if (typeof p.at !== 'number' || !Number.isSafeInteger(p.at) || p.at < 0 || p.at > 8.64e15) {
      return bad(`${f}.at: must be a time in ms since the epoch`);
    }
    plays.push({ title: p.title, isp: p.isp, at: p.at });
  }
  return { ok: true, plays };
}

/** Adds plays into per-day counts, in place (the store owns the map). */
export function addPlays(days: Map<string, DayCounts>, plays: readonly Play[]): void {
  for (const p of plays) {
    const day = utcDay(p.at);
    let counts = days.get(day);
    if (!counts) days.set(day, (counts = {}));
    const byTitle = (counts[p.isp] ??= {});
    byTitle[p.title] = (byTitle[p.title] ?? 0) + 1;
  }
}

/** Drops days before `oldestKept` (a `YYYY-MM-DD`; ISO days sort as strings). */
export function pruneDays(days: Map<string, DayCounts>, oldestKept: string): void {
  for (const d of days.keys()) if (d < oldestKept) days.delete(d);
}

/** A deep copy, so callers can never change the store's counts. */
export function copyCounts(c: DayCounts | undefined): DayCounts {
  const out: DayCounts = {};
  if (!c) return out;
  for (const [isp, titles] of Object.entries(c)) out[isp] = { ...titles };
  return out;
}

/**
 * RFC 9111 freshness for a shared cache, as a value: whether a response may be stored,
 * until when it is fresh, and how long it may be served stale when the upstream fails.
 */
export interface Freshness {
  /** false for no-store and private: the bytes pass through and are never kept. */
  storable: boolean;
  /** Epoch ms until which the stored response is served without asking upstream. */
  freshUntil: number;
  /** Epoch ms until which a stale response may be served if revalidation fails (stale-if-error). */
  staleIfErrorUntil: number;
}

export interface FreshnessInput {
  cacheControl?: string;
  /** Upstream's Age header, seconds. */
  age?: string;
  lastModified?: string;
  /** Upstream's Date header. */
  date?: string;
  now: number;
}

/** Heuristic freshness is 10% of the object's age, capped (RFC 9111 §4.2.2). */
const HEURISTIC_CAP_MS = 24 * 3600 * 1000;

export function parseCacheControl(header: string | undefined): Map<string, string | true> {
  const out = new Map<string, string | true>();
  if (!header) return out;
  for (const part of header.split(',')) {
    const [rawName, ...rest] = part.split('=');
    const name = rawName!.trim().toLowerCase();
    if (!name) continue;
    const value = rest.join('=').trim().replace(/^"(.*)"$/, '$1');
    out.set(name, rest.length ? value : true);
  }
  return out;
}

/** RFC 9111 §1.2.2: delta-seconds too large to represent count as 2^31, never as absent. */
const MAX_DELTA_SECONDS = 2 ** 31;

function seconds(v: string | true | undefined): number | undefined {
  if (typeof v !== 'string' || !/^\d+$/.test(v)) return undefined;
  return v.length > 10 ? MAX_DELTA_SECONDS : Math.min(Number(v), MAX_DELTA_SECONDS);
}

export function computeFreshness(input: FreshnessInput): Freshness {
  const cc = parseCacheControl(input.cacheControl);
  const now = input.now;
  if (cc.has('no-store') || cc.has('private')) return { storable: false, freshUntil: now, staleIfErrorUntil: now };

  const ageMs = (seconds(input.age ?? undefined) ?? 0) * 1000;
  let lifetimeMs: number;
  const sMaxAge = seconds(cc.get('s-maxage'));
  const maxAge = seconds(cc.get('max-age'));
  if (cc.has('no-cache')) lifetimeMs = 0;
  else if (sMaxAge !== undefined) lifetimeMs = sMaxAge * 1000;
  else if (maxAge !== undefined) lifetimeMs = maxAge * 1000;
  else {
    const lm = input.lastModified ? Date.parse(input.lastModified) : NaN;
    const date = input.date ? Date.parse(input.date) : now;
    lifetimeMs = Number.isNaN(lm) || Number.isNaN(date) ? 0 : Math.min(Math.max(0, (date - lm) / 10), HEURISTIC_CAP_MS);
  }
  const freshUntil = now + Math.max(0, lifetimeMs - ageMs);
  const mustRevalidate = cc.has('must-revalidate') || cc.has('proxy-revalidate');
  const staleIfError = mustRevalidate ? 0 : (seconds(cc.get('stale-if-error')) ?? 0) * 1000;
  return { storable: true, freshUntil, staleIfErrorUntil: freshUntil + staleIfError };
}

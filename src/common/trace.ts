import { randomHex } from './random-ids.js';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) for following one play across
 * services. Players do not forward response headers, so steering also carries the
 * traceparent in the media URLs it emits, as the `tp` query parameter — never part of a
 * cache key or of a signature (tokens cover only the path).
 */

/** `version-traceid-parentid-flags`, lower-case hex; all-zero ids are invalid. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The query parameter that carries a traceparent in media URLs. */
export const TRACE_QUERY_PARAM = 'tp';

/** A valid traceparent, normalised to lower case, or undefined. Pure. */
export function parseTraceparent(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 128) return undefined;
  const v = value.trim().toLowerCase();
  const m = TRACEPARENT.exec(v);
  if (!m || m[1] === 'ff' || /^0+$/.test(m[2]!) || /^0+$/.test(m[3]!)) return undefined;
  return v;
}

/** A new traceparent: a fresh span id under `incoming`'s trace id, or a new trace (sampled). */
export function childTraceparent(incoming?: string): string {
  const span = randomHex(8);
  const parsed = parseTraceparent(incoming);
  if (parsed) {
    const [version, traceId, , flags] = parsed.split('-');
    return `${version}-${traceId}-${span}-${flags}`;
  }
  return `00-${randomHex(16)}-${span}-01`;
}

/** The trace id (32 hex) of a traceparent. */
export function traceIdOf(traceparent: string): string {
  return traceparent.split('-')[1] ?? '';
}

/**
 * The traceparent of a request: the `traceparent` header, else the `tp` query parameter
 * (a player following a steered URL). Invalid values are ignored.
 */
export function requestTraceparent(headers: Record<string, string | string[] | undefined>, url: string): string | undefined {
  const h = parseTraceparent(headers.traceparent);
  if (h) return h;
  const q = url.indexOf('?');
  if (q < 0 || !url.includes(`${TRACE_QUERY_PARAM}=`, q)) return undefined;
  return parseTraceparent(new URLSearchParams(url.slice(q + 1)).get(TRACE_QUERY_PARAM));
}

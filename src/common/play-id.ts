import { randomBase64url } from './random-ids.js';

/**
 * A play id names one play start steering answered. Steering puts it in every media URL it
 * emits for that play, as the `pl` query parameter — like `tp`, outside the signature (tokens
 * cover only the path) and outside the cache key (the path) — and an edge that serves a body
 * for such a URL reports the id back (GET /plays on its admin port). Only then does steering
 * count the play: fetching manifests alone never counts.
 *
 * The id carries no authority: steering counts only ids it issued itself and still holds, so a
 * made-up or replayed id counts nothing.
 */
export const PLAY_QUERY_PARAM = 'pl';

/** 16 random bytes, base64url: 22 characters. */
const PLAY_ID_RE = /^[A-Za-z0-9_-]{22}$/;

export function newPlayId(): string {
  return randomBase64url(16);
}

/** A well-formed play id, or undefined. Pure. */
export function parsePlayId(value: unknown): string | undefined {
  return typeof value === 'string' && PLAY_ID_RE.test(value) ? value : undefined;
}

/** The play id of a raw request URL (`/c/t/f?…&pl=…`), or undefined; cheap when there is none. */
export function playIdOfUrl(url: string): string | undefined {
  const q = url.indexOf('?');
  if (q < 0 || !url.includes(`${PLAY_QUERY_PARAM}=`, q)) return undefined;
  return parsePlayId(new URLSearchParams(url.slice(q + 1)).get(PLAY_QUERY_PARAM));
}

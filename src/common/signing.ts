import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signed URLs (DESIGN.md "Signed URLs"):
 *   t = base64url(HMAC-SHA256(secret[k], "{path}|{e}")), e = unix seconds of expiry.
 * `path` is the URL path exactly as it appears on the wire (percent-encoded, no query).
 */
export function signToken(secret: string, path: string, expiry: number): string {
  return createHmac('sha256', secret).update(`${path}|${expiry}`).digest('base64url');
}

/** The query string (without '?') that makes `path` valid until `nowSec + ttlSeconds`. */
export function signQuery(
  keys: Record<string, string>,
  keyId: string,
  path: string,
  nowSec: number,
  ttlSeconds: number,
): string {
  const secret = keys[keyId];
  if (secret === undefined) throw new Error(`signing key "${keyId}" is not configured`);
  const e = Math.floor(nowSec) + ttlSeconds;
  return `e=${e}&k=${encodeURIComponent(keyId)}&t=${signToken(secret, path, e)}`;
}

export type TokenVerdict =
  | { ok: true }
  | { ok: false; reason: 'missing token' | 'malformed expiry' | 'expired' | 'unknown key' | 'bad signature' };

export interface TokenParams {
  e?: string | null;
  k?: string | null;
  t?: string | null;
}

/** Checks a token against every configured key id (rotation), in constant time for the MAC. */
export function verifyToken(
  keys: Record<string, string>,
  path: string,
  params: TokenParams,
  nowSec: number,
): TokenVerdict {
  const { e, k, t } = params;
  if (!e || !k || !t) return { ok: false, reason: 'missing token' };
  if (!/^\d{1,12}$/.test(e)) return { ok: false, reason: 'malformed expiry' };
  const expiry = Number(e);
  if (expiry < nowSec) return { ok: false, reason: 'expired' };
  if (!Object.prototype.hasOwnProperty.call(keys, k)) return { ok: false, reason: 'unknown key' };
  const expected = Buffer.from(signToken(keys[k]!, path, expiry));
  const given = Buffer.from(t);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'bad signature' };
  return { ok: true };
}

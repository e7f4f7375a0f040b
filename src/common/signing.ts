import { type KeyObject, createHmac, createSecretKey, timingSafeEqual } from 'node:crypto';

/**
 * Signed URLs (docs/contract.md "Signed URLs"):
 *   t = base64url(HMAC-SHA256(secret[k], "{path}|{e}")), e = unix seconds of expiry.
 * `path` is the URL path exactly as it appears on the wire (percent-encoded, no query).
 */
export function signToken(secret: string | KeyObject, path: string, expiry: number): string {
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

// Verdicts are values: shared, never allocated per request.
const OK: TokenVerdict = Object.freeze({ ok: true });
const MISSING: TokenVerdict = Object.freeze({ ok: false, reason: 'missing token' });
const MALFORMED: TokenVerdict = Object.freeze({ ok: false, reason: 'malformed expiry' });
const EXPIRED: TokenVerdict = Object.freeze({ ok: false, reason: 'expired' });
const UNKNOWN_KEY: TokenVerdict = Object.freeze({ ok: false, reason: 'unknown key' });
const BAD_SIGNATURE: TokenVerdict = Object.freeze({ ok: false, reason: 'bad signature' });

const EXPIRY = /^\d{1,12}$/;

/** The checks before the MAC, in order; undefined when the MAC decides. */
function precheck(e: string | null | undefined, k: string | null | undefined, t: string | null | undefined, nowSec: number, hasKey: (k: string) => boolean): TokenVerdict | undefined {
  if (!e || !k || !t) return MISSING;
  if (!EXPIRY.test(e)) return MALFORMED;
  if (Number(e) < nowSec) return EXPIRED;
  if (!hasKey(k)) return UNKNOWN_KEY;
  return undefined;
}

function macMatches(secret: string | KeyObject, path: string, e: string, t: string): boolean {
  const expected = Buffer.from(signToken(secret, path, Number(e)));
  const given = Buffer.from(t);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Checks a token against every configured key id (rotation), in constant time for the MAC. */
export function verifyToken(
  keys: Record<string, string>,
  path: string,
  params: TokenParams,
  nowSec: number,
): TokenVerdict {
  const { e, k, t } = params;
  const early = precheck(e, k, t, nowSec, (id) => Object.prototype.hasOwnProperty.call(keys, id));
  if (early) return early;
  return macMatches(keys[k!]!, path, e!, t!) ? OK : BAD_SIGNATURE;
}

/** A token already verified: the MAC it carried and what it covered. */
interface Verified {
  path: string;
  e: string;
  k: string;
}

/** Tokens remembered by default: every URL a busy edge serves within a few seconds. */
export const DEFAULT_VERIFIED_TOKENS = 16_384;

/**
 * verifyToken for a server's hot path, with the same verdicts. The secrets become key objects
 * once, and a token found valid is remembered by its MAC with what it covered: the next request
 * with the same (path, e, k, t) skips the HMAC. Only the MAC is remembered, never the verdict's
 * time — expiry is checked against `nowSec` on every request, so a remembered token still
 * expires at its `e`. A MAC presented with another path, expiry or key id is verified afresh.
 */
export class TokenVerifier {
  private secrets = new Map<string, KeyObject>();
  private readonly verified = new Map<string, Verified>();
  private readonly hasKey = (k: string) => this.secrets.has(k);
  /**
   * Goes up with each setKeys: whoever remembers a verdict of this verifier (the hit path's
   * UrlBook) keeps it only while the generation it was given under is still the current one.
   */
  generation = 0;

  constructor(
    keys: Record<string, string>,
    private readonly capacity = DEFAULT_VERIFIED_TOKENS,
  ) {
    this.secrets = secretsOf(keys);
  }

  /**
   * The cluster file's keys changed (reload): later requests verify against these. Every MAC
   * remembered is forgotten — one made with a key now dropped, or whose secret changed under
   * the same id, must not pass.
   */
  setKeys(keys: Record<string, string>): void {
    this.secrets = secretsOf(keys);
    this.verified.clear();
    this.generation++;
  }

  verify(path: string, e: string | null | undefined, k: string | null | undefined, t: string | null | undefined, nowSec: number): TokenVerdict {
    const early = precheck(e, k, t, nowSec, this.hasKey);
    if (early) return early;
    const seen = this.verified.get(t!);
    if (seen !== undefined && seen.path === path && seen.e === e && seen.k === k) return OK;
    if (!macMatches(this.secrets.get(k!)!, path, e!, t!)) return BAD_SIGNATURE;
    // Oldest first out (Map keeps insertion order): bounded whatever clients send.
    if (this.verified.size >= this.capacity) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(t!, { path, e: e!, k: k! });
    return OK;
  }
}

function secretsOf(keys: Record<string, string>): Map<string, KeyObject> {
  return new Map(Object.entries(keys).map(([id, secret]) => [id, createSecretKey(Buffer.from(secret, 'utf8'))]));
}

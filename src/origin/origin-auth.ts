import { type TokenVerdict, TokenVerifier } from '../common/signing.js';

/**
 * Who may read the origin's public `/o/`: edges, and nobody else (issue 10). An edge proves it
 * is one in either of two ways:
 *   - the HMAC token players carry to edges (`e`, `k`, `t`; src/common/signing.ts), computed
 *     over the `/o/{title}/{file}` path as the origin sees it, with any key of `signing.keys`
 *     (rotation: a key keeps verifying until the cluster file drops it);
 *   - a client certificate the TLS layer verified against `origin.tls.caFile`, when
 *     `origin.tls.requireClientCert` is on (the handshake itself refuses a client without one).
 * `signing.required: false` — the lab switch that lets anyone fetch `/c/` from edges — opens
 * `/o/` as well: a cluster that trusts everyone trusts everyone everywhere.
 */

/** Why a request was refused, as the 403 body says it (`forbidden: <reason>`): verifyToken's reasons. */
export type OriginRefusal = Extract<TokenVerdict, { ok: false }>['reason'];

/** Every refusal reason, for metrics: the reason label never takes another value. */
export const ORIGIN_REFUSALS: readonly OriginRefusal[] = Object.freeze(['missing token', 'malformed expiry', 'expired', 'unknown key', 'bad signature']);

export type OriginVerdict =
  /** `by`: what admitted it — a verified client certificate, a token, or `signing.required: false`. */
  | { ok: true; by: 'client certificate' | 'token' | 'open' }
  | { ok: false; reason: OriginRefusal };

/** What the verdict looks at in a request. */
export interface OriginRequestFacts {
  /** The URL path exactly as it came on the wire (percent-encoded, no query): what the token covers. */
  path: string;
  /** The query without its '?' ('' when there is none). */
  query: string;
  /** The TLS layer verified the client's certificate against the origin's CA. */
  clientCertVerified: boolean;
  /** Unix seconds, for the token's expiry. */
  nowSec: number;
}

/** What the verdict is checked against: the cluster file's `signing` block, ready to verify. */
export interface OriginAuthPolicy {
  /** `signing.required`. */
  required: boolean;
  /** Verifies against every key of `signing.keys`. */
  tokens: TokenVerifier;
}

const BY_CERT: OriginVerdict = Object.freeze({ ok: true, by: 'client certificate' });
const BY_TOKEN: OriginVerdict = Object.freeze({ ok: true, by: 'token' });
const OPEN: OriginVerdict = Object.freeze({ ok: true, by: 'open' });

/** The verdict for one request to `/o/`. */
export function originVerdict(policy: OriginAuthPolicy, req: OriginRequestFacts): OriginVerdict {
  if (!policy.required) return OPEN;
  if (req.clientCertVerified) return BY_CERT;
  // The first occurrence of each, as the edges read them.
  const q = new URLSearchParams(req.query);
  const v = policy.tokens.verify(req.path, q.get('e'), q.get('k'), q.get('t'), req.nowSec);
  return v.ok ? BY_TOKEN : { ok: false, reason: v.reason };
}

/**
 * The policy in a holder, so a reload of the cluster file can swap the keys under a running
 * server: requests already admitted are not asked again, the next one sees the new keys.
 */
export class OriginAuth {
  private policy: OriginAuthPolicy;

  constructor(signing: { keys: Record<string, string>; required: boolean }) {
    this.policy = policyOf(signing);
  }

  /** Replaces the keys and the `required` switch (reload). */
  setSigning(signing: { keys: Record<string, string>; required: boolean }): void {
    this.policy = policyOf(signing);
  }

  check(req: OriginRequestFacts): OriginVerdict {
    return originVerdict(this.policy, req);
  }
}

function policyOf(signing: { keys: Record<string, string>; required: boolean }): OriginAuthPolicy {
  return { required: signing.required, tokens: new TokenVerifier(signing.keys) };
}

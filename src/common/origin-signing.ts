import { signQuery } from './signing.js';

/**
 * Lifetime of the token a caller puts on its own request to the origin's `/o/` (edges'
 * misses and fills, steering's manifest fetches). The request is sent the moment it is signed,
 * so the token only has to outlive the trip and any clock skew between caller and origin:
 * five minutes covers a skew NTP would never allow, and a URL that leaks (a proxy's log, a
 * packet capture) stops opening the origin soon after. Players' tokens live signing.ttlSeconds
 * because a player holds its manifest's URLs for hours; these are never handed to anyone.
 */
export const ORIGIN_TOKEN_TTL_SECONDS = 300;

/** The keys a caller of the origin signs with: the cluster file's `signing` block. */
export interface OriginSigner {
  keys: Record<string, string>;
  activeKey: string;
}

/**
 * `/o/{title}/{file}?e=…&k=…&t=…`, signed with the active key. The token covers the path as
 * the origin sees it, `/o/{title}/{file}`: a base path in the origin's URL belongs to a proxy
 * in front, which has to strip it (the origin only routes `/o/`), so it is not signed.
 * `title` and `file` are as they go on the wire.
 */
export function signedOriginPath(signer: OriginSigner, title: string, file: string, nowSec: number): string {
  const path = `/o/${title}/${file}`;
  return `${path}?${signQuery(signer.keys, signer.activeKey, path, nowSec, ORIGIN_TOKEN_TTL_SECONDS)}`;
}

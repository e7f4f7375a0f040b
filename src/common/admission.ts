/**
 * What to do with a new connection, given how many are open. Pure: the caller tracks sockets.
 *
 * Under the cap a connection is accepted. At the cap, a keep-alive connection idle between
 * requests is the cheapest to lose (its client reconnects on its next request; HTTP clients
 * retry an idempotent request on a reused connection that closed), so the longest-idle one
 * makes room. With none idle, the newcomer is refused with a 503: an answer it can act on
 * (try the next edge, retry later) rather than a connection accepted and starved.
 */
export type Admission<S> = { kind: 'accept' } | { kind: 'shed-idle'; victim: S } | { kind: 'refuse' };

/**
 * @param open connections open now (the newcomer not counted)
 * @param max the cap
 * @param longestIdle the keep-alive connection idle the longest, if any
 */
export function admitConnection<S>(open: number, max: number, longestIdle: S | undefined): Admission<S> {
  if (open < max) return { kind: 'accept' };
  if (longestIdle !== undefined) return { kind: 'shed-idle', victim: longestIdle };
  return { kind: 'refuse' };
}

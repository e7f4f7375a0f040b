import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { sendError } from '../common/http-app.js';
import { playIdOfUrl } from '../common/play-id.js';
import { SeenPlays } from './play-seen.js';

/** Ids kept: far more play starts than one edge sees between two steering polls. */
export const DEFAULT_SEEN_PLAYS = 65_536;
/** Largest page of GET /plays; a reader that is behind reads again at once (`more`). */
export const SEEN_PLAYS_PAGE = 10_000;

/**
 * Wires play confirmation into an edge: a GET answered 200/206 for a URL carrying a play id
 * records the id, and `GET /plays?since=SEQ` on the admin port (behind the admin guard) reads
 * them. Hooks are added to the instances themselves (not a registered plugin) so they see
 * every route.
 */
export function registerSeenPlays(publicApp: FastifyInstance, adminApp: FastifyInstance, capacity = DEFAULT_SEEN_PLAYS): SeenPlays {
  const seen = new SeenPlays(capacity, randomBytes(8).toString('hex'));
  publicApp.addHook('onResponse', async (req, reply) => {
    // A body was sent: HEAD, 304, 4xx and 5xx are not the segment traffic of a play.
    if (req.method !== 'GET' || (reply.statusCode !== 200 && reply.statusCode !== 206)) return;
    const id = playIdOfUrl(req.url);
    if (id) seen.record(id);
  });
  adminApp.get('/plays', async (req, reply) => {
    const raw = (req.query as { since?: unknown }).since ?? '0';
    if (typeof raw !== 'string' || !/^\d{1,15}$/.test(raw)) return sendError(reply, 400, 'since: must be a sequence number (a non-negative integer)');
    return reply.header('cache-control', 'no-store').send(seen.since(Number(raw), SEEN_PLAYS_PAGE));
  });
  return seen;
}

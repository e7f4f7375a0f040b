import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { sendError } from '../common/http-app.js';
import { playIdOfUrl } from '../common/play-id.js';
import { SeenPlays, type SeenPlaysPage } from './play-seen.js';

/** Ids kept: far more play starts than one edge sees between two steering polls. */
export const DEFAULT_SEEN_PLAYS = 65_536;
/** Largest page of GET /plays; a reader that is behind reads again at once (`more`). */
export const SEEN_PLAYS_PAGE = 10_000;

/** A ring of seen play ids for one edge process (its instance id changes at every start). */
export function newSeenPlays(capacity = DEFAULT_SEEN_PLAYS): SeenPlays {
  return new SeenPlays(capacity, randomBytes(8).toString('hex'));
}

/**
 * Records play ids on a public instance: a GET answered 200/206 for a URL carrying a play id.
 * The hook is added to the instance itself (not a registered plugin) so it sees every route.
 */
export function recordSeenPlays(publicApp: FastifyInstance, seen: SeenPlays): void {
  publicApp.addHook('onResponse', async (req, reply) => {
    // A body was sent: HEAD, 304, 4xx and 5xx are not the segment traffic of a play.
    if (req.method !== 'GET' || (reply.statusCode !== 200 && reply.statusCode !== 206)) return;
    const id = playIdOfUrl(req.url);
    if (id) seen.record(id);
  });
}

/** `GET /plays?since=SEQ` on an admin instance (behind its guard): steering reads the ids. */
export function registerPlaysRoute(adminApp: FastifyInstance, seen: { since(since: number, limit: number): SeenPlaysPage | Promise<SeenPlaysPage> }): void {
  adminApp.get('/plays', async (req, reply) => {
    const raw = (req.query as { since?: unknown }).since ?? '0';
    if (typeof raw !== 'string' || !/^\d{1,15}$/.test(raw)) return sendError(reply, 400, 'since: must be a sequence number (a non-negative integer)');
    return reply.header('cache-control', 'no-store').send(await seen.since(Number(raw), SEEN_PLAYS_PAGE));
  });
}

/**
 * Wires play confirmation into an edge: play ids of media served are recorded on the public
 * instance and read on the admin one, where steering counts a play only once its segments flow.
 */
export function registerSeenPlays(publicApp: FastifyInstance, adminApp: FastifyInstance, capacity = DEFAULT_SEEN_PLAYS): SeenPlays {
  const seen = newSeenPlays(capacity);
  recordSeenPlays(publicApp, seen);
  registerPlaysRoute(adminApp, seen);
  return seen;
}

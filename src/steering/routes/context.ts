import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { Clock } from '../../common/clock.js';
import { sendError } from '../../common/http-app.js';
import type { Logger } from '../../common/logger.js';
import type { CatalogSource } from '../catalog.js';
import type { HealthPoller } from '../health-poller.js';
import type { SteeringMetrics } from '../metrics.js';
import type { MpdCache } from '../mpd-cache.js';
import type { PlayGate } from '../play-gate.js';
import type { PlayReporter } from '../play-reporter.js';
import type { Topology } from '../topology.js';
import type { Decision, DecisionState } from './decision-state.js';

/** What steering's routes share: built once by the factory, read by every route file. */
export interface SteeringRouteContext {
  state: DecisionState;
  clock: Clock;
  logger: Logger;
  catalog: CatalogSource;
  metrics: SteeringMetrics;
  registry: Registry;
  health: HealthPoller;
  plays: PlayReporter;
  playGate: PlayGate;
  mpdCache: MpdCache;
  /** Base URL written into manifests (the bound address once a test's listener is up). */
  publicUrl(): string;
}

export type DecisionKind = 'play' | 'steer' | 'locate';

export const countDecision = (ctx: SteeringRouteContext, kind: DecisionKind, isp: string | undefined, outcome: string) =>
  ctx.metrics.decisions.inc({ kind, isp: isp ?? 'none', outcome });

/** The raw path after a route's prefix (not decoded: parseObjectPath checks it as sent). */
export const rawRest = (req: FastifyRequest, prefix: string) => {
  const path = req.url.split('?')[0]!;
  return path.slice(prefix.length);
};

/**
 * Whether the title (and file) is in the catalog; a miss refreshes the catalog (rate-limited)
 * once. With `arrived` (monotonic ms), 'unknown' only from a catalog fetched since then —
 * else 'not-sure' (a title just ingested is not declared gone from a view older than it).
 */
export async function lookup(catalog: CatalogSource, title: string, file?: string, arrived?: number): Promise<'found' | 'unknown' | 'not-sure' | 'no-catalog'> {
  const has = (v = catalog.current()) => {
    const t = v?.titles.get(title);
    return t !== undefined && (file === undefined || t.files.has(file));
  };
  if (has()) return 'found';
  if (arrived === undefined) {
    const v = await catalog.refreshAfterMiss();
    if (!v) return 'no-catalog';
    return has(v) ? 'found' : 'unknown';
  }
  const { view, fresh } = await catalog.viewAfter(arrived);
  if (!view) return 'no-catalog';
  return has(view) ? 'found' : fresh ? 'unknown' : 'not-sure';
}

/** Common checks: path, catalog, healthy edges. Returns the decision or sends the error. */
export async function prepare(
  ctx: SteeringRouteContext,
  req: FastifyRequest,
  reply: FastifyReply,
  topo: Topology,
  kind: DecisionKind,
  title: string,
  file?: string,
): Promise<Decision | undefined> {
  const count = (isp: string | undefined, outcome: string) => countDecision(ctx, kind, isp, outcome);
  // A 410 is permanent for players: a steering manifest's title is declared gone only by a
  // catalog fetched after the request arrived.
  const found = await lookup(ctx.catalog, title, file, kind === 'steer' ? ctx.clock.monotonic() : undefined);
  if (found === 'not-sure') {
    count(undefined, 'catalog_stale');
    sendError(reply, 503, `title "${title}" is not in the catalog steering holds, which cannot be refreshed now`, {
      'retry-after': String(Math.max(1, Math.ceil(ctx.catalog.missRefreshMs / 1000))),
    });
    return undefined;
  }
  if (found === 'no-catalog') {
    count(undefined, 'origin_error');
    sendError(reply, 503, 'catalog unavailable: the origin cannot be reached', { 'retry-after': '5' });
    return undefined;
  }
  if (found === 'unknown') {
    // A steering manifest is asked for by players that got it with a play: its title has left
    // the catalog, and 410 tells them to stop reloading it (HLS and DASH-IF content steering).
    if (kind === 'steer') {
      count(undefined, 'gone');
      sendError(reply, 410, `title "${title}" is no longer in the catalog`);
      return undefined;
    }
    count(undefined, 'not_found');
    sendError(reply, 404, file === undefined ? `unknown title "${title}"` : `"${file}" is not a file of "${title}"`);
    return undefined;
  }
  const d = ctx.state.decide(req, topo, title);
  if (d.edges.length === 0) {
    count(d.isp, 'no_edge');
    sendError(reply, 503, 'no healthy edge', { 'retry-after': topo.retryAfter });
    return undefined;
  }
  return d;
}

import type { FastifyInstance } from 'fastify';
import { sendError } from '../../common/http-app.js';
import { parseObjectPath } from '../../common/paths.js';
import { TRACE_QUERY_PARAM, childTraceparent, requestTraceparent } from '../../common/trace.js';
import { createLocatePath } from '../locate-path.js';
import { decideForClient } from '../ranking.js';
import { type SteeringRouteContext, countDecision, prepare, rawRest } from './context.js';
import { signedPath } from './decision-state.js';

/** GET /v1/locate/{title}/{file}: the client's edges for one file, as signed URLs (JSON). */
export function registerLocateRoutes(app: FastifyInstance, ctx: SteeringRouteContext): void {
  const { state } = ctx;
  const count = (isp: string | undefined, outcome: string) => countDecision(ctx, 'locate', isp, outcome);

  app.get('/v1/locate/*', async (req, reply) => {
    const topo = state.topology;
    const parsed = parseObjectPath(rawRest(req, '/v1/locate/'));
    if (!parsed.ok) {
      count(undefined, 'bad_request');
      return sendError(reply, 400, parsed.reason);
    }
    const { title, file } = parsed;
    const d = await prepare(ctx, req, reply, topo, 'locate', title, file);
    if (!d) return reply;
    count(d.isp, 'ok');
    const traceparent = childTraceparent(requestTraceparent(req.headers, req.url));
    const query = `${state.signedQueryFor(topo, title, file)}&${TRACE_QUERY_PARAM}=${traceparent}`;
    const path = signedPath(title, file);
    return reply.header('cache-control', 'no-store').header('traceparent', traceparent).send({
      title,
      file,
      isp: d.isp ?? null,
      urls: d.edges.map((e) => ({ edge: e.id, url: `${e.url}${path}?${query}` })),
    });
  });
}

/**
 * A 200 of /v1/locate answered in front of the framework, with the route's decision and bytes
 * (locate-path.ts); everything else, its errors included, goes to the route above.
 */
export function locateFront(ctx: Pick<SteeringRouteContext, 'state' | 'catalog' | 'metrics' | 'logger'>) {
  const { state, catalog, metrics } = ctx;
  const locateAnswered = new Map<string, { inc(): void }>();
  return createLocatePath({
    decide: (peer, forwardedFor, title) => {
      const d = decideForClient(state.decisionContext(state.topology), peer, forwardedFor, title);
      return { isp: d.isp, edges: d.ranked.map((r) => r.edge) };
    },
    has: (title, file) => catalog.current()?.titles.get(title)?.files.has(file) === true,
    signedQuery: (title, file) => state.signedQueryFor(state.topology, title, file),
    answered: (isp) => {
      // The counter's child per ISP: labels hashed once, not on every answer.
      const key = isp ?? 'none';
      let c = locateAnswered.get(key);
      if (c === undefined) locateAnswered.set(key, (c = metrics.decisions.labels({ kind: 'locate', isp: key, outcome: 'ok' })));
      c.inc();
    },
    logger: ctx.logger,
    logLevel: 'debug',
  });
}

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Counter } from 'prom-client';
import { sendError } from '../../common/http-app.js';
import { isValidTitle } from '../../common/paths.js';
import { TitleLadders } from '../ladder.js';
import { manifestCmsdDynamic } from '../isp-duress.js';
import { type HintOutcome, InfoLineBudget, applyPlayerHints, isDeferrable, isLowThroughput, overBudgetAnswer, parsePlayerHints, steeringTtlFor } from '../player-hints.js';
import { buildSteeringManifest, steeringManifestUrl } from '../steer-manifest.js';
import { type SteeringRouteContext, countDecision, prepare } from './context.js';
import type { Decision } from './decision-state.js';

/**
 * GET /v1/steer/{title}.json: the content steering manifest players reload — pathways in the
 * order decided now, with what the player's hints (_HLS_pathway, _DASH_pathway) came to.
 */
export function registerSteerRoutes(app: FastifyInstance, ctx: SteeringRouteContext): void {
  const { clock, catalog, state } = ctx;
  const ladders = new TitleLadders(
    {
      manifestsOf: (title) => {
        const t = catalog.current()?.titles.get(title);
        return t ? { manifests: t.entry.manifests, digests: t.digests } : undefined;
      },
      manifestText: (title, file) => catalog.manifest(title, file),
    },
    () => clock.monotonic(),
  );
  const hintOutcomes = new Counter({
    name: 'reelcdn_steering_hints_total',
    help: 'Steering manifest reloads by what the player hints (_HLS_pathway, _DASH_pathway) came to: none, stay, moved-down, moved-over-bound, moved-low-throughput, moved-home, unknown-pathway',
    labelNames: ['outcome'],
    registers: [ctx.registry],
  });
  const count = (isp: string | undefined, outcome: string) => countDecision(ctx, 'steer', isp, outcome);
  const logHint = hintLogger(ctx);

  app.get('/v1/steer/:name', async (req, reply) => {
    const topo = state.topology;
    const name = (req.params as { name: string }).name;
    const title = name.endsWith('.json') ? name.slice(0, -'.json'.length) : '';
    if (!isValidTitle(title)) {
      count(undefined, 'bad_request');
      return sendError(reply, 400, 'expected /v1/steer/{title}.json');
    }
    const d = await prepare(ctx, req, reply, topo, 'steer', title);
    if (!d) return reply;
    const hints = parsePlayerHints(req.query as Record<string, unknown>);
    // The ladder only as known now (read in the background, per manifest version): never waited for.
    const floor = hints?.reports.some((r) => r.throughputBps !== undefined) ? ladders.floorNow(title) : undefined;
    const steered = applyPlayerHints(d.ranked, hints, { isKnownEdge: (id) => topo.edgesById.has(id), isLow: (bps) => isLowThroughput(bps, floor) });
    hintOutcomes.inc({ outcome: steered.outcome });
    const priority = steered.ranked.map((r) => r.edge.id);
    if (hints) logHint(req, title, d, hints, steered.outcome, priority[0]!, floor);
    let ttlSeconds = steeringTtlFor(d.isp, state.ispsWithDownEdge, state.anyEdgeDown, topo.steeringTtlSeconds, topo.config.steering.incidentTtlSeconds);
    // Over the budget, reloads give way — after the hints are read: a player that must move
    // (pathway down, over the bound, far below the ladder) is answered at once, and what it
    // spends is what the others give way to. Keyed by the trusted client address.
    const verdict = state.budget.take(clock.monotonic(), d.spreadKey, !isDeferrable(steered.outcome));
    if (!verdict.ok) {
      if (overBudgetAnswer(hints?.protocol) === '429') {
        count(d.isp, 'over_budget');
        return sendError(reply, 429, 'steering is over its decision budget: keep the current pathway', { 'retry-after': String(verdict.retryAfterSec) });
      }
      count(d.isp, 'deferred');
      ttlSeconds += verdict.retryAfterSec;
    } else {
      count(d.isp, 'ok');
    }
    return reply
      .header('cache-control', 'no-store')
      .header('cmsd-dynamic', manifestCmsdDynamic(d.isp, state.ispsDegraded))
      .send(buildSteeringManifest({ ttlSeconds, reloadUri: steeringManifestUrl(ctx.publicUrl(), title), priority }));
  });
}

type PlayerHints = NonNullable<ReturnType<typeof parsePlayerHints>>;

/** What a player told us and what came of it: info when it moves the player (sampled), else debug. */
function hintLogger({ clock, logger }: SteeringRouteContext) {
  // Moves reach the info log a few a second (hints are the client's to forge); the rest at debug.
  const movedLines = new InfoLineBudget(5);
  return (req: FastifyRequest, title: string, d: Decision, hints: PlayerHints, outcome: HintOutcome, first: string, floor: number | undefined) => {
    const moved = outcome.startsWith('moved-');
    const line = {
      reqId: req.id,
      title,
      client: d.client,
      isp: d.isp ?? null,
      protocol: hints.protocol,
      pathway: hints.current,
      throughputBps: hints.reports.find((r) => r.pathway === hints.current)?.throughputBps ?? null,
      reports: hints.protocol === 'dash' ? hints.reports : undefined,
      malformed: hints.malformed.length > 0 ? hints.malformed : undefined,
      ladderFloorBps: floor ?? null,
      outcome,
      first,
    };
    const sample = moved ? movedLines.take(clock.monotonic()) : undefined;
    if (sample?.info) logger.info(sample.suppressed > 0 ? { ...line, suppressed: sample.suppressed } : line, 'player hint: moved');
    else logger.debug(line, 'player hint');
  };
}

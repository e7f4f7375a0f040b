import type { FastifyInstance } from 'fastify';
import { type Dispatcher, request } from 'undici';
import type { Clock } from '../common/clock.js';
import type { EdgeConfig } from '../common/config.js';
import { sendError } from '../common/http-app.js';
import type { Logger } from '../common/logger.js';
import { type PurgeSelector, describePurge, parsePurgeSelector } from '../common/purge-selector.js';
import { type EdgeHealth, isEligible } from './health.js';

/**
 * Operator actions on steering's admin port, fanned out to the edges' admin ports with the
 * admin token (`reelcdn purge`, the dashboard's drain buttons):
 *
 *   POST /v1/purge    {title, file?} | {title?, prefix}   every edge of the cluster file
 *   POST /v1/drain    {id}                                one edge: steered away from, still serving
 *   POST /v1/undrain  {id}
 *
 * An edge that cannot be reached, or answers 5xx, is asked again after each of `retryDelaysMs`
 * (default 0.5, 1 and 2 s: four attempts within about 4 s plus the requests' own timeouts);
 * a 4xx is its answer and is not retried. A purge goes down the parent chains (`purgeTiers`):
 * an edge is asked once its parent purged, never before, and not at all if its parent could not
 * be. It answers 200 when every edge purged and 502 when one could not, with every edge's
 * outcome either way.
 */
export interface OpsRoutesOptions {
  app: FastifyInstance;
  /** The edges of the cluster file in use (a reload changes them). */
  edges: () => readonly EdgeConfig[];
  adminToken: string | undefined;
  /** Reaches the edges' admin ports (the cluster's CAs over https). */
  dispatcher: Dispatcher;
  clock: Clock;
  logger: Logger;
  /** Steering's view of an edge, and a poll of it now (a drain shows in the next answer). */
  health: { get(id: string): EdgeHealth | undefined; pollNow(id: string): Promise<void> };
  /** Waits between attempts at one edge (ms). */
  retryDelaysMs?: readonly number[];
  /** One request's header and body timeout (ms). Default 10 s. */
  requestTimeoutMs?: number;
}

export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = [500, 1000, 2000];

/** One edge's outcome of an operator action. */
export interface EdgeOutcome {
  id: string;
  isp: string;
  ok: boolean;
  /** Requests sent to it (1 + retries). */
  attempts: number;
  /** Its HTTP status, when it answered. */
  status?: number;
  /** Why it failed (its answer, or why it could not be reached). */
  error?: string;
  /** The edge's JSON answer when it succeeded. */
  answer?: Record<string, unknown>;
}

export function registerOpsRoutes(o: OpsRoutesOptions): void {
  const { app, logger } = o;
  const delays = o.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  const call = (edge: EdgeConfig, path: string, body: unknown) => callWithRetries(edge, path, body, o, delays);

  app.post('/v1/purge', async (req, reply) => {
    const parsed = parsePurgeSelector(req.body);
    if (!parsed.ok) return sendError(reply, 400, parsed.reason);
    const sel: PurgeSelector = parsed.selector;
    const edges = o.edges();
    const done = new Map<string, EdgeOutcome>();
    for (const tier of purgeTiers(edges)) {
      await Promise.all(
        tier.map(async (e) => {
          const parent = e.parent === undefined ? undefined : done.get(e.parent);
          done.set(e.id, parent && !parent.ok ? notAsked(e, parent.id) : await call(e, '/purge', sel));
        }),
      );
    }
    const outcomes = edges.map((e) => done.get(e.id)!);
    const complete = outcomes.every((x) => x.ok);
    const what = describePurge(sel);
    const failed = outcomes.filter((x) => !x.ok).map((x) => x.id);
    if (complete) logger.info({ what, edges: edges.length }, 'purge fanned out');
    else logger.warn({ what, failed }, 'purge fanned out; some edges could not be purged');
    return reply.code(complete ? 200 : 502).header('cache-control', 'no-store').send({
      purge: sel,
      what,
      complete,
      edges: outcomes.map((x) => ({
        id: x.id,
        isp: x.isp,
        ok: x.ok,
        attempts: x.attempts,
        ...(x.status !== undefined ? { status: x.status } : {}),
        ...(x.ok ? { purged: x.answer?.purged ?? 0, bytes: x.answer?.bytes ?? 0 } : { error: x.error }),
      })),
    });
  });

  for (const [path, on] of [['/v1/drain', true], ['/v1/undrain', false]] as const) {
    app.post(path, async (req, reply) => {
      const b = (req.body ?? {}) as { id?: unknown };
      if (typeof b !== 'object' || typeof b.id !== 'string' || b.id === '') return sendError(reply, 400, 'id: missing (body {"id": "EDGE_ID"})');
      const edge = o.edges().find((e) => e.id === b.id);
      if (!edge) return sendError(reply, 404, `id: "${b.id.slice(0, 64)}" is not an edge of the cluster file`);
      const x = await call(edge, on ? '/drain' : '/undrain', {});
      if (!x.ok) return sendError(reply, 502, `${edge.id} could not be ${on ? 'drained' : 'undrained'} after ${x.attempts} attempt(s): ${x.error}`);
      // Steering's own view follows at once; other steering replicas at their next poll.
      await o.health.pollNow(edge.id);
      const h = o.health.get(edge.id);
      logger.info({ edge: edge.id, changed: x.answer?.changed, state: h?.state }, on ? 'edge drained by an operator' : 'edge undrained by an operator');
      return reply.header('cache-control', 'no-store').send({
        id: edge.id,
        drained: on,
        changed: x.answer?.changed ?? null,
        edgeStatus: x.answer?.status ?? null,
        steering: h ? { state: h.state, reason: h.reason, eligible: isEligible(h) } : null,
      });
    });
  }
}

/**
 * The edges in the order a purge reaches them: tiers by depth in the parent chains, roots first.
 * A child purged before its parent could refill, under traffic, from the parent's copy that is
 * about to go, and keep it after the purge answered. Edges of one tier are purged at once. A
 * parent that is not an edge of the list (or a chain that loops, which the cluster check
 * refuses) counts as none.
 */
export function purgeTiers(edges: readonly EdgeConfig[]): EdgeConfig[][] {
  const byId = new Map(edges.map((e) => [e.id, e]));
  const depth = (e: EdgeConfig): number => {
    let d = 0;
    for (let p = e.parent; p !== undefined && byId.has(p) && d < edges.length; p = byId.get(p)!.parent) d++;
    return d;
  };
  const tiers: EdgeConfig[][] = [];
  for (const e of edges) (tiers[depth(e)] ??= []).push(e);
  return tiers.filter((t) => t !== undefined);
}

/** An edge left alone because its parent could not be purged: purged now, it would refill from the parent's copy. */
function notAsked(edge: EdgeConfig, parent: string): EdgeOutcome {
  return { id: edge.id, isp: edge.isp, ok: false, attempts: 0, error: `not asked: its parent ${parent} was not purged (it would refill from its parent's copy)` };
}

/** POSTs `body` to one edge's admin `path`, again after each delay while it cannot be reached or answers 5xx. */
async function callWithRetries(edge: EdgeConfig, path: string, body: unknown, o: OpsRoutesOptions, delays: readonly number[]): Promise<EdgeOutcome> {
  let last: Omit<EdgeOutcome, 'attempts'> = { id: edge.id, isp: edge.isp, ok: false, error: 'not asked' };
  for (let attempt = 0; attempt <= delays.length; attempt++) {
    if (attempt > 0) await sleep(o.clock, delays[attempt - 1]!);
    const r = await callOnce(edge, path, body, o);
    last = { id: edge.id, isp: edge.isp, ...r };
    if (r.ok || !r.retry) return { ...last, attempts: attempt + 1 };
  }
  return { ...last, attempts: delays.length + 1 };
}

async function callOnce(
  edge: EdgeConfig,
  path: string,
  body: unknown,
  o: OpsRoutesOptions,
): Promise<{ ok: true; status: number; answer: Record<string, unknown> } | { ok: false; retry: boolean; status?: number; error: string }> {
  const timeout = o.requestTimeoutMs ?? 10_000;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (o.adminToken) headers.authorization = `Bearer ${o.adminToken}`;
  let res;
  try {
    res = await request(`${edge.adminUrl}${path}`, { method: 'POST', headers, body: JSON.stringify(body), dispatcher: o.dispatcher, headersTimeout: timeout, bodyTimeout: timeout });
  } catch (err) {
    const e = err as Error & { code?: string };
    return { ok: false, retry: true, error: `cannot be reached at ${edge.adminUrl} (${e.code ?? e.message})` };
  }
  let text: string;
  try {
    text = await res.body.text();
  } catch (err) {
    return { ok: false, retry: true, status: res.statusCode, error: `answer cut short (${(err as Error).message})` };
  }
  let answer: Record<string, unknown> = {};
  try {
    answer = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // said as text below
  }
  if (res.statusCode === 200) return { ok: true, status: 200, answer };
  const said = typeof answer.error === 'string' ? answer.error : text.trim().slice(0, 200);
  return { ok: false, retry: res.statusCode >= 500 || res.statusCode === 429, status: res.statusCode, error: `HTTP ${res.statusCode}: ${said}` };
}

function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms));
}

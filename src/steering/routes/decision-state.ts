import type { FastifyRequest } from 'fastify';
import type { Clock } from '../../common/clock.js';
import type { EdgeConfig } from '../../common/config.js';
import { signQuery } from '../../common/signing.js';
import { type LoadBounds, LoadTracker, computeBounds } from '../bounded-load.js';
import { DecisionBudget } from '../decision-budget.js';
import { type EdgeHealth, type PollResult, isEligible, isLastResort } from '../health.js';
import { degradedIsps } from '../isp-duress.js';
import { type DecisionContext, type RankedEdge, decideForClient } from '../ranking.js';
import type { Topology } from '../topology.js';

/** The decision for one client and title. */
export interface Decision {
  /** The client address decided on (socket or trusted X-Forwarded-For). */
  client: string;
  isp: string | undefined;
  edges: EdgeConfig[];
  /** The same edges with the rule that placed each (hints and explain read it). */
  ranked: RankedEdge<EdgeConfig>[];
  /** A stable number for the client address (ranking's spread, the decision budget's client key). */
  spreadKey: number;
}

export const signedPath = (title: string, file: string) => `/c/${title}/${file}`;

/**
 * Everything a request is decided with, in one place: the topology (a reload swaps it whole),
 * and what the last poll left — eligible edges, last resorts, load bounds, ISPs in duress.
 * Recomputed per poll, not per request; routes read the fields at the moment they decide.
 */
export class DecisionState {
  topology: Topology;
  // Eligible edges are recomputed after each poll, not per request; so are the last resorts
  // (down for their error ratio alone), offered only when no edge at all is eligible.
  eligible = new Set<string>();
  lastResort = new Set<string>();
  // Bounded loads: every edge's latest load against its ISP's mean, recomputed per poll (not
  // per request); and the ISPs with an edge down, whose players get the incident TTL.
  readonly loads = new LoadTracker();
  bounds: LoadBounds;
  ispsWithDownEdge = new Set<string>();
  anyEdgeDown = false;
  /** ISPs whose players get `du` in the CMSD-Dynamic of their manifests (isp-duress.ts). */
  ispsDegraded = new Set<string>();
  budget: DecisionBudget;
  // Tokens depend on (path, whole second): memoised so a hot title signs once a second, not per request.
  // A reload with other keys replaces the map (a token of the old active key is never handed out after it).
  private tokenCache = new Map<string, { sec: number; query: string }>();

  constructor(
    topology: Topology,
    private readonly clock: Clock,
    /** Edges that hold a title (ranked first). */
    private readonly holders: (title: string) => ReadonlySet<string> | undefined,
    /** The health poller's view of an edge now. */
    private readonly healthOf: (id: string) => EdgeHealth | undefined,
  ) {
    this.topology = topology;
    const st = topology.config.steering;
    this.bounds = computeBounds([], this.loads.all(), this.eligible, st.balanceFactor);
    this.budget = new DecisionBudget(st.decisionBudget.perSecond, st.decisionBudget.burst);
  }

  /** One poll's result for an edge of the current file. */
  observePoll(edgeId: string, result: PollResult, h: EdgeHealth): void {
    this.eligible = withMember(this.eligible, edgeId, isEligible(h));
    this.lastResort = withMember(this.lastResort, edgeId, isLastResort(h));
    // The latest report is the load; a down edge's is forgotten (it comes back judged by new ones).
    if (h.state === 'down') this.loads.forget(edgeId);
    else if (result.ok) this.loads.observe(edgeId, result.report);
    this.rebalance();
  }

  rebalance(): void {
    const topo = this.topology;
    this.bounds = computeBounds(topo.edges, this.loads.all(), this.eligible, topo.config.steering.balanceFactor);
    const down = new Set<string>();
    for (const e of topo.edges) if (this.healthOf(e.id)?.state === 'down') down.add(e.isp);
    this.ispsWithDownEdge = down;
    this.anyEdgeDown = down.size > 0;
    this.ispsDegraded = degradedIsps(topo.edges, (id) => this.healthOf(id)?.state, this.eligible, this.bounds);
  }

  /** A reload's new topology, once the pollers hold its edges. */
  swap(next: Topology, prev: Topology, eligible: Set<string>, snapshot: ReadonlyMap<string, EdgeHealth>): void {
    this.topology = next;
    this.eligible = eligible;
    this.lastResort = lastResortIds(snapshot);
    this.rebalance();
    const b = next.config.steering.decisionBudget;
    if (b.perSecond !== prev.config.steering.decisionBudget.perSecond || b.burst !== prev.config.steering.decisionBudget.burst) this.budget = new DecisionBudget(b.perSecond, b.burst);
    // A token of the old keys is never handed out after the swap.
    if (next.signingTag !== prev.signingTag) this.tokenCache = new Map();
  }

  /** What every decision reads now: the topology, health and loads of the last poll. */
  decisionContext(topo: Topology): DecisionContext<EdgeConfig> {
    return {
      ispTable: topo.ispTable,
      defaultIsp: topo.defaultIsp,
      trusted: topo.trusted,
      edgesById: topo.edgesById,
      ring: topo.ring,
      eligible: this.eligible,
      lastResort: this.lastResort,
      bounds: this.bounds,
      holders: this.holders,
    };
  }

  decide(req: FastifyRequest, topo: Topology, title: string): Decision {
    const d = decideForClient(this.decisionContext(topo), req.socket.remoteAddress, req.headers['x-forwarded-for'], title);
    return { client: d.client, isp: d.isp, edges: d.ranked.map((r) => r.edge), ranked: d.ranked, spreadKey: d.spreadKey };
  }

  signedQueryFor(topo: Topology, title: string, file: string): string {
    const path = signedPath(title, file);
    const sec = Math.floor(this.clock.now() / 1000);
    const cache = this.tokenCache;
    const hit = cache.get(path);
    if (hit && hit.sec === sec) return hit.query;
    const { keys, activeKey, ttlSeconds } = topo.signing;
    const query = signQuery(keys, activeKey, path, sec, ttlSeconds);
    if (cache.size >= 100_000) cache.clear();
    // A request that read the topology before a reload does not fill the new keys' cache.
    if (topo === this.topology) cache.set(path, { sec, query });
    return query;
  }

  edgeFileUrl(topo: Topology, edge: EdgeConfig, title: string, file: string): string {
    return `${edge.url}${signedPath(title, file)}?${this.signedQueryFor(topo, title, file)}`;
  }
}

function withMember(set: Set<string>, id: string, member: boolean): Set<string> {
  if (member === set.has(id)) return set;
  const next = new Set(set);
  if (member) next.add(id);
  else next.delete(id);
  return next;
}

function lastResortIds(snapshot: ReadonlyMap<string, EdgeHealth>): Set<string> {
  const out = new Set<string>();
  for (const [id, h] of snapshot) if (isLastResort(h)) out.add(id);
  return out;
}

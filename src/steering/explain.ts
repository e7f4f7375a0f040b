import type { EdgeBound } from './bounded-load.js';
import { forwardedHops, normalise } from './client-address.js';
import { type EdgeHealth, isEligible } from './health.js';
import { longestMatchingPrefix } from './prefix-table.js';
import { type ClientDecision, type DecisionContext, type PlacementRule, type RankableEdge, decideForClient } from './ranking.js';

/**
 * Why a client goes where it goes (GET /v1/explain on steering's admin port, `reelcdn
 * explain`): the client address decided on, its ISP and the prefix that matched it, every edge
 * with its ring position for the title, health, holding and load against the bound, and the
 * final order with the rule that placed each edge. It runs the same decideForClient as the
 * public routes, on the same snapshot, so it cannot tell a different story than they act on.
 */

/** A bad explain query (400): names the parameter. */
export class ExplainInputError extends Error {
  constructor(
    readonly param: string,
    problem: string,
  ) {
    super(`${param}: ${problem}`);
    this.name = 'ExplainInputError';
  }
}

export interface ExplainInput<E extends RankableEdge> {
  /** The address asked about, as the socket peer steering would see. */
  ip: string;
  /** An X-Forwarded-For value as a proxy in front of steering would send it (optional). */
  forwardedFor?: string;
  title: string;
  ctx: DecisionContext<E>;
  /** The cluster's ISPs (for the prefix text that matched) and trusted proxies. */
  isps: readonly { id: string; prefixes: readonly string[] }[];
  trustedProxies: readonly string[];
  edges: readonly E[];
  health: ReadonlyMap<string, EdgeHealth>;
  balanceFactor: number;
}

export interface ExplainedEdge {
  id: string;
  isp: string;
  /** In the client's ISP (else an overflow candidate). */
  ownIsp: boolean;
  /** 1-based position on the title's ring over every configured edge. */
  ringPosition: number;
  health: { state: EdgeHealth['state']; reason: string; eligible: boolean; lastResort: boolean };
  holder: boolean;
  /** Smoothed load against the ISP bound; null before its first report. */
  load: (EdgeBound & { factor: number }) | null;
  /** 1-based place in the final order, or null when not offered. */
  rank: number | null;
  rule: PlacementRule | null;
  /** Why it is where it is (or why it is left out), in words. */
  why: string;
}

export interface Explanation {
  title: string;
  client: {
    /** The address asked about. */
    ip: string;
    /** The address decided on. */
    address: string;
    via: 'socket' | 'x-forwarded-for';
    /** The trusted-proxy prefix the peer matched, when X-Forwarded-For was believed or considered. */
    trustedProxy: string | null;
    note: string;
  };
  isp: {
    id: string | null;
    /** The longest prefix that matched, or null. */
    prefix: string | null;
    how: 'prefix' | 'default' | 'none';
    note: string;
  };
  balanceFactor: number;
  edges: ExplainedEdge[];
  order: { edge: string; rule: PlacementRule; overflow: boolean }[];
  summary: string;
}

/**
 * Builds the explanation (pure). Throws ExplainInputError for an `ip` that is not an address. An
 * `xff` that is not a list of addresses is not refused: the public routes ignore such a header as
 * a whole (client-address.ts), and the explanation says that is what happened.
 */
export function explain<E extends RankableEdge>(input: ExplainInput<E>): Explanation {
  const peer = normalise(input.ip.trim());
  if (peer === undefined) throw new ExplainInputError('ip', `"${clip(input.ip)}" is not an IPv4 or IPv6 address`);
  const xff = input.forwardedFor?.trim() || undefined;
  const { ctx } = input;
  const d: ClientDecision<E> = decideForClient(ctx, peer, xff, input.title);

  const trustedPrefix = ctx.trusted?.has(peer) ? longestMatchingPrefix(input.trustedProxies, peer) : null;
  const via = d.client !== peer ? 'x-forwarded-for' : 'socket';
  const hops = xff === undefined ? undefined : forwardedHops(xff);
  const allTrusted = hops !== undefined && ctx.trusted !== undefined && hops.every((h) => ctx.trusted!.has(h));
  let clientNote: string;
  if (xff === undefined) clientNote = `the socket address ${peer}`;
  else if (!ctx.trusted) clientNote = `X-Forwarded-For ignored: steering.trustedProxies is empty`;
  else if (trustedPrefix === null) clientNote = `X-Forwarded-For ignored: ${peer} is not a trusted proxy`;
  else if (hops === undefined) clientNote = `X-Forwarded-For ignored as a whole: "${clip(xff)}" is not a list of addresses; the client is the socket address ${peer}`;
  else if (allTrusted) clientNote = `${peer} is a trusted proxy (${trustedPrefix}) and so is every X-Forwarded-For hop: the client is the leftmost, ${d.client}`;
  else clientNote = `${peer} is a trusted proxy (${trustedPrefix}); the client is X-Forwarded-For's rightmost untrusted hop, ${d.client}`;

  const matchedIsp = ctx.ispTable.lookup(d.client);
  const prefix = matchedIsp === undefined ? null : longestMatchingPrefix(input.isps.find((i) => i.id === matchedIsp)?.prefixes ?? [], d.client);
  const isp: Explanation['isp'] =
    matchedIsp !== undefined
      ? { id: matchedIsp, prefix, how: 'prefix', note: `${d.client} is in ${prefix} of ${matchedIsp}` }
      : d.isp !== undefined
        ? { id: d.isp, prefix: null, how: 'default', note: `no prefix holds ${d.client}: the default ISP ${d.isp} applies` }
        : { id: null, prefix: null, how: 'none', note: `no prefix holds ${d.client} and no defaultIsp is set: every edge is a first choice` };

  const ringOrder = ctx.ring.rank(input.title);
  const holders = ctx.holders(input.title);
  const placed = new Map(d.ranked.map((r, i) => [r.edge.id, { i, r }]));
  const edges: ExplainedEdge[] = input.edges.map((e) => {
    const h = input.health.get(e.id);
    const bound = ctx.bounds?.byEdge.get(e.id);
    const p = placed.get(e.id);
    const ownIsp = d.isp === undefined || e.isp === d.isp;
    const health = {
      state: h?.state ?? 'unknown',
      reason: h?.reason ?? 'not polled yet',
      eligible: h ? isEligible(h) : false,
      lastResort: ctx.lastResort.has(e.id),
    };
    const holder = holders?.has(e.id) === true;
    const load = bound && h?.lastReport ? { ...bound, factor: input.balanceFactor } : null;
    return {
      id: e.id,
      isp: e.isp,
      ownIsp,
      ringPosition: ringOrder.indexOf(e.id) + 1,
      health,
      holder,
      load,
      rank: p ? p.i + 1 : null,
      rule: p ? p.r.rule : null,
      why: p ? ruleText(p.r.rule, p.r.overflow, load) : `not offered: ${health.state} (${health.reason})`,
    };
  });
  const order = d.ranked.map((r) => ({ edge: r.edge.id, rule: r.rule, overflow: r.overflow }));
  const summary =
    order.length === 0
      ? `no edge is offered to ${d.client} for ${input.title}: steering answers 503`
      : `${d.client} (${isp.id ?? 'no ISP'}) → ${order.map((o) => `${o.edge} [${o.overflow ? 'overflow, ' : ''}${o.rule}]`).join(', ')}`;
  return {
    title: input.title,
    client: { ip: input.ip, address: d.client, via, trustedProxy: trustedPrefix, note: clientNote },
    isp,
    balanceFactor: input.balanceFactor,
    edges,
    order,
    summary,
  };
}

function ruleText(rule: PlacementRule, overflow: boolean, load: ExplainedEdge['load']): string {
  const where = overflow ? "another ISP's edge (overflow): " : '';
  const vs = load && load.metric !== 'none' ? ` (${load.ratio.toFixed(2)}× the ISP mean in ${METRIC_WORDS[load.metric]}, bound ${load.factor}×${load.waived ? '; every edge of the ISP is over, so none counts as over' : ''})` : '';
  switch (rule) {
    case 'holder':
      return `${where}holds the title (fill) and is under the bound${vs}; holders are spread by client`;
    case 'ring':
      return `${where}the title's ring order, under the bound${vs}`;
    case 'over-bound':
      return `${where}at or over the bound${vs}: after every edge under it`;
    case 'last-resort':
      return `${where}down for its error ratio alone; offered because no edge is eligible`;
    case 'sticky':
      return `${where}the player's current pathway, kept first`;
    case 'low-throughput':
      return `${where}the player measured far below the title's lowest rendition here`;
  }
}

const METRIC_WORDS: Record<EdgeBound['metric'], string> = { connections: 'connections', bytesPerSec: 'bytes/s', none: 'nothing' };
const METRIC_SHORT: Record<EdgeBound['metric'], string> = { connections: 'conn', bytesPerSec: 'B/s', none: '' };

function clip(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}

/** The explanation as text (reelcdn explain). */
export function formatExplanation(e: Explanation): string {
  const lines: string[] = [];
  lines.push(`title   ${e.title}`);
  lines.push(`client  ${e.client.address} — ${e.client.note}`);
  lines.push(`isp     ${e.isp.id ?? '(none)'} — ${e.isp.note}`);
  lines.push(`bound   ${e.balanceFactor}× the ISP mean (connections or bytes/s)`);
  lines.push('');
  lines.push('edge                 isp          ring  state     holder  load (×mean)      rank  rule');
  for (const x of e.edges) {
    const load = x.load ? (x.load.metric === 'none' ? 'idle' : `${x.load.ratio.toFixed(2)} ${METRIC_SHORT[x.load.metric]}${x.load.over ? ' OVER' : ''}`) : '-';
    lines.push(
      `${x.id.padEnd(20)} ${x.isp.padEnd(12)} ${String(x.ringPosition).padStart(4)}  ${x.health.state.padEnd(8)}  ${(x.holder ? 'yes' : 'no').padEnd(6)}  ${load.padEnd(16)}  ${x.rank === null ? '   -' : String(x.rank).padStart(4)}  ${x.rule ?? '-'}`,
    );
  }
  lines.push('');
  lines.push('order');
  if (e.order.length === 0) lines.push('  (none: no healthy edge; steering answers 503)');
  e.edges
    .filter((x) => x.rank !== null)
    .sort((a, b) => a.rank! - b.rank!)
    .forEach((x) => lines.push(`  ${x.rank}. ${x.id}: ${x.why}`));
  for (const x of e.edges.filter((y) => y.rank === null)) lines.push(`  -  ${x.id}: ${x.why}`);
  return `${lines.join('\n')}\n`;
}

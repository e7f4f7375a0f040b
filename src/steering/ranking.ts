import type { Ring } from '../common/ring.js';
import { type LoadBounds, isOverBound } from './bounded-load.js';
import { clientAddress } from './client-address.js';
import type { PrefixTable } from './prefix-table.js';

/** What ranking needs to know of an edge. */
export interface RankableEdge {
  id: string;
  isp: string;
}

export interface RankInput<E extends RankableEdge> {
  title: string;
  /** The client's ISP, or undefined: every edge is a first choice. */
  isp: string | undefined;
  /** Every configured edge, by id. */
  edgesById: ReadonlyMap<string, E>;
  /** The ring over every configured edge id. */
  ring: Ring;
  /** Ids of edges that may take new clients (health). */
  eligible: ReadonlySet<string>;
  /** Edges that hold the title (fill manifests): ranked first inside each group while under the bound. */
  holders?: ReadonlySet<string>;
  /**
   * A stable number for the client (a hash of its address). A popular title is placed on
   * several of the ISP's edges; clients are spread over those holders by this key, each client
   * always to the same one.
   */
  spreadKey?: number;
  /** Loads against their bound (bounded-load.ts). Absent: no edge is over. */
  bounds?: LoadBounds;
  /** The edges are offered only because no edge is eligible (see health.ts `lastResort`). */
  lastResort?: boolean;
}

/**
 * Why an edge sits where it does in a ranking (explain shows it; hints add their own).
 *   holder          holds the title (fill) and is under the bound; holders are spread by client
 *   ring            the title's ring order, under the bound
 *   over-bound      at or over balanceFactor × its ISP mean: after every edge of its group under it
 *   last-resort     down for its error ratio alone, offered because no edge is eligible
 *   sticky          the player's current pathway, kept first (player-hints.ts)
 *   low-throughput  the player measured far below the title's lowest rendition there (player-hints.ts)
 */
export type PlacementRule = 'holder' | 'ring' | 'over-bound' | 'last-resort' | 'sticky' | 'low-throughput';

export interface RankedEdge<E extends RankableEdge> {
  edge: E;
  rule: PlacementRule;
  /** Another ISP's edge (the client's own ISP comes first). */
  overflow: boolean;
}

/**
 * Ranks edges for one client and title (pure), with the rule that placed each:
 *   1. the client ISP's eligible edges, then
 *   2. every other eligible edge (overflow);
 * inside each group: holders under the bound (spread over by the client's key), then the other
 * edges under the bound in the title's ring order, then the edges at or over the bound in ring
 * order — a fallback, never dropped, so a group whose every edge is busy still answers.
 * The decision reads only the title, the spread key and what the health reports said, so two
 * replicas that polled the same reports rank alike. The origin is never a candidate.
 */
export function rankWithRules<E extends RankableEdge>(input: RankInput<E>): RankedEdge<E>[] {
  const { title, isp, edgesById, ring, eligible, holders, bounds } = input;
  const ownHeld: E[] = [];
  const own: RankedEdge<E>[] = [];
  const ownOver: RankedEdge<E>[] = [];
  const otherHeld: RankedEdge<E>[] = [];
  const other: RankedEdge<E>[] = [];
  const otherOver: RankedEdge<E>[] = [];
  const anyHolders = holders !== undefined && holders.size > 0;
  for (const id of ring.rank(title)) {
    if (!eligible.has(id)) continue;
    const e = edgesById.get(id);
    if (!e) continue;
    const mine = isp === undefined || e.isp === isp;
    const over = bounds !== undefined && isOverBound(bounds, id);
    const held = anyHolders && holders.has(id);
    if (over) {
      (mine ? ownOver : otherOver).push({ edge: e, rule: 'over-bound', overflow: !mine });
    } else if (held) {
      if (mine) ownHeld.push(e);
      else otherHeld.push({ edge: e, rule: 'holder', overflow: true });
    } else {
      (mine ? own : other).push({ edge: e, rule: 'ring', overflow: !mine });
    }
  }
  const spread = spreadOverHolders(ownHeld, input.spreadKey).map((e): RankedEdge<E> => ({ edge: e, rule: 'holder', overflow: false }));
  const ranked = spread.concat(own, ownOver, otherHeld, other, otherOver);
  if (input.lastResort) for (const r of ranked) r.rule = 'last-resort';
  return ranked;
}

/** The edges only, best first (see rankWithRules). */
export function rankEdges<E extends RankableEdge>(input: RankInput<E>): E[] {
  return rankWithRules(input).map((r) => r.edge);
}

/**
 * Orders a title's holders for one client by rendezvous hashing (highest score of
 * hash(client, edge) first): clients spread evenly, each always to the same holder, and a
 * holder that leaves (down, over the bound, no longer holding) moves only its own clients —
 * a rotation by `key % holders` would reshuffle everyone's when the count changes.
 * Without a key, ring order is kept.
 */
export function spreadOverHolders<E extends RankableEdge>(held: E[], spreadKey: number | undefined): E[] {
  if (held.length < 2 || spreadKey === undefined) return held;
  const scored = held.map((e) => ({ e, s: mix32(spreadKey ^ idHash(e.id)) }));
  scored.sort((a, b) => b.s - a.s || (a.e.id < b.e.id ? -1 : 1));
  return scored.map((x) => x.e);
}

const idHashes = new Map<string, number>();
function idHash(id: string): number {
  let h = idHashes.get(id);
  if (h === undefined) {
    h = spreadKeyOf(id);
    if (idHashes.size > 10_000) idHashes.clear();
    idHashes.set(id, h);
  }
  return h;
}

/** murmur3's finaliser: every input bit reaches every output bit (unsigned 32-bit). */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** FNV-1a of a client address: a cheap, stable spread key that every steering replica computes alike. */
export function spreadKeyOf(address: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < address.length; i++) {
    h ^= address.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Client address → ISP id: the longest matching prefix, else the default ISP, else none. */
export function ispOf(table: PrefixTable<string>, address: string, defaultIsp: string | undefined): string | undefined {
  return table.lookup(address) ?? defaultIsp;
}

/** Everything a decision reads besides the request: one snapshot of config, health and loads. */
export interface DecisionContext<E extends RankableEdge> {
  ispTable: PrefixTable<string>;
  /** ISP of clients no prefix matches. */
  defaultIsp: string | undefined;
  /** Proxies whose X-Forwarded-For is believed. */
  trusted: PrefixTable<true> | undefined;
  edgesById: ReadonlyMap<string, E>;
  ring: Ring;
  eligible: ReadonlySet<string>;
  /** Down for their error ratio alone: offered only when no edge is eligible. */
  lastResort: ReadonlySet<string>;
  bounds: LoadBounds | undefined;
  holders: (title: string) => ReadonlySet<string> | undefined;
}

/** One client's ranking for one title, and what it was decided on. */
export interface ClientDecision<E extends RankableEdge> {
  /** The client address decided on (socket, or trusted X-Forwarded-For). */
  client: string;
  isp: string | undefined;
  spreadKey: number;
  ranked: RankedEdge<E>[];
}

/**
 * The whole decision for a request (every public route and explain use it): client address →
 * ISP (longest prefix, else the default) → ranking; when no edge is eligible, the last resorts.
 */
export function decideForClient<E extends RankableEdge>(
  ctx: DecisionContext<E>,
  peer: string | undefined,
  forwardedFor: string | string[] | undefined,
  title: string,
): ClientDecision<E> {
  const client = clientAddress(peer, forwardedFor, ctx.trusted);
  const isp = ctx.ispTable.lookup(client) ?? ctx.defaultIsp;
  const spreadKey = spreadKeyOf(client);
  const input: RankInput<E> = { title, isp, edgesById: ctx.edgesById, ring: ctx.ring, eligible: ctx.eligible, holders: ctx.holders(title), spreadKey, bounds: ctx.bounds };
  let ranked = rankWithRules(input);
  // Every edge failing its misses (the origin down) still serves what it holds: better than a 503.
  if (ranked.length === 0 && ctx.lastResort.size > 0) ranked = rankWithRules({ ...input, eligible: ctx.lastResort, lastResort: true });
  return { client, isp, spreadKey, ranked };
}

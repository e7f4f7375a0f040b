import type { Ring } from '../common/ring.js';
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
  /** Edges that hold the title (fill manifests): ranked first inside each group. */
  holders?: ReadonlySet<string>;
  /**
   * A stable number for the client (a hash of its address). A popular title is placed on
   * several of the ISP's edges; clients are spread over those holders by this key, each client
   * always to the same one.
   */
  spreadKey?: number;
}

/**
 * Ranks edges for one client and title (pure):
 *   1. the client ISP's healthy edges in ring order for the title,
 *   2. then every other healthy edge (overflow) in ring order;
 * inside each group, edges holding the title come first (ring order kept among them).
 * The origin is never a candidate: clients never see it.
 */
export function rankEdges<E extends RankableEdge>(input: RankInput<E>): E[] {
  const { title, isp, edgesById, ring, eligible, holders } = input;
  const own: E[] = [];
  const other: E[] = [];
  for (const id of ring.rank(title)) {
    if (!eligible.has(id)) continue;
    const e = edgesById.get(id);
    if (!e) continue;
    if (isp === undefined || e.isp === isp) own.push(e);
    else other.push(e);
  }
  if (!holders || holders.size === 0) return own.concat(other);
  const holdersFirst = (group: E[], spread: boolean) => {
    let held = group.filter((e) => holders.has(e.id));
    if (spread && held.length > 1 && input.spreadKey !== undefined) {
      const k = input.spreadKey % held.length;
      held = held.slice(k).concat(held.slice(0, k));
    }
    return held.concat(group.filter((e) => !holders.has(e.id)));
  };
  return holdersFirst(own, true).concat(holdersFirst(other, false));
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

/**
 * One ISP's placement (pure): which units go on which nodes tonight, given what the nodes were
 * asked to hold last time. Used by planFill (fill-planner.ts); see docs/fill.md.
 *
 * 1. Pinned titles go on every node first.
 * 2. The cut: units ranked by score — a unit placed last time counts as score / stayRatio, a
 *    new one as score / enterRatio — are taken until the ISP's disks (less headroom) are full;
 *    the last one taken is the cut. So a placed title stays while above stayRatio × the cut and
 *    a new one enters only above enterRatio × the cut: day-to-day noise moves nothing.
 * 3. Units above the cut are placed, those placed last time first (on the nodes that hold
 *    them: no bytes move), then new ones, best first, while each node's churn budget lasts
 *    (the room the standing plan left free, its spare copies' room included, + maxChurnRatio ×
 *    its disk): the budget goes to the biggest gains.
 * 4. Room still free (gaps, or new units the budget did not allow) keeps what was placed, in
 *    rank order, and takes new units from just below the cut: a title leaves when something
 *    better takes its room, not before.
 * 5. Spare replicas: room still free goes to extra copies of the most demanded titles, one more
 *    copy per title per round, from the nodes already holding them — only free room, so no
 *    ranked title's first copy is ever pushed out.
 */
import { Ring } from '../common/ring.js';
import type { Unit, UnitFile } from './placement-units.js';

export interface StabilityOptions {
  /** A title placed last time stays while its score is at least this share of the cut (0-1]. */
  stayRatio: number;
  /** A title not placed last time enters only at this share of the cut or above (>= stayRatio). */
  enterRatio: number;
  /** Bytes a node may be asked to fetch beyond its free space in one plan, as a share of its disk. */
  maxChurnRatio: number;
}

/** What one node was asked to hold by the standing plan, per file. */
export interface HeldFile {
  sha256: string;
  /** Bytes of the file held from its start (its size when whole). */
  end: number;
}

/** The standing plan, as one ISP's placement needs it. */
export interface Standing {
  /** title → nodes holding its planned copies, in replica order. */
  primary: ReadonlyMap<string, readonly string[]>;
  /** title → nodes holding a spare replica. */
  spare: ReadonlyMap<string, readonly string[]>;
  /** node → title → path → what it holds. */
  held: ReadonlyMap<string, ReadonlyMap<string, ReadonlyMap<string, HeldFile>>>;
}

export interface IspPlanInput {
  nodes: readonly { id: string; diskBytes: number; capacity: number }[];
  /** Units of every candidate title; pinned titles' units score Infinity. */
  units: readonly Unit[];
  /** title → copies wanted (pinned: every node). */
  replicas: ReadonlyMap<string, number>;
  /** title → predicted plays (orders spare replicas). */
  plays: ReadonlyMap<string, number>;
  standing?: Standing;
  stability?: StabilityOptions;
  spareReplicas: boolean;
  /**
   * Bytes of a file a node already has as cache (not placed): placing them costs it no fetch —
   * the fill agent verifies a cached file in place. Absent: nothing counted as cached.
   */
  cached?: (node: string, title: string, path: string) => number;
}

/** One unit as placed, in the order units were placed (the fill order). */
export interface PlacedUnit {
  title: string;
  unit: Unit;
  /** The nodes it went on (a spare replica's node alone). */
  nodes: string[];
}

export interface IspPlan {
  order: PlacedUnit[];
  /** title → its nodes in replica order (planned copies, then spares). */
  nodes: Map<string, string[]>;
  spare: Map<string, string[]>;
  /** Bytes each node is asked to fetch that it did not hold. */
  churn: Map<string, number>;
}

/** Keys of per-file maps: JSON of the parts (a delimiter could collide). */
export const fileKey = (title: string, path: string) => JSON.stringify([title, path]);

const endOf = (f: UnitFile) => f.end ?? f.file.size;

export function planIsp(input: IspPlanInput): IspPlan {
  const { standing, stability } = input;
  const ids = input.nodes.map((n) => n.id);
  const ring = new Ring(ids, { cacheSize: 0 });
  const room = new Map(input.nodes.map((n) => [n.id, n.capacity]));
  const held = (id: string) => standing?.held.get(id);
  const inIsp = (list: readonly string[] | undefined) => (list ?? []).filter((id) => room.has(id));

  // Budget: a node may refill what the standing plan leaves free (spare copies included), plus maxChurnRatio of its disk.
  const catalogSha = new Map<string, Map<string, string>>();
  for (const u of input.units) {
    let m = catalogSha.get(u.title);
    if (!m) catalogSha.set(u.title, (m = new Map()));
    for (const f of u.files) m.set(f.file.path, f.file.sha256);
  }
  const budget = new Map<string, number>();
  for (const n of input.nodes) {
    if (!stability || !standing) {
      budget.set(n.id, Infinity);
      continue;
    }
    // A spare copy's room counts as free: spares give way to any ranked title's first copy, in
    // room and in budget alike.
    let kept = 0;
    for (const [title, files] of held(n.id) ?? []) {
      const now = catalogSha.get(title);
      if (!now || standing.spare.get(title)?.includes(n.id)) continue;
      for (const [path, h] of files) if (now.get(path) === h.sha256) kept += h.end;
    }
    budget.set(n.id, Math.max(0, n.capacity - kept) + stability.maxChurnRatio * n.diskBytes);
  }
  const churn = new Map(ids.map((id) => [id, 0]));

  /** Bytes `id` must fetch to hold the unit (0 for what it holds already, same content). */
  const cost = (u: Unit, id: string): number => {
    let sum = 0;
    for (const f of u.files) {
      const end = endOf(f);
      const start = f.start ?? 0;
      const h = held(id)?.get(u.title)?.get(f.file.path);
      const have = Math.max(h && h.sha256 === f.file.sha256 ? h.end : 0, input.cached?.(id, u.title, f.file.path) ?? 0);
      sum += Math.max(0, end - Math.max(start, have));
    }
    return sum;
  };

  const prevPrimary = (title: string) => inIsp(standing?.primary.get(title));
  const prevSpare = (title: string) => inIsp(standing?.spare.get(title));
  /** Placed last time: every file of the unit was held (whatever its content now) by the title's first node. */
  const incumbent = (u: Unit): boolean => {
    const first = prevPrimary(u.title)[0];
    if (first === undefined) return false;
    const files = held(first)?.get(u.title);
    return files !== undefined && u.files.every((f) => (files.get(f.file.path)?.end ?? -1) >= endOf(f));
  };
  const placedBefore = new Map<Unit, boolean>();
  const wasPlaced = (u: Unit): boolean => {
    let x = placedBefore.get(u);
    if (x === undefined) placedBefore.set(u, (x = incumbent(u)));
    return x;
  };
  const effective = (u: Unit): number => {
    if (!stability) return u.score;
    return wasPlaced(u) ? u.score / stability.stayRatio : u.score / stability.enterRatio;
  };

  const order: PlacedUnit[] = [];
  const titleNodes = new Map<string, string[]>();
  const spare = new Map<string, string[]>();
  const closed = new Set<string>();
  /** key(title, path) → bytes placed from the start (ranges must grow without holes). */
  const placedEnd = new Map<string, number>();

  const take = (u: Unit, id: string) => {
    room.set(id, room.get(id)! - u.bytes);
    const c = cost(u, id);
    budget.set(id, budget.get(id)! - c);
    churn.set(id, churn.get(id)! + c);
  };
  const fits = (u: Unit, id: string) => {
    if (room.get(id)! < u.bytes) return false;
    const c = cost(u, id);
    // What a node holds costs nothing, even once pinned titles took the budget below zero.
    return c === 0 || budget.get(id)! >= c;
  };
  /** title → indexes of its units placed. */
  const placedUnits = new Map<string, Set<number>>();
  const contiguous = (u: Unit) =>
    (u.after === undefined || placedUnits.get(u.title)?.has(u.after) === true) &&
    u.files.every((f) => f.start === undefined || (placedEnd.get(fileKey(u.title, f.file.path)) ?? 0) === f.start);

  /** Places a unit on its title's nodes (choosing them at its first unit); false if it did not go anywhere. */
  const place = (u: Unit, force = false): boolean => {
    if (closed.has(u.title) || !contiguous(u)) return false;
    let nodes = titleNodes.get(u.title);
    if (!nodes) {
      const want = input.replicas.get(u.title) ?? 1;
      const prefs = [...new Set([...prevPrimary(u.title), ...prevSpare(u.title), ...ring.rank(u.title)])];
      nodes = [];
      for (const id of prefs) {
        if (nodes.length >= want) break;
        if (force ? room.get(id)! >= u.bytes : fits(u, id)) nodes.push(id);
      }
      if (nodes.length === 0) {
        closed.add(u.title);
        return false;
      }
      titleNodes.set(u.title, nodes);
    } else if (!nodes.every((id) => (force ? room.get(id)! >= u.bytes : fits(u, id)))) {
      return false;
    }
    for (const id of nodes) take(u, id);
    for (const f of u.files) if (f.start !== undefined) placedEnd.set(fileKey(u.title, f.file.path), endOf(f));
    (placedUnits.get(u.title) ?? placedUnits.set(u.title, new Set()).get(u.title)!).add(u.index);
    order.push({ title: u.title, unit: u, nodes: [...nodes] });
    return true;
  };

  // 1. Pinned titles: every node, whatever the budget says (the cluster file asks for them).
  const pinned = input.units.filter((u) => u.score === Infinity).sort((a, b) => (a.title < b.title ? -1 : a.title > b.title ? 1 : a.index - b.index));
  for (const u of pinned) place(u, true);
  // Titles by name as numbers: the sort below compares a million units.
  const names = [...new Set(input.units.map((u) => u.title))].sort();
  const titleNo = new Map(names.map((t, i) => [t, i]));
  const ranked = input.units
    .filter((u) => u.score !== Infinity && u.score > 0)
    .map((u) => ({ u, eff: effective(u), inc: stability ? wasPlaced(u) : false, t: titleNo.get(u.title)! }))
    .sort((a, b) => b.eff - a.eff || a.t - b.t || a.u.index - b.u.index);

  // 2. The cut: the last unit that fits, in rank order, in the ISP's room left.
  let left = [...room.values()].reduce((s, x) => s + Math.max(0, x), 0);
  let cut = -Infinity;
  for (const { u, eff } of ranked) {
    const need = (input.replicas.get(u.title) ?? 1) * u.bytes;
    if (need > left) {
      cut = eff;
      break;
    }
    left -= need;
  }

  // 3. Above the cut: what stays, then what enters (best first, within the budget).
  for (const r of ranked) if (r.eff > cut && r.inc) place(r.u);
  for (const r of ranked) if (r.eff > cut && !r.inc) place(r.u);

  // 4. Room still free, in rank order: what was placed stays until something better is let in
  //    (leaving would only free room the churn budget cannot refill: it would come back the next
  //    night); new units only from just below the cut. Without stability: pack the disks.
  const floor = stability ? cut * stability.stayRatio : -Infinity;
  for (const r of ranked) {
    if (r.eff > cut) continue;
    if (r.eff < floor && !r.inc) continue;
    place(r.u);
  }

  // 5. Spare replicas of the most demanded titles, in rounds of one more copy each.
  if (input.spareReplicas) {
    const unitsOf = new Map<string, Unit[]>();
    for (const p of order) (unitsOf.get(p.title) ?? unitsOf.set(p.title, []).get(p.title)!).push(p.unit);
    const pinnedTitles = new Set(pinned.map((u) => u.title));
    const titles = [...titleNodes.keys()]
      .filter((t) => !pinnedTitles.has(t))
      .sort((a, b) => (input.plays.get(b) ?? 0) - (input.plays.get(a) ?? 0) || (a < b ? -1 : 1));
    for (let copies = 1; copies < ids.length; copies++) {
      let added = 0;
      for (const t of titles) {
        const nodes = titleNodes.get(t)!;
        if (nodes.length !== copies) continue;
        const list = unitsOf.get(t)!;
        const bytes = list.reduce((s, u) => s + u.bytes, 0);
        const prefs = [...new Set([...prevSpare(t), ...prevPrimary(t), ...ring.rank(t)])].filter((id) => !nodes.includes(id));
        const id = prefs.find((n) => {
          if (room.get(n)! < bytes) return false;
          const c = list.reduce((s, u) => s + cost(u, n), 0);
          return c === 0 || budget.get(n)! >= c;
        });
        if (id === undefined) continue;
        for (const u of list) {
          take(u, id);
          order.push({ title: t, unit: u, nodes: [id] });
        }
        nodes.push(id);
        (spare.get(t) ?? spare.set(t, []).get(t)!).push(id);
        added++;
      }
      if (added === 0) break;
    }
  }
  return { order, nodes: titleNodes, spare, churn };
}

import { createHash } from 'node:crypto';
import { Ring } from '../common/ring.js';
import type { FillFile, FillManifest, FillSource } from '../common/fill-manifest.js';
import type { Prediction } from './popularity.js';

/** What the planner needs of a node. */
export interface PlanNode {
  id: string;
  isp: string;
  url: string;
  diskBytes: number;
}

/** What the planner needs of a title. */
export interface PlanTitle {
  title: string;
  bytes: number;
  /**
   * `weight` (optional, 0-1): the share of the title's plays expected to read the file —
   * its rendition's share × the share of sessions still watching where the file starts. When
   * any title gives weights, files are ranked one by one (plays × weight), so the placement
   * keeps the starts of many titles rather than the ends of a few (see docs/fill.md). A
   * missing weight counts as 1.
   */
  files: { path: string; size: number; sha256: string; weight?: number }[];
}

export interface PlanInput {
  nodes: PlanNode[];
  titles: PlanTitle[];
  prediction: Prediction;
  /** isp id → titles every edge of that ISP holds whatever their popularity. */
  pinned: ReadonlyMap<string, readonly string[]>;
  /** Share of each disk left for on-demand slices (0-1). */
  headroomRatio: number;
  originUrl: string;
  /** ISO time stamped on the manifests (not part of their version). */
  generatedAt: string;
}

/** Where one title goes inside an ISP: nodes in replica order (the first fills from the origin). */
export interface Placement {
  isp: string;
  title: string;
  score: number;
  nodes: string[];
  /** With file weights: the files placed (on every one of `nodes`); absent = every file. */
  files?: string[];
}

export interface Plan {
  placements: Placement[];
  manifests: Map<string, FillManifest>;
}

/**
 * Tonight's plan, per ISP: titles ranked by predicted plays (pinned titles first), each given
 * replicas in proportion to its share of the ISP's predicted bytes (at least 1, at most every
 * node), placed on the same consistent-hash ring steering uses — so steering's first choice
 * for a title is the node that holds it — and packed until each node's disk, less headroom,
 * is full. A title that does not fit on its ring-first node goes to the next one on the ring,
 * so a small change of popularity moves only the titles near the cut.
 */
export function planFill(input: PlanInput): Plan {
  const titles = new Map(input.titles.map((t) => [t.title, t]));
  const placements: Placement[] = [];
  const files = new Map<string, FillFile[]>(input.nodes.map((n) => [n.id, []]));
  const byId = new Map(input.nodes.map((n) => [n.id, n]));

  const weighted = input.titles.some((t) => t.files.some((f) => f.weight !== undefined));
  const addFiles = (title: string, chosen: string[], list: PlanTitle['files']) => {
    chosen.forEach((id, replica) => {
      // Replicas after the first fetch from the ones before them: the file leaves the origin once per ISP.
      const sources: FillSource[] = [
        ...chosen.slice(0, replica).map((peer) => ({ kind: 'peer' as const, id: peer, url: byId.get(peer)!.url })),
        { kind: 'origin', id: 'origin', url: input.originUrl },
      ];
      const out = files.get(id)!;
      for (const f of list) out.push({ title, file: f.path, size: f.size, sha256: f.sha256, rank: out.length, sources });
    });
  };

  const isps = [...new Set(input.nodes.map((n) => n.isp))].sort();
  for (const isp of isps) {
    const nodes = input.nodes.filter((n) => n.isp === isp);
    const ids = new Set(nodes.map((n) => n.id));
    const ring = new Ring(ids, { cacheSize: 0 });
    const remaining = new Map(nodes.map((n) => [n.id, Math.floor(n.diskBytes * (1 - input.headroomRatio))]));
    const predicted = input.prediction.get(isp) ?? new Map<string, number>();
    const pinned = new Set((input.pinned.get(isp) ?? []).filter((t) => titles.has(t)));

    const ranked = [...predicted]
      .filter(([t, plays]) => plays > 0 && titles.has(t) && !pinned.has(t))
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const demand = ranked.reduce((sum, [t, plays]) => sum + plays * readBytes(titles.get(t)!), 0);
    const order: { title: string; score: number; replicas: number }[] = [
      ...[...pinned].sort().map((t) => ({ title: t, score: Infinity, replicas: nodes.length })),
      ...ranked.map(([t, plays]) => {
        const share = demand > 0 ? (plays * readBytes(titles.get(t)!)) / demand : 0;
        return { title: t, score: plays, replicas: Math.min(nodes.length, Math.max(1, Math.ceil(share * nodes.length))) };
      }),
    ];

    if (weighted) {
      placeFiles(order, nodes.length, ring, remaining, titles, predicted).forEach(({ title, score, chosen, files: placed }) => {
        placements.push({ isp, title, score, nodes: chosen, files: placed.map((f) => f.path) });
        addFiles(title, chosen, placed);
      });
      continue;
    }

    for (const { title, score, replicas } of order) {
      const t = titles.get(title)!;
      const chosen: string[] = [];
      for (const id of ring.rank(title)) {
        if (chosen.length >= replicas) break;
        if ((remaining.get(id) ?? 0) < t.bytes) continue;
        chosen.push(id);
        remaining.set(id, remaining.get(id)! - t.bytes);
      }
      if (chosen.length === 0) continue;
      placements.push({ isp, title, score, nodes: chosen });
      addFiles(title, chosen, t.files);
    }
  }

  const manifests = new Map<string, FillManifest>();
  for (const node of input.nodes) {
    const list = files.get(node.id)!;
    const version = createHash('sha256').update(JSON.stringify(list)).digest('hex').slice(0, 20);
    manifests.set(node.id, {
      edgeId: node.id,
      isp: node.isp,
      version,
      generatedAt: input.generatedAt,
      titles: [...new Set(list.map((f) => f.title))],
      bytes: list.reduce((s, f) => s + f.size, 0),
      files: list,
    });
  }
  return { placements, manifests };
}

/** Bytes one play is expected to read: the whole title, or Σ weight × size when files are weighted. */
function readBytes(t: PlanTitle): number {
  return t.files.some((f) => f.weight !== undefined) ? t.files.reduce((s, f) => s + (f.weight ?? 1) * f.size, 0) : t.bytes;
}

/**
 * File-by-file placement (weighted titles): every file of every ranked title is a unit worth
 * plays × weight per byte; units are taken best first. A title's nodes are chosen when its
 * first unit is placed (ring order, nodes with room, up to its replica count) and every later
 * file of the title goes on all of those nodes or on none — so every node that holds the
 * title (and that steering may send its clients to) holds the same files. Pinned titles come
 * first, whole.
 */
function placeFiles(
  order: { title: string; score: number; replicas: number }[],
  nodeCount: number,
  ring: Ring,
  remaining: Map<string, number>,
  titles: Map<string, PlanTitle>,
  predicted: Map<string, number>,
): { title: string; score: number; chosen: string[]; files: PlanTitle['files'] }[] {
  const out = new Map<string, { title: string; score: number; chosen: string[]; files: PlanTitle['files'] }>();
  const closed = new Set<string>();
  type Unit = { o: (typeof order)[number]; pin: number; ord: number; replicas: number; density: number; index: number; file: PlanTitle['files'][number] };
  const units: Unit[] = [];
  const pinnedCount = order.filter((o) => o.score === Infinity).length;
  order.forEach((o, ord) => {
    const pinned = o.score === Infinity;
    const plays = predicted.get(o.title) ?? 0;
    titles.get(o.title)!.files.forEach((file, index) => {
      const density = pinned ? Infinity : plays * (file.weight ?? 1);
      // `order` lists pinned titles first, then by plays and name: its index breaks ties.
      if (density > 0) units.push({ o, pin: pinned ? ord : pinnedCount, ord, replicas: pinned ? nodeCount : o.replicas, density, index, file });
    });
  });
  // Pinned first (in their order), then by density; ties keep a title's files together, in order.
  units.sort((a, b) => a.pin - b.pin || (a.pin < pinnedCount ? 0 : b.density - a.density) || a.ord - b.ord || a.index - b.index);
  for (const { o, replicas, file } of units) {
    const u = { title: o.title, score: o.score, replicas, file };
    if (closed.has(u.title)) continue;
    let p = out.get(u.title);
    if (!p) {
      const chosen: string[] = [];
      for (const id of ring.rank(u.title)) {
        if (chosen.length >= u.replicas) break;
        if ((remaining.get(id) ?? 0) >= u.file.size) chosen.push(id);
      }
      if (chosen.length === 0) {
        closed.add(u.title);
        continue;
      }
      out.set(u.title, (p = { title: u.title, score: u.score, chosen, files: [] }));
    } else if (!p.chosen.every((id) => remaining.get(id)! >= u.file.size)) {
      continue;
    }
    for (const id of p.chosen) remaining.set(id, remaining.get(id)! - u.file.size);
    p.files.push(u.file);
  }
  return [...out.values()];
}

/** Bytes a new plan asks nodes to fetch that the old plan did not have them hold. */
export function planChurn(before: Plan, after: Plan): { bytes: number; files: number } {
  let bytes = 0;
  let count = 0;
  for (const [id, m] of after.manifests) {
    const had = new Set((before.manifests.get(id)?.files ?? []).map((f) => `${f.title}\u0000${f.file}\u0000${f.sha256}`));
    for (const f of m.files) {
      if (had.has(`${f.title}\u0000${f.file}\u0000${f.sha256}`)) continue;
      bytes += f.size;
      count++;
    }
  }
  return { bytes, files: count };
}

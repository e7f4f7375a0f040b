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
  files: { path: string; size: number; sha256: string }[];
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
    const demand = ranked.reduce((sum, [t, plays]) => sum + plays * titles.get(t)!.bytes, 0);
    const order: { title: string; score: number; replicas: number }[] = [
      ...[...pinned].sort().map((t) => ({ title: t, score: Infinity, replicas: nodes.length })),
      ...ranked.map(([t, plays]) => {
        const share = demand > 0 ? (plays * titles.get(t)!.bytes) / demand : 0;
        return { title: t, score: plays, replicas: Math.min(nodes.length, Math.max(1, Math.ceil(share * nodes.length))) };
      }),
    ];

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
      chosen.forEach((id, replica) => {
        // Replicas after the first fetch from the ones before them: the title leaves the origin once per ISP.
        const sources: FillSource[] = [
          ...chosen.slice(0, replica).map((peer) => ({ kind: 'peer' as const, id: peer, url: byId.get(peer)!.url })),
          { kind: 'origin', id: 'origin', url: input.originUrl },
        ];
        const list = files.get(id)!;
        for (const f of t.files) {
          list.push({ title, file: f.path, size: f.size, sha256: f.sha256, rank: list.length, sources });
        }
      });
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

import { createHash } from 'node:crypto';
import { type FillFile, type FillManifest, type FillSource, placedBytes } from '../common/fill-manifest.js';
import { type HeldFile, type Standing, type StabilityOptions, planIsp } from './placement-stable.js';
import { type PlanFile, type Unit, readBytes, titleUnits } from './placement-units.js';
import type { Prediction } from './popularity.js';

/** What the planner needs of a node. */
export interface PlanNode {
  id: string;
  isp: string;
  url: string;
  diskBytes: number;
  /** The node's slice size: a placed prefix range ends on a multiple of it. Default: `weightSliceBytes`. */
  sliceBytes?: number;
}

/** What the planner needs of a title. */
export interface PlanTitle {
  title: string;
  bytes: number;
  /**
   * `weight` (optional, 0-1): the share of the title's plays expected to read the file (see
   * PlanFile). When any title gives weights, files are ranked one by one (plays × weight), so
   * the placement keeps the starts of many titles rather than the ends of a few (see
   * docs/fill.md); a file with `sliceWeights` is ranked by slice ranges and may be placed as a
   * prefix. A missing weight counts as 1.
   */
  files: PlanFile[];
}

export type { PlanFile, StabilityOptions };

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
  /** Unit of the files' `sliceWeights`, bytes. Default 2 MiB. */
  weightSliceBytes?: number;
  /**
   * The standing plan: what the nodes were asked to hold last time. With `stability`, placed
   * titles stay where they are unless they fall clearly below the cut, and each node's churn is
   * capped. Absent: planned from scratch.
   */
  previous?: Pick<Plan, 'placements' | 'manifests'>;
  /** Hysteresis band and churn cap (origin.fill); absent: every plan from scratch, no cap. */
  stability?: StabilityOptions;
  /** Room left once every ranked title is placed goes to extra copies of the most demanded ones. */
  spareReplicas?: boolean;
  /** Bytes of a file a node has as cache (placement-stable.ts `cached`): they cost no churn budget. */
  cached?: (node: string, title: string, path: string) => number;
}

/** Where one title goes inside an ISP: nodes in replica order (the first fills from the origin). */
export interface Placement {
  isp: string;
  title: string;
  score: number;
  /** Every node holding the title: its planned copies in replica order, then spare replicas. */
  nodes: string[];
  /** With file weights: the files placed (on every one of `nodes`); absent = every file. */
  files?: string[];
  /** The nodes (also in `nodes`) holding a spare replica: extra copies bought with free room. */
  spare?: string[];
}

export interface Plan {
  placements: Placement[];
  manifests: Map<string, FillManifest>;
}

const DEFAULT_WEIGHT_SLICE = 2 * 1024 * 1024;

/**
 * Tonight's plan, per ISP: titles ranked by predicted plays (pinned titles first), each given
 * replicas in proportion to its share of the ISP's predicted bytes (at least 1, at most every
 * node), placed on the same consistent-hash ring steering uses — so steering's first choice
 * for a title is the node that holds it — and packed until each node's disk, less headroom,
 * is full. A title that does not fit on its ring-first node goes to the next one on the ring,
 * so a small change of popularity moves only the titles near the cut. With `previous` and
 * `stability`, what is placed stays put inside a hysteresis band and each node's churn is
 * capped (placement-stable.ts); with `spareReplicas`, free room buys extra copies.
 */
export function planFill(input: PlanInput): Plan {
  const titles = new Map(input.titles.map((t) => [t.title, t]));
  const placements: Placement[] = [];
  const files = new Map<string, FillFile[]>(input.nodes.map((n) => [n.id, []]));
  const byId = new Map(input.nodes.map((n) => [n.id, n]));
  const sliceUnit = input.weightSliceBytes ?? DEFAULT_WEIGHT_SLICE;
  const weighted = input.titles.some((t) => t.files.some((f) => f.weight !== undefined || f.sliceWeights !== undefined));

  const isps = [...new Set(input.nodes.map((n) => n.isp))].sort();
  for (const isp of isps) {
    const nodes = input.nodes.filter((n) => n.isp === isp);
    const predicted = input.prediction.get(isp) ?? new Map<string, number>();
    const pinned = new Set((input.pinned.get(isp) ?? []).filter((t) => titles.has(t)));

    const ranked = [...predicted].filter(([t, plays]) => plays > 0 && titles.has(t) && !pinned.has(t));
    const demand = ranked.reduce((sum, [t, plays]) => sum + plays * readBytes(titles.get(t)!.files, weighted, sliceUnit), 0);
    const replicas = new Map<string, number>([...pinned].map((t) => [t, nodes.length]));
    const units: Unit[] = [];
    for (const t of pinned) units.push(...titleUnits(t, titles.get(t)!.files, Infinity, weighted, sliceUnit));
    for (const [t, plays] of ranked) {
      const share = demand > 0 ? (plays * readBytes(titles.get(t)!.files, weighted, sliceUnit)) / demand : 0;
      replicas.set(t, Math.min(nodes.length, Math.max(1, Math.ceil(share * nodes.length))));
      units.push(...titleUnits(t, titles.get(t)!.files, plays, weighted, sliceUnit));
    }

    const plan = planIsp({
      nodes: nodes.map((n) => ({ id: n.id, diskBytes: n.diskBytes, capacity: Math.floor(n.diskBytes * (1 - input.headroomRatio)) })),
      units,
      replicas,
      plays: predicted,
      ...(input.previous ? { standing: standingOf(input.previous, isp) } : {}),
      ...(input.stability ? { stability: input.stability } : {}),
      spareReplicas: input.spareReplicas ?? false,
      ...(input.cached ? { cached: input.cached } : {}),
    });

    // Manifests: files in the order they were placed; a prefix that grew is one entry.
    const entries = new Map<string, { sources: FillSource[]; files: Map<string, FillFile> }>();
    const placedFiles = new Map<string, Set<string>>();
    for (const { title, unit, nodes: on } of plan.order) {
      const all = plan.nodes.get(title)!;
      let paths = placedFiles.get(title);
      if (!paths) placedFiles.set(title, (paths = new Set()));
      for (const f of unit.files) paths.add(f.file.path);
      for (const id of on) {
        const out = files.get(id)!;
        const sb = byId.get(id)!.sliceBytes ?? sliceUnit;
        const key = JSON.stringify([id, title]);
        let mine = entries.get(key);
        if (!mine) {
          const replica = all.indexOf(id);
          // Replicas after the first fetch from the ones before them: the file leaves the origin once per ISP.
          const sources: FillSource[] = [
            ...all.slice(0, replica).map((peer) => ({ kind: 'peer' as const, id: peer, url: byId.get(peer)!.url })),
            { kind: 'origin', id: 'origin', url: input.originUrl },
          ];
          entries.set(key, (mine = { sources, files: new Map() }));
        }
        const { sources } = mine;
        for (const { file, end } of unit.files) {
          let e = mine.files.get(file.path);
          if (!e) {
            e = { title, file: file.path, size: file.size, sha256: file.sha256, rank: out.length, sources };
            mine.files.set(file.path, e);
            out.push(e);
          }
          const to = end === undefined ? file.size : Math.min(file.size, Math.ceil(end / sb) * sb);
          if (to >= file.size) delete e.range;
          else e.range = { end: Math.max(e.range?.end ?? 0, to), sliceBytes: sb, sliceSha256: [] };
        }
      }
    }

    const score = (t: string) => (pinned.has(t) ? Infinity : (predicted.get(t) ?? 0));
    const list = [...plan.nodes].sort(([a], [b]) => score(b) - score(a) || (a < b ? -1 : 1));
    for (const [title, on] of list) {
      const spare = plan.spare.get(title);
      placements.push({
        isp,
        title,
        score: score(title),
        nodes: on,
        ...(weighted ? { files: [...placedFiles.get(title)!] } : {}),
        ...(spare ? { spare } : {}),
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
      bytes: list.reduce((s, f) => s + placedBytes(f), 0),
      files: list,
    });
  }
  return { placements, manifests };
}

/** One ISP's view of the standing plan: who holds what, planned copies apart from spares. */
function standingOf(previous: Pick<Plan, 'placements' | 'manifests'>, isp: string): Standing {
  const primary = new Map<string, string[]>();
  const spare = new Map<string, string[]>();
  for (const p of previous.placements) {
    if (p.isp !== isp) continue;
    const extra = new Set(p.spare ?? []);
    primary.set(p.title, p.nodes.filter((n) => !extra.has(n)));
    if (extra.size > 0) spare.set(p.title, [...extra]);
  }
  const held = new Map<string, Map<string, Map<string, HeldFile>>>();
  for (const [id, m] of previous.manifests) {
    if (m.isp !== isp) continue;
    const byTitle = new Map<string, Map<string, HeldFile>>();
    for (const f of m.files) {
      let files = byTitle.get(f.title);
      if (!files) byTitle.set(f.title, (files = new Map()));
      files.set(f.file, { sha256: f.sha256, end: placedBytes(f) });
    }
    held.set(id, byTitle);
  }
  return { primary, spare, held };
}

/** Bytes a new plan asks nodes to fetch that the old plan did not have them hold (a grown prefix: the growth). */
export function planChurn(before: Pick<Plan, 'manifests'>, after: Pick<Plan, 'manifests'>): { bytes: number; files: number } {
  let bytes = 0;
  let count = 0;
  for (const [id, m] of after.manifests) {
    const had = new Map((before.manifests.get(id)?.files ?? []).map((f) => [JSON.stringify([f.title, f.file, f.sha256]), placedBytes(f)]));
    for (const f of m.files) {
      const more = placedBytes(f) - (had.get(JSON.stringify([f.title, f.file, f.sha256])) ?? 0);
      if (more <= 0) continue;
      bytes += more;
      count++;
    }
  }
  return { bytes, files: count };
}

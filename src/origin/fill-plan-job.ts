/**
 * One fill plan as a job (pure): plain values in — the catalog's files, the play counts, the
 * serve-report sums, the cluster's nodes and fill settings, the standing plan — and the plan out,
 * with its JSON for the standing document. Plain values so the job can run in a worker thread
 * (fill-plan-runner.ts): everything crosses by structured clone, nothing is shared.
 *
 * The work is what the origin did on its event loop before: the prediction (popularity.ts), the
 * per-file weights from serve reports (file-weights.ts, placement-weights.ts) and the placement
 * (fill-planner.ts).
 */
import type { FillManifest } from '../common/fill-manifest.js';
import { type ServedDay, fileWeights } from './file-weights.js';
import { type Plan, type PlanNode, type PlanTitle, planFill } from './fill-planner.js';
import { type CatalogTitleFiles, type ShapeCache, weighTitles } from './placement-weights.js';
import type { DayCounts } from './plays.js';
import { predictPopularity } from './popularity.js';
import { type ServedPlanInput, daysOfServedText, sumsOfPlanInput } from './served-store.js';

/** A plan as JSON holds it (the standing document): manifests as an object. */
export type SerialPlan = { placements: Plan['placements']; manifests: Record<string, FillManifest> };

export const toSerial = (p: Plan): SerialPlan => ({ placements: p.placements, manifests: Object.fromEntries(p.manifests) });
export const fromSerial = (p: SerialPlan): Plan => ({ placements: p.placements, manifests: new Map(Object.entries(p.manifests)) });

/** What changes from one plan to the next (sent with every job). */
export interface PlanJob {
  /** UTC day planned for (YYYY-MM-DD). */
  today: string;
  /** ISO time stamped on the manifests. */
  generatedAt: string;
  nodes: PlanNode[];
  /** isp → titles pinned there. */
  pinned: [string, string[]][];
  originUrl: string;
  fill: {
    headroomRatio: number;
    halfLifeDays: number;
    stayRatio: number;
    enterRatio: number;
    maxChurnRatio: number;
    spareReplicas: boolean;
  };
  /** Play counts per UTC day (steering's). */
  plays: [string, DayCounts][];
  /** Serve-report sums (served.json's text and the sums since its last save); absent: whole titles. */
  served?: ServedPlanInput;
}

/**
 * The catalog as a job gets it: its titles' files, or the text of the catalog.json they were
 * verified from (the planner's thread parses its own copy: a listing of millions of files is
 * seconds of the event loop to copy across, the text a memcpy).
 */
export type CatalogSource = readonly CatalogTitleFiles[] | { json: string };

/** The standing plan as a job gets it: the plan, or its JSON (made with it in the planner's thread: a string crosses as a copy of bytes). */
export type StandingSource = Plan | { json: string };

/** What stays between jobs (sent only when it changes): the catalog and the standing plan. */
export interface PlanGround {
  catalog: CatalogSource;
  standing?: StandingSource;
}

/**
 * A plan as text, as it leaves the planner: each manifest's JSON (and version) apart, and the
 * placements'. Parsing a plan of a large catalog back into objects is seconds of the receiver's
 * event loop; text crosses as a copy of bytes and is parsed a manifest at a time, when asked
 * (lazyPlan), and joined as it is into the standing document (serialPlanJson).
 */
export interface PlanText {
  placements: string;
  /** edge id, manifest version, manifest JSON — in the plan's node order. */
  manifests: [string, string, string][];
}

export interface PlanOutcome {
  text: PlanText;
  /** Mean plays a day over the job's days (the replan decision's yardstick). */
  dailyPlays: number;
  /** Mean serve-report bytes a day over the job's days. */
  dailyServed: number;
}

export function planText(plan: Plan): PlanText {
  return { placements: JSON.stringify(plan.placements), manifests: [...plan.manifests].map(([id, m]) => [id, m.version, JSON.stringify(m)]) };
}

/** JSON of the SerialPlan a PlanText stands for: joined, not re-encoded. */
export function serialPlanJson(t: PlanText): string {
  return `{"placements":${t.placements},"manifests":{${t.manifests.map(([id, , json]) => `${JSON.stringify(id)}:${json}`).join(',')}}}`;
}

/** A Map of manifests parsed from their JSON one at a time, when first asked for. */
class LazyManifests extends Map<string, FillManifest> {
  constructor(private readonly texts: ReadonlyMap<string, { version: string; json: string }>) {
    super();
  }
  override get(id: string): FillManifest | undefined {
    let m = super.get(id);
    if (m === undefined) {
      const t = this.texts.get(id);
      if (t === undefined) return undefined;
      m = JSON.parse(t.json) as FillManifest;
      super.set(id, m);
    }
    return m;
  }
  override has(id: string): boolean {
    return this.texts.has(id);
  }
  override get size(): number {
    return this.texts.size;
  }
  override *keys(): MapIterator<string> {
    yield* this.texts.keys();
  }
  override *values(): MapIterator<FillManifest> {
    for (const id of this.texts.keys()) yield this.get(id)!;
  }
  override *entries(): MapIterator<[string, FillManifest]> {
    for (const id of this.texts.keys()) yield [id, this.get(id)!];
  }
  override [Symbol.iterator](): MapIterator<[string, FillManifest]> {
    return this.entries();
  }
  override forEach(fn: (m: FillManifest, id: string, map: Map<string, FillManifest>) => void): void {
    for (const [id, m] of this.entries()) fn(m, id, this);
  }
  /** The manifests' versions, without parsing them. */
  versions(): string[] {
    return [...this.texts.values()].map((t) => t.version);
  }
}

/** Every manifest's version, in node order (parsing nothing when the plan came as text). */
export function manifestVersions(plan: Plan): string[] {
  return plan.manifests instanceof LazyManifests ? plan.manifests.versions() : [...plan.manifests.values()].map((m) => m.version);
}

/** A Plan over a PlanText: manifests and placements are parsed when first read. */
export function lazyPlan(t: PlanText): Plan {
  let placements: Plan['placements'] | undefined;
  return {
    get placements() {
      return (placements ??= JSON.parse(t.placements) as Plan['placements']);
    },
    manifests: new LazyManifests(new Map(t.manifests.map(([id, version, json]) => [id, { version, json }]))),
  };
}

/** Caches a planning thread keeps between jobs of the same catalog. */
export interface PlanCaches {
  shapes: ShapeCache;
  listing?: { source: CatalogSource; titles: readonly CatalogTitleFiles[] };
  standing?: { source: StandingSource; plan: Plan };
  /** served.json parsed, by its tag. */
  served?: { tag: string | null; days: Map<string, ServedDay> };
  sizes?: { catalog: readonly CatalogTitleFiles[]; byTitle: Map<string, Map<string, number>> };
}

/** The titles' files of a catalog.json text (the origin verified the same bytes before handing them over). */
export function listingOfJson(json: string): CatalogTitleFiles[] {
  const doc = JSON.parse(json) as { titles?: unknown };
  if (!doc || !Array.isArray(doc.titles)) throw new Error('catalog.json: no titles');
  return (doc.titles as { title: string; bytes: number; files: { path: string; size: number; sha256: string }[] }[]).map((t) => ({
    title: t.title,
    bytes: t.bytes,
    files: t.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })),
  }));
}

export const newPlanCaches = (): PlanCaches => ({ shapes: new Map() });

export function runPlanJob(job: PlanJob, ground: PlanGround, caches: PlanCaches = newPlanCaches()): PlanOutcome {
  if (caches.listing?.source !== ground.catalog) {
    const source = ground.catalog;
    caches.listing = { source, titles: 'json' in source ? listingOfJson(source.json) : source };
  }
  const listed = caches.listing.titles;
  let standing: Plan | undefined;
  if (ground.standing) {
    const source = ground.standing;
    if (caches.standing?.source !== source) caches.standing = { source, plan: 'json' in source ? fromSerial(JSON.parse(source.json) as SerialPlan) : source };
    standing = caches.standing.plan;
  }
  let dailyServed = 0;
  let titles: readonly CatalogTitleFiles[] = listed;
  let weightSliceBytes: number | undefined;
  if (job.served) {
    if (caches.sizes?.catalog !== listed) caches.sizes = { catalog: listed, byTitle: new Map(listed.map((t) => [t.title, new Map(t.files.map((f) => [f.path, f.size]))])) };
    const sizes = caches.sizes.byTitle;
    // A title's plays as steering confirmed them, all ISPs: what its reads are divided by.
    const byDay = new Map<string, Map<string, number>>();
    for (const [day, counts] of job.plays) {
      const m = new Map<string, number>();
      for (const perTitle of Object.values(counts)) for (const [t, n] of Object.entries(perTitle)) m.set(t, (m.get(t) ?? 0) + n);
      byDay.set(day, m);
    }
    const stored = job.served.stored;
    if (caches.served?.tag !== stored.tag || !caches.served) {
      if (stored.tag !== null && stored.text === undefined) throw new Error(`served.json ${stored.tag} was never sent`);
      caches.served = { tag: stored.tag, days: stored.text === undefined ? new Map() : daysOfServedText(stored.text) };
    }
    const days = [...sumsOfPlanInput(job.served, caches.served.days)];
    const weights = fileWeights(days, job.today, {
      halfLifeDays: job.fill.halfLifeDays,
      sliceBytes: job.served.sliceBytes,
      fileSize: (t, f) => sizes.get(t)?.get(f),
      plays: (day, t) => byDay.get(day)?.get(t),
    });
    titles = weighTitles(listed, weights, caches.shapes);
    weightSliceBytes = weights.sliceBytes;
    let bytes = 0;
    for (const [, day] of days) for (const td of Object.values(day)) for (const fd of Object.values(td.files)) bytes += fd.bytes;
    dailyServed = days.length > 0 ? bytes / days.length : 0;
  }
  let plays = 0;
  for (const [, counts] of job.plays) for (const perTitle of Object.values(counts)) for (const n of Object.values(perTitle)) plays += n;
  const { fill } = job;
  const plan = planFill({
    nodes: job.nodes,
    // The planner reads titles, never writes them: the catalog's own listing is passed as it is.
    titles: titles as PlanTitle[],
    ...(weightSliceBytes !== undefined ? { weightSliceBytes } : {}),
    prediction: predictPopularity(job.plays, job.today, { halfLifeDays: fill.halfLifeDays }),
    pinned: new Map(job.pinned),
    headroomRatio: fill.headroomRatio,
    originUrl: job.originUrl,
    generatedAt: job.generatedAt,
    ...(standing ? { previous: standing } : {}),
    stability: { stayRatio: fill.stayRatio, enterRatio: fill.enterRatio, maxChurnRatio: fill.maxChurnRatio },
    spareReplicas: fill.spareReplicas,
  });
  return { text: planText(plan), dailyPlays: job.plays.length > 0 ? plays / job.plays.length : 0, dailyServed };
}

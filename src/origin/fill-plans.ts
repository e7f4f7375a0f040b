import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../common/atomic-file.js';
import type { Clock } from '../common/clock.js';
import type { ClusterConfig } from '../common/config.js';
import type { FillManifest } from '../common/fill-manifest.js';
import type { Logger } from '../common/logger.js';
import type { Catalog } from './catalog.js';
import type { FileWeights } from './file-weights.js';
import { type Plan, planFill } from './fill-planner.js';
import { type ShapeCache, weighTitles } from './placement-weights.js';
import type { PlayStore } from './play-store.js';
import { utcDay } from './plays.js';
import { predictPopularity } from './popularity.js';

export interface FillPlansOptions {
  config: ClusterConfig;
  clock: Clock;
  catalog: () => Catalog;
  plays: () => PlayStore;
  /** A plan is reused for this long (ms) unless the catalog changes. Default 60000. */
  replanMs?: number;
  /** What the edges reported serving, as per-file weights; absent (or no data): whole titles. */
  fileWeights?: () => FileWeights;
  /**
   * Where the standing plan survives a restart (dataDir/fill-standing.json): without it a
   * restarted origin would plan from scratch and reshuffle every disk.
   */
  standingFile?: string;
  logger?: Logger;
}

interface StandingDoc {
  version: 1;
  /** The standing plan (what the nodes were asked to hold) and the UTC day it was made. */
  standing?: { day: string; plan: SerialPlan };
  /** The latest plan and its day: tomorrow's standing plan. */
  last?: { day: string; plan: SerialPlan };
}

type SerialPlan = { placements: Plan['placements']; manifests: Record<string, FillManifest> };

const toSerial = (p: Plan): SerialPlan => ({ placements: p.placements, manifests: Object.fromEntries(p.manifests) });
const fromSerial = (p: SerialPlan): Plan => ({ placements: p.placements, manifests: new Map(Object.entries(p.manifests)) });

/**
 * The origin's current fill plan, recomputed when the catalog changes or the plan is older
 * than `replanMs` — edges poll their manifests far more often than popularity moves.
 *
 * Every plan of a UTC day is made against the same standing plan: the last plan of the day
 * before (what the nodes were asked to fill last night). So however often a day replans, it
 * moves each node at most its churn budget away from what it holds, and tomorrow starts from
 * where today ended.
 */
export class FillPlans {
  private plan?: Plan;
  /** Monotonic ms: a plan's age must not jump with the wall clock. */
  private madeAt = 0;
  private madeFor?: Catalog;
  private last?: { day: string; plan: Plan };
  private standing?: { day: string; plan: Plan };
  private saving: Promise<void> = Promise.resolve();
  private readonly shapes: ShapeCache = new Map();
  private savedVersions = '';

  constructor(private readonly opts: FillPlansOptions) {
    this.load();
  }

  current(): Plan {
    const now = this.opts.clock.now();
    const mono = this.opts.clock.monotonic();
    const catalog = this.opts.catalog();
    if (!this.plan || this.madeFor !== catalog || mono - this.madeAt >= (this.opts.replanMs ?? 60_000)) {
      const today = utcDay(now);
      if (this.last && this.last.day !== today) this.standing = { day: this.last.day, plan: this.last.plan };
      const store = this.opts.plays();
      const days = store.daysWithPlays().map((d) => [d, store.countsFor(d)] as [string, ReturnType<PlayStore['countsFor']>]);
      const { config } = this.opts;
      const fill = config.origin.fill;
      const listed = catalog.titles().map((t) => ({ title: t.title, bytes: t.bytes, files: t.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })) }));
      const weights = this.opts.fileWeights?.();
      this.plan = planFill({
        nodes: config.edges.map((e) => ({ id: e.id, isp: e.isp, url: e.url, diskBytes: e.diskBytes, sliceBytes: e.sliceBytes })),
        titles: weights ? weighTitles(listed, weights, this.shapes) : listed,
        ...(weights ? { weightSliceBytes: weights.sliceBytes } : {}),
        prediction: predictPopularity(days, today, { halfLifeDays: fill.halfLifeDays }),
        pinned: new Map(config.isps.map((i) => [i.id, i.pinnedTitles])),
        headroomRatio: fill.headroomRatio,
        originUrl: config.origin.url,
        generatedAt: new Date(now).toISOString(),
        ...(this.standing ? { previous: this.standing.plan } : {}),
        stability: { stayRatio: fill.stayRatio, enterRatio: fill.enterRatio, maxChurnRatio: fill.maxChurnRatio },
        spareReplicas: fill.spareReplicas,
      });
      this.last = { day: today, plan: this.plan };
      this.madeAt = mono;
      this.madeFor = catalog;
      this.save();
    }
    return this.plan;
  }

  /** The cluster file was reloaded (edges, pinned titles, fill settings): the next manifest asked for is planned afresh. */
  reconfigure(config: ClusterConfig): void {
    this.opts.config = config;
    this.plan = undefined;
  }

  manifestFor(edgeId: string): FillManifest | undefined {
    return this.current().manifests.get(edgeId);
  }

  /** The standing plan the current plans are made against (undefined before the first day has passed). */
  standingPlan(): Plan | undefined {
    return this.standing?.plan;
  }

  /** Waits for the standing file's last write. */
  async flush(): Promise<void> {
    await this.saving;
  }

  private load(): void {
    const file = this.opts.standingFile;
    if (!file) return;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.opts.logger?.warn({ file, err: (err as Error).message }, 'fill standing plan unreadable: planning from scratch');
      return;
    }
    try {
      const doc = JSON.parse(text) as StandingDoc;
      if (doc.version !== 1) throw new Error('not version 1');
      const ok = (x: StandingDoc['last']) => x && typeof x.day === 'string' && Array.isArray(x.plan?.placements) && typeof x.plan.manifests === 'object';
      if (doc.standing && ok(doc.standing)) this.standing = { day: doc.standing.day, plan: fromSerial(doc.standing.plan) };
      if (doc.last && ok(doc.last)) this.last = { day: doc.last.day, plan: fromSerial(doc.last.plan) };
    } catch (err) {
      // The file is ours and only an optimisation: a bad one costs one night of churn, not the origin.
      this.opts.logger?.warn({ file, err: (err as Error).message }, 'fill standing plan unreadable: planning from scratch');
    }
  }

  /** Writes the standing and latest plans when either changed (content, not generation time). */
  private save(): void {
    const file = this.opts.standingFile;
    if (!file || !this.last) return;
    const versions = JSON.stringify([this.standing?.day, this.last.day, ...[...this.last.plan.manifests.values()].map((m) => m.version), ...[...(this.standing?.plan.manifests.values() ?? [])].map((m) => m.version)]);
    if (versions === this.savedVersions) return;
    this.savedVersions = versions;
    const doc: StandingDoc = {
      version: 1,
      ...(this.standing ? { standing: { day: this.standing.day, plan: toSerial(this.standing.plan) } } : {}),
      last: { day: this.last.day, plan: toSerial(this.last.plan) },
    };
    const text = JSON.stringify(doc);
    this.saving = this.saving
      .then(() => writeFileAtomic(file, text))
      .catch((err: unknown) => this.opts.logger?.error({ file, err: (err as Error).message }, 'could not save the fill standing plan'));
  }
}

import type { Clock } from '../common/clock.js';
import type { ClusterConfig } from '../common/config.js';
import type { FillManifest } from '../common/fill-manifest.js';
import type { Catalog } from './catalog.js';
import { type Plan, planFill } from './fill-planner.js';
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
}

/**
 * The origin's current fill plan, recomputed when the catalog changes or the plan is older
 * than `replanMs` — edges poll their manifests far more often than popularity moves.
 */
export class FillPlans {
  private plan?: Plan;
  /** Monotonic ms: a plan's age must not jump with the wall clock. */
  private madeAt = 0;
  private madeFor?: Catalog;

  constructor(private readonly opts: FillPlansOptions) {}

  current(): Plan {
    const now = this.opts.clock.now();
    const mono = this.opts.clock.monotonic();
    const catalog = this.opts.catalog();
    if (!this.plan || this.madeFor !== catalog || mono - this.madeAt >= (this.opts.replanMs ?? 60_000)) {
      const store = this.opts.plays();
      const days = store.daysWithPlays().map((d) => [d, store.countsFor(d)] as [string, ReturnType<PlayStore['countsFor']>]);
      const { config } = this.opts;
      this.plan = planFill({
        nodes: config.edges.map((e) => ({ id: e.id, isp: e.isp, url: e.url, diskBytes: e.diskBytes })),
        titles: catalog.titles().map((t) => ({ title: t.title, bytes: t.bytes, files: t.files })),
        prediction: predictPopularity(days, utcDay(now), { halfLifeDays: config.origin.fill.halfLifeDays }),
        pinned: new Map(config.isps.map((i) => [i.id, i.pinnedTitles])),
        headroomRatio: config.origin.fill.headroomRatio,
        originUrl: config.origin.url,
        generatedAt: new Date(now).toISOString(),
      });
      this.madeAt = mono;
      this.madeFor = catalog;
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
}

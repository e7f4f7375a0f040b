import { basename, dirname } from 'node:path';
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
import { DirStorage } from './storage/dir-storage.js';
import type { OriginStorage } from './storage/storage.js';

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
   * Where the standing plan survives a restart and is shared by the origin's replicas
   * (`fill-standing.json` in origin.storage): without it a restarted origin would plan from
   * scratch and reshuffle every disk, and two replicas could hand a node two different plans.
   * Read by `open()`.
   */
  standing?: { storage: OriginStorage; key?: string };
  /** The same in a file of a local folder. */
  standingFile?: string;
  logger?: Logger;
}

/** Saves that lost to another replica, merged and tried again, before one is given up (the next plan saves again). */
const SAVE_TRIES = 8;

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
/** What tells two plans apart: their manifests' versions (content hashes). */
const versionsOf = (p: Plan | undefined): string => JSON.stringify([...(p?.manifests.values() ?? [])].map((m) => m.version));

/**
 * The origin's current fill plan, recomputed when the catalog changes or the plan is older
 * than `replanMs` — edges poll their manifests far more often than popularity moves.
 *
 * Every plan of a UTC day is made against the same standing plan: the last plan of the day
 * before (what the nodes were asked to fill last night). So however often a day replans, it
 * moves each node at most its churn budget away from what it holds, and tomorrow starts from
 * where today ended.
 *
 * The origin's replicas share the standing plan through one document (conditional writes, as
 * the play counts): the first replica to save a day's standing plan sets it, and a replica that
 * finds another's for the same day (on a refused save, or a `refresh()`) takes it and plans
 * again — so edges polling different replicas get the same manifests.
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
  private readonly store?: { storage: OriginStorage; key: string };
  /** The standing document as last read or written (null: none). */
  private storedTag: string | null = null;

  constructor(private readonly opts: FillPlansOptions) {
    if (opts.standing) this.store = { storage: opts.standing.storage, key: opts.standing.key ?? 'fill-standing.json' };
    else if (opts.standingFile) this.store = { storage: new DirStorage(dirname(opts.standingFile)), key: basename(opts.standingFile) };
  }

  /** Reads the standing document, if any (before the first plan). */
  async open(): Promise<void> {
    await this.serial(() => this.reload('load'));
  }

  /** Takes in a standing plan another replica saved (a stat when nothing changed). */
  async refresh(): Promise<void> {
    const st = this.store;
    if (!st) return;
    await this.serial(async () => {
      const now = await st.storage.stat(st.key);
      if ((now?.tag ?? null) !== this.storedTag) await this.reload('refresh');
    });
  }

  current(): Plan {
    const now = this.opts.clock.now();
    const mono = this.opts.clock.monotonic();
    const catalog = this.opts.catalog();
    if (!this.plan || this.madeFor !== catalog || mono - this.madeAt >= (this.opts.replanMs ?? 60_000)) {
      const today = utcDay(now);
      // A new day: yesterday's last plan stands — unless a standing plan of that day was already taken (another replica's).
      if (this.last && this.last.day !== today && !(this.standing && this.standing.day >= this.last.day)) this.standing = { day: this.last.day, plan: this.last.plan };
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

  /** Waits for the standing document's last write. */
  async flush(): Promise<void> {
    await this.saving;
  }

  private serial(job: () => Promise<void>): Promise<void> {
    const run = this.saving.then(job, job);
    this.saving = run.catch((err: unknown) => this.opts.logger?.error({ doc: this.where(), err: (err as Error).message }, 'could not save the fill standing plan'));
    return run;
  }

  private where(): string | undefined {
    return this.store && this.store.storage.describe(this.store.key);
  }

  /**
   * Reads the standing document and takes what it holds over what this process has: at `load`
   * everything; later (another replica saved) a standing plan of a newer day, or of the same day
   * if it is another plan (the first saved stands), and a latest plan at least as new as ours.
   * Taking another standing plan drops the current plan: the next one is made against it.
   */
  private async reload(why: 'load' | 'refresh' | 'conflict'): Promise<void> {
    const st = this.store;
    if (!st) return;
    const found = await st.storage.readDocument(st.key).catch((err: unknown) => {
      this.opts.logger?.warn({ doc: this.where(), err: (err as Error).message }, 'fill standing plan unreadable: planning without it');
      return null;
    });
    if (found === null) return;
    this.storedTag = found?.tag ?? null;
    if (found === undefined) return;
    let doc: StandingDoc;
    try {
      doc = JSON.parse(found.text) as StandingDoc;
      if (doc.version !== 1) throw new Error('not version 1');
    } catch (err) {
      // The document is ours and only an optimisation: a bad one costs one night of churn, not the origin.
      this.opts.logger?.warn({ doc: this.where(), err: (err as Error).message }, 'fill standing plan unreadable: planning from scratch');
      return;
    }
    const ok = (x: StandingDoc['last']) => x && typeof x.day === 'string' && Array.isArray(x.plan?.placements) && typeof x.plan.manifests === 'object';
    const standing = doc.standing && ok(doc.standing) ? { day: doc.standing.day, plan: fromSerial(doc.standing.plan) } : undefined;
    const last = doc.last && ok(doc.last) ? { day: doc.last.day, plan: fromSerial(doc.last.plan) } : undefined;
    if (why === 'load') {
      this.standing = standing;
      this.last = last;
      return;
    }
    if (standing && (!this.standing || standing.day > this.standing.day || (standing.day === this.standing.day && versionsOf(standing.plan) !== versionsOf(this.standing.plan)))) {
      this.standing = standing;
      this.plan = undefined;
      this.savedVersions = '';
      this.opts.logger?.info({ day: standing.day, why }, 'fill standing plan taken from another origin replica');
    }
    if (why === 'refresh' && last && (!this.last || last.day >= this.last.day)) this.last = last;
  }

  /** Writes the standing and latest plans when either changed (content, not generation time). */
  private save(): void {
    if (!this.store || !this.last) return;
    const versions = JSON.stringify([this.standing?.day, this.last.day, versionsOf(this.last.plan), versionsOf(this.standing?.plan)]);
    if (versions === this.savedVersions) return;
    this.savedVersions = versions;
    const st = this.store;
    void this.serial(async () => {
      for (let attempt = 0; attempt < SAVE_TRIES; attempt++) {
        if (!this.last) return;
        const doc: StandingDoc = {
          version: 1,
          ...(this.standing ? { standing: { day: this.standing.day, plan: toSerial(this.standing.plan) } } : {}),
          last: { day: this.last.day, plan: toSerial(this.last.plan) },
        };
        const r = await st.storage.writeDocument(st.key, JSON.stringify(doc), this.storedTag);
        if (r.ok) {
          this.storedTag = r.tag;
          return;
        }
        // Another replica saved first: take its standing plan if it set one, keep our latest.
        await this.reload('conflict');
      }
      this.savedVersions = '';
      throw new Error('other replicas kept saving first; saved with the next plan');
    });
  }
}

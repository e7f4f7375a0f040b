import { basename, dirname } from 'node:path';
import type { Clock } from '../common/clock.js';
import type { ClusterConfig } from '../common/config.js';
import type { FillManifest } from '../common/fill-manifest.js';
import type { Logger } from '../common/logger.js';
import type { Catalog } from './catalog.js';
import type { Plan } from './fill-planner.js';
import { type CatalogSource, type PlanJob, type SerialPlan, type StandingSource, fromSerial, lazyPlan, manifestVersions, serialPlanJson, toSerial } from './fill-plan-job.js';
import { type PlanRunner, WorkerPlanRunner } from './fill-plan-runner.js';
import type { PlayStore } from './play-store.js';
import type { ServedPlanInput } from './served-store.js';
import { utcDay } from './plays.js';
import { DEFAULT_REPLAN_POLICY, type LastPlan, type PlanInputsStamp, type ReplanPolicy, type ReplanReason, replanDue, sameGround } from './replan-decision.js';
import { DirStorage } from './storage/dir-storage.js';
import type { OriginStorage } from './storage/storage.js';

/** What the plans read of the serve-report sums (served-store.ts). */
export interface ServedSums {
  /** The sums for the planner's thread: the stored document's text and what was not saved yet. */
  planInput(): ServedPlanInput;
  /** Bytes of reports counted so far: goes up with every report and every other replica's save taken in. */
  bytesCounted(): number;
}

export type PlanOutcomeKind = 'made' | 'stale' | 'failed';

export interface FillPlansOptions {
  config: ClusterConfig;
  clock: Clock;
  catalog: () => Catalog;
  /**
   * The text of the catalog.json `catalog` was read from, if that is still what is stored
   * (undefined otherwise): the planner's thread then parses its own copy instead of the event
   * loop listing millions of files across to it.
   */
  catalogText?: (catalog: Catalog) => Promise<string | undefined>;
  plays: () => PlayStore;
  /** New plays or reports replan at most this often (ms); catalog, cluster-file and day changes at once. Default 60000. */
  replanMs?: number;
  /** When a plan is worth making (replan-decision.ts); `minIntervalMs` defaults to `replanMs`. */
  policy?: Partial<ReplanPolicy>;
  /** What the edges reported serving (per-file weights); absent, or no data: whole titles. */
  served?: () => ServedSums | undefined;
  /** Where plans are computed. Default: a worker thread (WorkerPlanRunner). */
  runner?: PlanRunner;
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
  /** Told of every plan job: made (kept), stale (its inputs changed under it: dropped), failed; wall and CPU seconds of planning. */
  onPlan?: (outcome: PlanOutcomeKind, seconds: number, why: ReplanReason, cpuSeconds: number) => void;
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

/** A plan with its JSON (made with it, off the event loop; or made from it, once, when read from the document). */
interface Held {
  day: string;
  plan: Plan;
  json?: string;
  /** What the planner is given of it (one object per plan: the runner sends it once). */
  source?: StandingSource;
}

/** What tells two plans apart: their manifests' versions (content hashes). */
const versionsOf = (p: Plan | undefined): string => JSON.stringify(p ? manifestVersions(p) : []);

/**
 * The origin's current fill plan. A plan is made off the event loop (a worker thread: at
 * production catalog sizes it takes seconds, and `/o/` answers must not wait for it) and only
 * when its inputs changed enough to matter (replan-decision.ts): the day, the catalog, the
 * cluster file, the standing plan at once; new plays or serve reports once they are a few per
 * cent of a day's, at most every `replanMs`. One plan at a time; a plan whose day, catalog,
 * cluster file or standing plan changed while it was made is dropped and made again; a plan that
 * fails is logged and the plan before it stays.
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
  private last?: Held;
  private standing?: Held;
  /** The last plan made (or tried: a failure waits `minIntervalMs` too). */
  private made?: LastPlan;
  /** The plan under way: its inputs' stamp and the promise of its end. */
  private running?: { stamp: PlanInputsStamp; done: Promise<void> };
  /** Goes up with every cluster file taken (`reconfigure`). */
  private configGen = 0;
  /** Monotonic ms of the last plan that failed (the next try waits `minIntervalMs`), and why. */
  private failedAt?: number;
  private lastError?: string;
  private readonly runner: PlanRunner;
  private readonly policy: ReplanPolicy;
  private saving: Promise<void> = Promise.resolve();
  private savedVersions = '';
  private readonly store?: { storage: OriginStorage; key: string };
  /** The standing document as last read or written (null: none). */
  private storedTag: string | null = null;
  /** The catalog listing the planner was given, for the catalog it was made of. */
  private listed?: { catalog: Catalog; source: CatalogSource };
  private closed = false;

  constructor(private readonly opts: FillPlansOptions) {
    if (opts.standing) this.store = { storage: opts.standing.storage, key: opts.standing.key ?? 'fill-standing.json' };
    else if (opts.standingFile) this.store = { storage: new DirStorage(dirname(opts.standingFile)), key: basename(opts.standingFile) };
    this.runner = opts.runner ?? new WorkerPlanRunner();
    this.policy = { ...DEFAULT_REPLAN_POLICY, minIntervalMs: opts.replanMs ?? DEFAULT_REPLAN_POLICY.minIntervalMs, ...opts.policy };
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

  /**
   * The plan to hand out: a new one is started when due; a request waits for the plan under
   * way (it does not hold up the event loop), then gets the newest plan. Rejects only when no
   * plan was ever made (the first failed).
   */
  async current(): Promise<Plan> {
    this.kick();
    while (this.running) await this.running.done;
    if (!this.plan) throw new Error(`no fill plan could be made: ${this.lastError ?? 'unknown'}`);
    return this.plan;
  }

  /** The newest plan, if any, without starting one. */
  latest(): Plan | undefined {
    return this.plan;
  }

  /** The cluster file was reloaded (edges, pinned titles, fill settings): the next manifest asked for waits for a plan made for it. */
  reconfigure(config: ClusterConfig): void {
    this.opts.config = config;
    this.configGen++;
  }

  async manifestFor(edgeId: string): Promise<FillManifest | undefined> {
    return (await this.current()).manifests.get(edgeId);
  }

  /** Stops the planning thread (a plan under way is dropped). */
  async close(): Promise<void> {
    this.closed = true;
    await this.runner.close();
    while (this.running) await this.running.done;
  }

  /** Starts a plan if one is due and none is under way. */
  private kick(): void {
    if (this.running || this.closed) return;
    const now = this.opts.clock.now();
    const today = utcDay(now);
    // A new day: yesterday's last plan stands — unless a standing plan of that day was already taken (another replica's).
    if (this.last && this.last.day !== today && !(this.standing && this.standing.day >= this.last.day)) this.standing = this.last;
    const stamp = this.stamp(today);
    const mono = this.opts.clock.monotonic();
    const verdict = replanDue(this.plan ? this.made : undefined, stamp, mono, this.policy);
    if (!verdict.due) return;
    // A plan that failed is not tried again at every request: the planner would fail as often.
    if (this.failedAt !== undefined && mono - this.failedAt < this.policy.minIntervalMs) return;
    this.start(stamp, verdict.why, now);
  }

  /**
   * The catalog for the planner: the text of the catalog.json it was read from when that is
   * still what is stored (the planner's thread parses it), else its titles listed here.
   */
  private async catalogSource(catalog: Catalog): Promise<CatalogSource> {
    if (this.listed?.catalog === catalog) return this.listed.source;
    const json = await this.opts.catalogText?.(catalog).catch(() => undefined);
    const source: CatalogSource = json !== undefined
      ? { json }
      : catalog.titles().map((t) => ({ title: t.title, bytes: t.bytes, files: t.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })) }));
    this.listed = { catalog, source };
    return source;
  }

  private stamp(today: string): PlanInputsStamp {
    return {
      day: today,
      catalog: this.opts.catalog(),
      config: this.configGen,
      standing: this.standing ? `${this.standing.day} ${versionsOf(this.standing.plan)}` : '',
      plays: this.opts.plays().playsCounted(),
      served: this.opts.served?.()?.bytesCounted() ?? 0,
    };
  }

  private start(stamp: PlanInputsStamp, why: ReplanReason, now: number): void {
    const { config } = this.opts;
    const fill = config.origin.fill;
    const catalog = stamp.catalog as Catalog;
    const store = this.opts.plays();
    const served = this.opts.served?.();
    const job: PlanJob = {
      today: stamp.day,
      generatedAt: new Date(now).toISOString(),
      nodes: config.edges.map((e) => ({ id: e.id, isp: e.isp, url: e.url, diskBytes: e.diskBytes, sliceBytes: e.sliceBytes })),
      pinned: config.isps.map((i) => [i.id, [...i.pinnedTitles]]),
      originUrl: config.origin.url,
      fill: {
        headroomRatio: fill.headroomRatio,
        halfLifeDays: fill.halfLifeDays,
        stayRatio: fill.stayRatio,
        enterRatio: fill.enterRatio,
        maxChurnRatio: fill.maxChurnRatio,
        spareReplicas: fill.spareReplicas,
      },
      plays: store.daysWithPlays().map((d) => [d, store.countsFor(d)]),
      ...(served ? { served: served.planInput() } : {}),
    };
    const at = this.opts.clock.monotonic();
    const standing = this.standing;
    const done = this.catalogSource(catalog)
      .then((source) => this.runner.run(job, { catalog: source, ...(standing ? { standing: (standing.source ??= standing.json !== undefined ? { json: standing.json } : standing.plan) } : {}) }))
      .then(
      (out) => {
        const seconds = out.ms / 1000;
        const cpu = out.cpuMs / 1000;
        // Made for a day, catalog, cluster file or standing plan that no longer is: dropped, made again.
        const nowStamp = this.stamp(utcDay(this.opts.clock.now()));
        if (this.closed || !sameGround(stamp, nowStamp)) {
          this.opts.onPlan?.('stale', seconds, why, cpu);
          this.opts.logger?.info?.({ why, seconds }, 'fill plan dropped: its inputs changed while it was made');
          return;
        }
        // Parsed a manifest at a time, when asked: a whole plan parsed here would hold up /o/.
        const plan = lazyPlan(out.text);
        this.plan = plan;
        this.last = { day: stamp.day, plan, json: serialPlanJson(out.text) };
        this.made = { stamp, at, dailyPlays: out.dailyPlays, dailyServed: out.dailyServed };
        this.failedAt = undefined;
        this.opts.onPlan?.('made', seconds, why, cpu);
        this.save();
      },
      (err: unknown) => {
        this.opts.onPlan?.('failed', 0, why, 0);
        if (!this.closed) this.opts.logger?.error({ why, err: (err as Error).message }, 'fill plan failed: the previous plan stays');
        this.failedAt = at;
        this.lastError = (err as Error).message;
      },
    );
    const running = {
      stamp,
      // Never rejects: whatever went wrong is logged, and the plan in hand stays.
      done: done.catch((err: unknown) => this.opts.logger?.error({ why, err: (err as Error).message }, 'fill plan not taken')).finally(() => {
        if (this.running === running) this.running = undefined;
        // Inputs that changed while it ran (a stale plan, a new day) start the next one now.
        if (!this.closed) this.kick();
      }),
    };
    this.running = running;
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
      // The plan in hand was made against another standing plan: the next one is made (and waited for) against this one.
      this.standing = standing;
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
    // The plans' JSON was made with them, in the planner's thread: only joined here.
    const part = (h: Held) => `{"day":${JSON.stringify(h.day)},"plan":${(h.json ??= JSON.stringify(toSerial(h.plan)))}}`;
    void this.serial(async () => {
      for (let attempt = 0; attempt < SAVE_TRIES; attempt++) {
        if (!this.last) return;
        const doc = `{"version":1,${this.standing ? `"standing":${part(this.standing)},` : ''}"last":${part(this.last)}}`;
        const r = await st.storage.writeDocument(st.key, doc, this.storedTag);
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

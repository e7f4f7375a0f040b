/**
 * Where fill plans are computed. `WorkerPlanRunner` (the origin's): one worker thread
 * (fill-plan-worker.ts), started on the first job and again after it dies; the catalog and the
 * standing plan cross to it only when they changed (the catalog is the bulk of a job: millions
 * of files at production sizes), the day's counts with every job; the plan comes back as a value
 * (structured clone). `inlinePlanRunner` computes in the caller's thread (the bench's model,
 * and tests of FillPlans' own logic).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type CatalogSource, type PlanGround, type PlanJob, type PlanOutcome, type StandingSource, newPlanCaches, runPlanJob } from './fill-plan-job.js';

export interface PlanRunner {
  /** Runs one job (the caller runs one at a time); rejects when the plan failed or the thread died. */
  run(job: PlanJob, ground: PlanGround): Promise<Timed>;
  /** Stops the thread (a job under way rejects). */
  close(): Promise<void>;
}

/** A job as it crosses to the worker: the catalog only when new, the standing plan only when changed (null: none). */
export interface PlannerRequest {
  id: number;
  job: PlanJob;
  catalog?: CatalogSource;
  standing?: StandingSource | null;
}

export type PlannerReply = { id: number; ok: true; outcome: PlanOutcome; ms: number; cpuMs: number } | { id: number; ok: false; error: string };

/** What a job took: wall time, and CPU time of the thread that made it (the planner shares the machine with /o/). */
export type Timed = PlanOutcome & { ms: number; cpuMs: number };

/** This thread's CPU ms since `from` (process.threadCpuUsage). */
export function cpuMsSince(from: NodeJS.CpuUsage): number {
  const d = process.threadCpuUsage(from);
  return (d.user + d.system) / 1000;
}

export function inlinePlanRunner(): PlanRunner {
  const caches = newPlanCaches();
  return {
    async run(job, ground) {
      const at = performance.now();
      const cpu = process.threadCpuUsage();
      const outcome = runPlanJob(job, ground, caches);
      return { ...outcome, ms: performance.now() - at, cpuMs: cpuMsSince(cpu) };
    },
    async close() {},
  };
}

/**
 * The worker's script: next to this module once built; run from the sources (vitest), the
 * built one in dist/ (a worker thread cannot load TypeScript that imports `.js` names).
 */
export function plannerScript(): URL {
  const here = new URL('./fill-plan-worker.js', import.meta.url);
  if (!import.meta.url.endsWith('.ts')) return here;
  const built = new URL('../../dist/src/origin/fill-plan-worker.js', import.meta.url);
  if (!existsSync(fileURLToPath(built))) throw new Error(`${fileURLToPath(built)} is missing: build first (npx tsc -p tsconfig.json)`);
  return built;
}

/** The thread ended under a job (a crash, out of memory): not the job's fault. */
class ThreadGone extends Error {}

export class WorkerPlanRunner implements PlanRunner {
  private worker?: Worker;
  private nextId = 1;
  private pending?: { id: number; resolve: (o: Timed) => void; reject: (e: Error) => void };
  /** What the worker holds (undefined: nothing sent yet, or a new worker). */
  private sentCatalog?: PlanGround['catalog'];
  private sentStanding?: StandingSource | null;
  /** The tag of the served.json text the worker holds (undefined: none sent). */
  private sentServed?: string | null;
  private closed = false;

  constructor(private readonly script: URL = plannerScript()) {}

  /** A job whose thread died (not one that failed in it) is run once more, on a new thread. */
  async run(job: PlanJob, ground: PlanGround): Promise<Timed> {
    try {
      return await this.runOnce(job, ground);
    } catch (err) {
      if (!(err instanceof ThreadGone) || this.closed) throw err;
      return await this.runOnce(job, ground);
    }
  }

  private runOnce(job: PlanJob, ground: PlanGround): Promise<Timed> {
    if (this.closed) return Promise.reject(new Error('the fill planner is closed'));
    if (this.pending) return Promise.reject(new Error('a fill plan is already under way'));
    const worker = this.spawn();
    const req: PlannerRequest = { id: this.nextId++, job };
    // served.json's text crosses once per version (tag), as the catalog does.
    if (job.served && job.served.stored.tag === this.sentServed) req.job = { ...job, served: { ...job.served, stored: { tag: job.served.stored.tag } } };
    if (ground.catalog !== this.sentCatalog) req.catalog = ground.catalog;
    const standing = ground.standing ?? null;
    if (standing !== this.sentStanding) req.standing = standing;
    return new Promise((resolve, reject) => {
      this.pending = { id: req.id, resolve, reject };
      // The process stays up while a plan is under way, not for an idle planner.
      worker.ref();
      worker.postMessage(req);
      this.sentCatalog = ground.catalog;
      this.sentStanding = standing;
      this.sentServed = job.served?.stored.tag;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
    this.fail(new Error('the fill planner was closed'));
  }

  private spawn(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(this.script);
    this.worker = w;
    this.sentCatalog = undefined;
    this.sentStanding = undefined;
    this.sentServed = undefined;
    w.unref();
    w.on('message', (reply: PlannerReply) => {
      const p = this.pending;
      if (!p || p.id !== reply.id) return;
      this.pending = undefined;
      w.unref();
      if (reply.ok) p.resolve({ ...reply.outcome, ms: reply.ms, cpuMs: reply.cpuMs });
      else {
        // Whatever the worker kept may be what failed: the next job sends everything again.
        this.sentCatalog = undefined;
        this.sentStanding = undefined;
        this.sentServed = undefined;
        p.reject(new Error(`fill plan failed: ${reply.error}`));
      }
    });
    // A thread that dies (out of memory, a bug) takes its job with it; the next job starts a new one.
    const gone = (err: Error) => {
      if (this.worker === w) this.worker = undefined;
      this.fail(err);
    };
    w.on('error', (err) => gone(new ThreadGone(`the fill planner thread failed: ${err.message}`)));
    w.on('exit', (code) => gone(new ThreadGone(`the fill planner thread exited (code ${code})`)));
    return w;
  }

  private fail(err: Error): void {
    const p = this.pending;
    this.pending = undefined;
    p?.reject(err);
  }
}

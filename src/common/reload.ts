import { isDeepStrictEqual } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { type ClusterConfig, ConfigError, loadClusterFile } from './config.js';
import type { Logger } from './logger.js';

/**
 * Reload (issue 10): SIGHUP or `POST /reload` on an admin port re-reads the cluster file and the
 * files it names, validates all of it, and only then lets the role swap it in. A file that does
 * not validate is refused with one line naming the field; the role keeps serving the old one.
 * Load, verify, then swap (STYLE.md): `apply` must check everything (certificates load, keys
 * are usable) before it changes anything, and throw a ConfigError when something does not.
 */

/** What a role made of a new cluster file. */
export interface ReloadOutcome {
  /** Changed fields this role took (cluster file names: `edges`, `steering.thresholds`, `steering.tls`). */
  applied: string[];
  /** Changed fields this role cannot take without a restart (its own listen URLs, dataDir, …); still the old values. */
  needsRestart: string[];
}

/** One reload's result: the outcome, or the refusal (`error` is `<field>: <problem>`). */
export type ReloadResult =
  | { ok: true; outcome: ReloadOutcome }
  | { ok: false; field: string; problem: string; error: string; kind: 'config' | 'internal' };

export interface ReloaderOptions {
  /** The cluster file the role started from. */
  configPath: string;
  logger: Logger;
  /**
   * Takes the validated file: checks what only the role can check (its certificates load, …),
   * throws ConfigError if anything fails (nothing changed then), else swaps and tells what it took.
   */
  apply: (next: ClusterConfig) => Promise<ReloadOutcome>;
  /** Reads and validates the file. Default loadClusterFile (tests may count or slow it). */
  load?: (path: string) => ClusterConfig;
  /** Counts reloads by outcome (`reelcdn_config_reloads_total`) when given. */
  registry?: Registry;
}

/**
 * Reloads of one role, one at a time: a signal arriving during a reload queues one more that
 * starts when it ends (it reads the file as it is then), and any further ones join that queued
 * one — a burst of SIGHUPs is at most two reloads, never N.
 */
export class Reloader {
  private running: Promise<ReloadResult> | undefined;
  private queued: Promise<ReloadResult> | undefined;
  private readonly counter: Counter<'outcome'> | undefined;
  /** Reloads finished since start (applied or refused). */
  completed = 0;

  constructor(private readonly opts: ReloaderOptions) {
    this.counter = opts.registry
      ? new Counter({
          name: 'reelcdn_config_reloads_total',
          help: 'Reloads of the cluster file by outcome: applied, refused (the file or a file it names did not validate; the old configuration kept) or failed',
          labelNames: ['outcome'],
          registers: [opts.registry],
        })
      : undefined;
  }

  /** Reloads now, or after the reload under way (joining one already queued). */
  reload(): Promise<ReloadResult> {
    if (this.running === undefined) {
      this.running = this.once().finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    this.queued ??= this.running.then(() => {
      this.queued = undefined;
      return this.reload();
    });
    return this.queued;
  }

  private async once(): Promise<ReloadResult> {
    const log = this.opts.logger;
    let result: ReloadResult;
    try {
      const next = (this.opts.load ?? loadClusterFile)(this.opts.configPath);
      for (const warning of next.warnings ?? []) log.warn(warning);
      const outcome = await this.opts.apply(next);
      for (const field of outcome.needsRestart) log.warn({ field }, `reload: ${field} changed and takes effect only after a restart; still using the old value`);
      log.info({ applied: outcome.applied, needsRestart: outcome.needsRestart }, outcome.applied.length > 0 ? 'reload applied' : 'reload: nothing this role uses changed');
      this.counter?.inc({ outcome: 'applied' });
      result = { ok: true, outcome };
    } catch (err) {
      if (err instanceof ConfigError) {
        log.error({ field: err.field, problem: err.problem }, `reload refused: ${err.field}: ${err.problem}; still serving the previous configuration`);
        this.counter?.inc({ outcome: 'refused' });
        result = { ok: false, field: err.field, problem: err.problem, error: err.message, kind: 'config' };
      } else {
        // A bug or an I/O failure in the role's swap, not the file: told as such, stack included.
        log.error({ err }, 'reload failed; still serving the previous configuration');
        this.counter?.inc({ outcome: 'failed' });
        const problem = (err as Error)?.message ?? String(err);
        result = { ok: false, field: '(reload)', problem, error: `(reload): ${problem}`, kind: 'internal' };
      }
    }
    this.completed++;
    return result;
  }
}

/**
 * SIGHUP reloads (Node's default for it is to exit: an operator's `systemctl reload` would have
 * killed the process). Returns a function that removes the handler.
 */
export function onSighup(reloader: Reloader): () => void {
  const handler = () => {
    void reloader.reload();
  };
  process.on('SIGHUP', handler);
  return () => {
    process.off('SIGHUP', handler);
  };
}

/**
 * `POST /reload` on an admin port (behind the admin token like every admin route): 200 with
 * `{ applied, needsRestart }`, 422 with `{ error: "<field>: <problem>" }` for a file that does
 * not validate, 500 when the role failed to swap for another reason.
 */
export function registerReloadRoute(adminApp: FastifyInstance, reloader: Reloader): void {
  adminApp.post('/reload', async (_req, reply) => {
    const r = await reloader.reload();
    if (r.ok) return reply.code(200).header('cache-control', 'no-store').send(r.outcome);
    return reply
      .code(r.kind === 'config' ? 422 : 500)
      .header('cache-control', 'no-store')
      .send({ error: r.error });
  });
}

/**
 * The fields (named as in the cluster file) whose values differ between two configurations;
 * `fields` maps each name to how to read it. Values compare deeply.
 */
export function changedFields<C>(prev: C, next: C, fields: Record<string, (c: C) => unknown>): string[] {
  return Object.entries(fields)
    .filter(([, read]) => !isDeepStrictEqual(read(prev), read(next)))
    .map(([name]) => name);
}

import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../../common/logger.js';
import { Rpc } from './rpc.js';

/**
 * Keeps N worker processes of an edge node alive: forks them, restarts one that dies (after a
 * pause that grows while it keeps dying young, so a worker that cannot start does not spin the
 * CPU), and drains them all on close. Workers are numbered 1..N; a restarted worker keeps its
 * number, so per-worker series and logs stay comparable.
 */
export interface SupervisorOptions {
  count: number;
  /** The worker entry script (a built .js file). */
  exec: string;
  logger: Logger;
  /** A worker's channel is up: wire its calls. Called again for each restart. */
  onWorker(index: number, rpc: Rpc, worker: Worker): void;
  /** A worker exited (for any reason): release what it held. `code`: its exit code, null if killed. */
  onExit(index: number, code: number | null, signal: string | null): void;
  monotonicNow: () => number;
  /** How long a drain may take before stragglers are killed. */
  drainTimeoutMs?: number;
}

/** Pause before restarting a worker that lived `livedMs` and has died `crashes` times in a row young. */
export function restartDelayMs(livedMs: number, crashes: number): number {
  if (livedMs >= 30_000) return 100;
  return Math.min(10_000, 100 * 2 ** Math.min(crashes, 7));
}

interface Slot {
  index: number;
  worker?: Worker;
  rpc?: Rpc;
  startedAt: number;
  youngCrashes: number;
  restarts: number;
  timer?: NodeJS.Timeout;
}

export class Supervisor {
  private readonly slots: Slot[] = [];
  private closing = false;

  constructor(private readonly opts: SupervisorOptions) {
    cluster.setupPrimary({ exec: opts.exec, args: [], serialization: 'advanced' });
    for (let i = 1; i <= opts.count; i++) this.slots.push({ index: i, startedAt: 0, youngCrashes: 0, restarts: 0 });
  }

  start(): void {
    for (const slot of this.slots) this.fork(slot);
  }

  /** Live workers' channels, by worker number. */
  live(): { index: number; rpc: Rpc; pid: number; restarts: number }[] {
    return this.slots.flatMap((s) => (s.worker && s.rpc && !s.worker.isDead() && s.worker.isConnected() ? [{ index: s.index, rpc: s.rpc, pid: s.worker.process.pid ?? 0, restarts: s.restarts }] : []));
  }

  restarts(index: number): number {
    return this.slots[index - 1]?.restarts ?? 0;
  }

  private fork(slot: Slot): void {
    slot.timer = undefined;
    if (this.closing) return;
    const worker = cluster.fork({ REELCDN_WORKER_INDEX: String(slot.index) });
    slot.worker = worker;
    slot.startedAt = this.opts.monotonicNow();
    const rpc = new Rpc(worker, (err, what) => this.opts.logger.debug({ worker: slot.index, err: err.message, what }, 'worker channel'));
    slot.rpc = rpc;
    this.opts.onWorker(slot.index, rpc, worker);
    // A channel error (the worker died mid-send) is the exit's business, never the primary's end.
    worker.on('error', (err) => this.opts.logger.debug({ worker: slot.index, err: err.message }, 'worker channel error'));
    worker.on('disconnect', () => rpc.close());
    worker.on('exit', (code, signal) => {
      rpc.close();
      if (slot.worker === worker) {
        slot.worker = undefined;
        slot.rpc = undefined;
      }
      this.opts.onExit(slot.index, code, signal);
      if (this.closing) return;
      const lived = this.opts.monotonicNow() - slot.startedAt;
      slot.youngCrashes = lived >= 30_000 ? 0 : slot.youngCrashes + 1;
      const delay = restartDelayMs(lived, slot.youngCrashes - 1);
      slot.restarts++;
      this.opts.logger.error({ worker: slot.index, pid: worker.process.pid, code, signal, livedMs: Math.round(lived), restartInMs: delay }, 'edge worker died; restarting it');
      slot.timer = setTimeout(() => this.fork(slot), delay);
    });
  }

  /** No more restarts: the node is going down. */
  stopRestarting(): void {
    this.closing = true;
    for (const s of this.slots) if (s.timer) clearTimeout(s.timer);
  }

  /** Every worker finishes its answers and exits; stragglers are killed after the timeout. */
  async drain(drainCall: (rpc: Rpc) => Promise<unknown>): Promise<void> {
    this.stopRestarting();
    const timeout = this.opts.drainTimeoutMs ?? 30_000;
    await Promise.all(
      this.slots.map(async (s) => {
        const worker = s.worker;
        if (!worker || worker.isDead()) return;
        const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        const kill = setTimeout(() => {
          this.opts.logger.warn({ worker: s.index, pid: worker.process.pid }, 'edge worker did not drain in time; killing it');
          worker.process.kill('SIGKILL');
        }, timeout);
        // A worker that cannot take the call (not started yet, channel gone) gets the signal.
        const asked = s.rpc ? await drainCall(s.rpc).then(() => true, () => false) : false;
        if (!asked && !worker.isDead()) worker.process.kill('SIGTERM');
        await exited;
        clearTimeout(kill);
      }),
    );
  }
}

import { SID_MAX, type SessionOutcome, SessionTable } from '../qoe.js';

/**
 * Sessions and startup per NODE, not per worker. node:cluster spreads a player's connections
 * over the workers (a browser over HTTP/1.1 opens several, for audio and video), so a table per
 * worker would count one player once per worker it reached, and time its startup on whichever
 * worker saw an su and then a later request without. Instead each worker forwards the session
 * part of its CMCD requests — (sid, su, time on a clock every process of the machine shares) —
 * in small batches to the primary, which keeps the node's one SessionTable. Per-request counters
 * (requests, media, starved, br, bl) stay in the workers and are summed.
 */

/** A worker sends its batch at most this long after its first sighting... */
export const SESSIONS_FLUSH_MS = 250;
/** ...or as soon as it holds this many (no IPC per request; a worker's buffer never grows past it). */
export const SESSIONS_BATCH_MAX = 512;

/** One batch of sightings, worker → primary (M.SESSIONS): parallel arrays, cheap to clone. */
export interface SessionBatch {
  sid: string[];
  su: boolean[];
  /** Ms on sharedMonotonicMs(). */
  t: number[];
}

/**
 * Ms on CLOCK_MONOTONIC (libuv's hrtime), one clock for every process of the machine — unlike
 * performance.now(), whose origin is each process's start — and one that a wall clock stepped
 * by NTP does not move. Startup is a difference of two such readings taken in two workers.
 */
export function sharedMonotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** A worker's side: sightings batched to the primary. */
export class SessionForwarder {
  private batch: SessionBatch = { sid: [], su: [], t: [] };
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly send: (b: SessionBatch) => void,
    private readonly now: () => number = sharedMonotonicMs,
    private readonly flushMs = SESSIONS_FLUSH_MS,
    private readonly maxBatch = SESSIONS_BATCH_MAX,
  ) {}

  add(sid: string, su: boolean): void {
    const b = this.batch;
    b.sid.push(sid);
    b.su.push(su);
    b.t.push(this.now());
    if (b.sid.length >= this.maxBatch) this.flush();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  /** Sends what is held (also on the worker's drain: its last sightings are not lost). */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.batch.sid.length === 0) return;
    const b = this.batch;
    this.batch = { sid: [], su: [], t: [] };
    this.send(b);
  }
}

interface Sighting {
  sid: string;
  su: boolean;
  t: number;
}

/** The primary's side: how long sightings wait for other workers' earlier ones, and how many may wait. */
export interface NodeSessionsOptions {
  /**
   * Ms a sighting waits before it is applied, so that every worker's batch holding an earlier
   * one has come (a worker sends within SESSIONS_FLUSH_MS, unless its loop is busier than
   * that): the table then sees the node's sightings in time order — an su on worker 1 before
   * the request without su on worker 2 that ends its startup. Default 1000.
   */
  settleMs?: number;
  /** Sightings waiting at most; past it the oldest are applied at once. Default 50,000. */
  maxPending?: number;
  maxSessions?: number;
  activeMs?: number;
  /** What each applied sighting changed (the node's session series). */
  onOutcome?: (o: SessionOutcome) => void;
}

/** The node's one session table, fed by its workers' batches. Pure: time comes in as arguments. */
export class NodeSessions {
  readonly table: SessionTable;
  private pending: Sighting[] = [];
  private sorted = true;
  private readonly settleMs: number;
  private readonly maxPending: number;

  constructor(private readonly opts: NodeSessionsOptions = {}) {
    this.table = new SessionTable(opts);
    this.settleMs = opts.settleMs ?? 1000;
    this.maxPending = opts.maxPending ?? 50_000;
  }

  /** A worker's batch (checked: the arrays agree, sids are strings of at most SID_MAX). */
  add(b: SessionBatch): void {
    if (!b || !Array.isArray(b.sid) || !Array.isArray(b.su) || !Array.isArray(b.t)) return;
    const n = Math.min(b.sid.length, b.su.length, b.t.length, this.maxPending);
    const last = this.pending.at(-1)?.t ?? -Infinity;
    for (let i = 0; i < n; i++) {
      const sid = b.sid[i];
      const t = b.t[i];
      if (typeof sid !== 'string' || sid === '' || typeof t !== 'number' || !Number.isFinite(t)) continue;
      this.pending.push({ sid: sid.length > SID_MAX ? sid.slice(0, SID_MAX) : sid, su: b.su[i] === true, t });
    }
    if (n > 0 && (b.t[0] ?? 0) < last) this.sorted = false;
    if (this.pending.length > this.maxPending) this.settle(-Infinity, this.pending.length - this.maxPending);
  }

  /** Applies, in time order, the sightings older than `now` − settleMs (and `atLeast` more). */
  settle(now: number, atLeast = 0): void {
    if (this.pending.length === 0) return;
    if (!this.sorted) {
      // Stable: one worker's sightings at one time keep their order.
      this.pending.sort((a, b) => a.t - b.t);
      this.sorted = true;
    }
    const cutoff = now - this.settleMs;
    let i = 0;
    const out: SessionOutcome = { newSession: false, startupMs: -1 };
    while (i < this.pending.length && (i < atLeast || this.pending[i]!.t <= cutoff)) {
      const s = this.pending[i]!;
      out.newSession = false;
      out.startupMs = -1;
      this.table.see(s.sid, s.su, s.t, out);
      this.opts.onOutcome?.(out);
      i++;
    }
    if (i > 0) this.pending = this.pending.slice(i);
  }

  /** Sightings waiting (tests: the bound holds). */
  get waiting(): number {
    return this.pending.length;
  }
}

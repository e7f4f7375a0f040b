/**
 * What players say of their experience (CMCD, CTA-5004), gathered per edge process: sessions,
 * media requests, buffer starvation, bitrate, buffer length and startup time. Pure: the clock is
 * a parameter (monotonic ms), nothing here does I/O. Cumulative since the process started, so a
 * dashboard takes differences over time. A multi-worker node sums its workers' per-request
 * counters and keeps sessions and startup in its primary's one SessionTable (the workers forward
 * their sightings: cluster/node-sessions.ts).
 */

/** The CMCD keys QoE reads (a `Cmcd` of src/common/cmcd.ts is one; typed fields only when well-formed). */
export interface QoeInput {
  sid?: string;
  ot?: string;
  br?: number;
  bl?: number;
  bs?: boolean;
  su?: boolean;
}

/** Upper bounds of the startup buckets, ms (fixed: the dashboard and the /health block share them). */
export const STARTUP_BOUNDS_MS: readonly number[] = [250, 500, 1000, 1500, 2000, 3000, 5000, 8000, 15000];

/** The `qoe` block of an edge's /health (docs/operations.md, "CMCD and CMSD"). */
export interface QoeBlock {
  /** Distinct sids first seen (an sid evicted from the bounded tracker and seen again counts again). */
  sessions: number;
  /** Requests carrying CMCD. */
  requests: number;
  /** Of which media: `ot` a, v or av, or no `ot` but a `br`. */
  mediaRequests: number;
  /** Media requests with `bs` (buffer starvation): starved / mediaRequests estimates the rebuffer ratio. */
  starved: number;
  brKbpsSum: number;
  brCount: number;
  blMsSum: number;
  blCount: number;
  startupBoundsMs: number[];
  /** Sessions per startup bucket (not cumulative); the last counts those over the last bound. */
  startupCounts: number[];
}

export function emptyQoeBlock(): QoeBlock {
  return {
    sessions: 0,
    requests: 0,
    mediaRequests: 0,
    starved: 0,
    brKbpsSum: 0,
    brCount: 0,
    blMsSum: 0,
    blCount: 0,
    startupBoundsMs: [...STARTUP_BOUNDS_MS],
    startupCounts: new Array<number>(STARTUP_BOUNDS_MS.length + 1).fill(0),
  };
}

/** Blocks added up (a node's workers'); a block of another length of buckets is skipped bucket-wise. */
export function sumQoeBlocks(blocks: readonly (QoeBlock | undefined)[]): QoeBlock {
  const out = emptyQoeBlock();
  for (const b of blocks) {
    if (!b) continue;
    out.sessions += b.sessions;
    out.requests += b.requests;
    out.mediaRequests += b.mediaRequests;
    out.starved += b.starved;
    out.brKbpsSum += b.brKbpsSum;
    out.brCount += b.brCount;
    out.blMsSum += b.blMsSum;
    out.blCount += b.blCount;
    for (let i = 0; i < out.startupCounts.length; i++) out.startupCounts[i]! += b.startupCounts?.[i] ?? 0;
  }
  return out;
}

/**
 * The largest value of each numeric key a player can plausibly send (CTA-5004 puts no bound on
 * them, and any token holder can send anything): 200 Mbit/s of encoded bitrate, 10 minutes of
 * buffer or deadline, 10 Gbit/s of measured throughput. A value above is left out of every sum
 * and histogram (not capped: a capped 200,000 kbps would still drag an ISP's average bitrate for
 * an hour) and counted in reelcdn_edge_cmcd_implausible_total{key}. Sums stay exact integers far
 * below 2^53 this way.
 */
export const PLAUSIBLE_MAX = { br: 200_000, bl: 600_000, dl: 600_000, mtp: 10_000_000 } as const;
export type PlausibleKey = keyof typeof PLAUSIBLE_MAX;

/** `v` as a value of `key` worth counting: present, finite, 0 to PLAUSIBLE_MAX[key]. */
export function plausible(key: PlausibleKey, v: number | undefined): v is number {
  return v !== undefined && v >= 0 && v <= PLAUSIBLE_MAX[key];
}

/** Present but not plausible: what reelcdn_edge_cmcd_implausible_total counts (NaN included). */
export function implausible(key: PlausibleKey, v: number | undefined): boolean {
  return v !== undefined && !plausible(key, v);
}

/** Media objects by CMCD `ot`: audio, video, muxed. */
export function isMediaRequest(c: QoeInput): boolean {
  return c.ot === undefined ? c.br !== undefined : c.ot === 'v' || c.ot === 'a' || c.ot === 'av';
}

/** What one request changed, for the metrics that observe it. */
export interface QoeOutcome {
  /** Its sid was not tracked before (a session started). */
  newSession: boolean;
  media: boolean;
  /** The session's startup time, ms, when this request ended it; else -1. */
  startupMs: number;
}

export interface QoeTrackerOptions {
  /** Monotonic ms (intervals only: a wall clock stepped back must not make a negative startup). */
  now: () => number;
  /** Sessions tracked at most (sids are client data): the least recently seen go first. Default 20,000. */
  maxSessions?: number;
  /** A session is active while seen within this many ms. Default 5 minutes. */
  activeMs?: number;
  /**
   * A worker of a multi-worker node: each request's session part (its sid, cut to SID_MAX, and
   * whether it said su) goes here instead of a table of this process's, so that a player whose
   * connections land on several workers is one session of the node, its startup measured across
   * them (cluster/node-sessions.ts). This tracker's sessions and startups then stay at zero.
   */
  forward?: (sid: string, su: boolean) => void;
}

/** The spec caps sid at 64 characters; a longer one is cut, so no client can make a key of any size. */
export const SID_MAX = 64;

/** What one sighting of a session changed. */
export interface SessionOutcome {
  /** Its sid was not tracked before (a session started). */
  newSession: boolean;
  /** The session's startup time, ms, when this sighting ended it; else -1. */
  startupMs: number;
}

interface Session {
  lastSeen: number;
  /** When its first request with `su` came (-1: none yet). */
  suSince: number;
  /** Its startup was counted (once per sid). */
  started: boolean;
}

/**
 * A bounded table of sessions by sid: sessions first seen, their startup (the first sighting
 * with su to the first without, on the times given: in order, monotonic), and the active count.
 * One per edge process, or one per node in its primary (the workers forward sightings). Sids
 * never leave it except as counts.
 */
export class SessionTable {
  /** Sessions first seen (an sid evicted and seen again counts again). */
  sessions = 0;
  /** Per startup bucket (not cumulative). */
  readonly startupCounts: number[] = new Array<number>(STARTUP_BOUNDS_MS.length + 1).fill(0);
  /** By sid, least recently seen first (a seen sid is moved to the end). */
  private readonly table = new Map<string, Session>();
  private readonly maxSessions: number;
  private readonly activeMs: number;

  constructor(opts: { maxSessions?: number; activeMs?: number } = {}) {
    this.maxSessions = Math.max(1, opts.maxSessions ?? 20_000);
    this.activeMs = opts.activeMs ?? 5 * 60_000;
  }

  /** A request of session `sid` (at most SID_MAX characters) at `t` ms, with su or not. */
  see(sid: string, su: boolean, t: number, out: SessionOutcome = { newSession: false, startupMs: -1 }): SessionOutcome {
    let s = this.table.get(sid);
    if (s === undefined) {
      if (this.table.size >= this.maxSessions) this.table.delete(this.table.keys().next().value!);
      s = { lastSeen: t, suSince: -1, started: false };
      this.sessions++;
      out.newSession = true;
    } else {
      this.table.delete(sid); // to the end: most recently seen
      if (t > s.lastSeen) s.lastSeen = t;
    }
    this.table.set(sid, s);
    if (!s.started) {
      if (su) {
        if (s.suSince < 0) s.suSince = t;
      } else if (s.suSince >= 0) {
        s.started = true;
        out.startupMs = Math.max(0, t - s.suSince);
        this.startupCounts[startupBucket(out.startupMs)]! += 1;
      }
    }
    return out;
  }

  /** Sessions seen since `now` − activeMs. The table is in order of last sight: counts the old end only. */
  activeSessions(now: number): number {
    const since = now - this.activeMs;
    let old = 0;
    for (const s of this.table.values()) {
      if (s.lastSeen >= since) break;
      old++;
    }
    return this.table.size - old;
  }

  /** Sids in the table (tests: the bound holds). */
  get tracked(): number {
    return this.table.size;
  }

  /** A qoe block of its sessions and startups only (the per-request counters at zero). */
  block(): QoeBlock {
    const b = emptyQoeBlock();
    b.sessions = this.sessions;
    b.startupCounts = [...this.startupCounts];
    return b;
  }
}

/**
 * The cumulative QoE block of one edge process: per-request counters here, sessions and startup
 * in a SessionTable of its own (or forwarded to its node's primary).
 */
export class QoeTracker {
  private readonly block = emptyQoeBlock();
  private readonly table: SessionTable;
  private readonly now: () => number;
  private readonly forward: ((sid: string, su: boolean) => void) | undefined;

  constructor(opts: QoeTrackerOptions) {
    this.now = opts.now;
    this.forward = opts.forward;
    this.table = new SessionTable(opts);
  }

  /** One request carrying CMCD (already past the token check). */
  record(c: QoeInput): QoeOutcome {
    const b = this.block;
    b.requests++;
    const media = isMediaRequest(c);
    if (media) {
      b.mediaRequests++;
      if (c.bs === true) b.starved++;
      if (plausible('br', c.br)) {
        b.brKbpsSum += c.br;
        b.brCount++;
      }
      if (plausible('bl', c.bl)) {
        b.blMsSum += c.bl;
        b.blCount++;
      }
    }
    const out: QoeOutcome = { newSession: false, media, startupMs: -1 };
    if (c.sid === undefined || c.sid === '') return out;
    const sid = c.sid.length > SID_MAX ? c.sid.slice(0, SID_MAX) : c.sid;
    if (this.forward) this.forward(sid, c.su === true);
    else this.table.see(sid, c.su === true, this.now(), out);
    return out;
  }

  /** Sessions seen within the active window (0 where sessions are forwarded: the node's primary counts them). */
  activeSessions(): number {
    return this.forward ? 0 : this.table.activeSessions(this.now());
  }

  /** Sids in the table (tests: the bound holds). */
  get tracked(): number {
    return this.table.tracked;
  }

  /** A copy of the cumulative block, for /health. */
  snapshot(): QoeBlock {
    const b = this.block;
    return { ...b, sessions: this.table.sessions, startupBoundsMs: [...b.startupBoundsMs], startupCounts: [...this.table.startupCounts] };
  }
}

/** Index of the startup bucket of `ms` (le semantics; the last is over every bound). */
export function startupBucket(ms: number): number {
  let i = 0;
  while (i < STARTUP_BOUNDS_MS.length && ms > STARTUP_BOUNDS_MS[i]!) i++;
  return i;
}

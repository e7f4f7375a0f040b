import { ExpiringMap } from '../common/expiring-map.js';
import { parseAddress } from './prefix-table.js';

/**
 * Which play starts count for the fill plan. Steering issues a play id with every top-level
 * manifest (`issue`); the play counts only when an edge reports having served media for that
 * id (`confirm`), and then only once per client and title per window. Manifests fetched by
 * something that never plays (a curl loop) never count; a client replaying a title counts
 * once. Memory is bounded: both tables hold at most `maxTracked` entries, oldest out first.
 * Pure: time is passed in (monotonic ms), ids come from `newId`.
 */

/** A play waiting for its first segment. */
export interface PendingPlay {
  title: string;
  isp: string;
  /** The client address steering decided on. */
  client: string;
  /** Wall time of the manifest answer (ms since the epoch): the day the play is counted in. */
  at: number;
}

export interface PlayGateOptions {
  /** Entries of each table (pending plays; counted client/title pairs). */
  maxTracked: number;
  /** How long a play id waits for its first segment before it is forgotten (ms). */
  confirmWithinMs: number;
  /** A client's plays of one title count once per this window (ms); 0 counts every confirmed play. */
  dedupWindowMs: number;
  newId: () => string;
}

/**
 * - `counted`: the play goes to the origin.
 * - `duplicate`: the client already played the title within the window.
 * - `unknown`: not an id this gate holds: another steering replica's, already confirmed
 *   (another segment, another edge), expired or evicted, or made up.
 */
export type PlayOutcome = 'counted' | 'duplicate' | 'unknown';
export type PlayVerdict = { outcome: 'counted'; play: PendingPlay } | { outcome: 'duplicate' | 'unknown' };

/**
 * The identity a play is deduplicated on: the IPv4 address, or the /64 of an IPv6 address
 * (one subscriber's LAN; a client could otherwise pick a fresh address per play).
 */
export function playClientKey(address: string): string {
  const a = parseAddress(address);
  if (!a) return address;
  if (a.v === 4) return `${a.n >>> 24}.${(a.n >>> 16) & 255}.${(a.n >>> 8) & 255}.${a.n & 255}`;
  return `${a.w[0]!.toString(16)}:${a.w[1]!.toString(16)}/64`;
}

export class PlayGate {
  private readonly pending: ExpiringMap<string, PendingPlay>;
  /** (client, title) → its pending id: a client fetching a manifest again reuses one entry. */
  private readonly pendingByPair: ExpiringMap<string, string>;
  /** (client, title) pairs counted within the window. */
  private readonly counted: ExpiringMap<string, true>;
  readonly totals: Record<PlayOutcome, number> = { counted: 0, duplicate: 0, unknown: 0 };

  constructor(private readonly opts: PlayGateOptions) {
    this.pending = new ExpiringMap(opts.maxTracked, opts.confirmWithinMs);
    this.pendingByPair = new ExpiringMap(opts.maxTracked, opts.confirmWithinMs);
    this.counted = new ExpiringMap(opts.maxTracked, opts.dedupWindowMs);
  }

  /** Plays waiting for a segment (expired ones not yet swept included). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Client/title pairs remembered as counted. */
  get countedPairs(): number {
    return this.counted.size;
  }

  /** Live entries pushed out by the memory bound (pending, counted). */
  get evicted(): { pending: number; counted: number } {
    return { pending: this.pending.evicted, counted: this.counted.evicted };
  }

  /** The play id to put in this answer's media URLs. */
  issue(play: PendingPlay, now: number): string {
    const pair = JSON.stringify([playClientKey(play.client), play.title]);
    const open = this.pendingByPair.get(pair, now);
    if (open !== undefined && this.pending.has(open, now)) return open;
    const id = this.opts.newId();
    this.pending.set(id, play, now);
    this.pendingByPair.set(pair, id, now);
    return id;
  }

  /** An edge served media for `id`. */
  confirm(id: string, now: number): PlayVerdict {
    const play = this.pending.get(id, now);
    if (!play) return this.tally({ outcome: 'unknown' });
    this.pending.delete(id);
    const pair = JSON.stringify([playClientKey(play.client), play.title]);
    if (this.pendingByPair.get(pair, now) === id) this.pendingByPair.delete(pair);
    if (this.opts.dedupWindowMs > 0) {
      if (this.counted.has(pair, now)) return this.tally({ outcome: 'duplicate' });
      this.counted.set(pair, true, now);
    }
    return this.tally({ outcome: 'counted', play });
  }

  private tally(v: PlayVerdict): PlayVerdict {
    this.totals[v.outcome]++;
    return v;
  }
}

import { Agent, request } from 'undici';
import { SwappableAgent } from '../common/swappable-agent.js';
import { type ClientTls, connectFor } from '../common/tls.js';
import type { Clock } from '../common/clock.js';
import type { EdgeConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import { Periodic } from '../common/periodic.js';
import { parsePlayId } from '../common/play-id.js';

/** One page of an edge's GET /plays (src/edge/play-seen.ts). */
export interface SeenPlaysAnswer {
  instance: string;
  next: number;
  ids: string[];
  more: boolean;
  lost: boolean;
}

/** Reads one page of an edge's seen play ids after `since`. Injected so tests can script it. */
export type SeenPlaysFetcher = (edge: EdgeConfig, since: number) => Promise<SeenPlaysAnswer>;

export interface SeenPlaysPollerOptions {
  edges: readonly EdgeConfig[];
  intervalMs: number;
  clock: Clock;
  logger: Logger;
  fetcher: SeenPlaysFetcher;
  /** Play ids an edge served media for, each edge's in the order it saw them. */
  onSeen: (ids: readonly string[], edgeId: string) => void;
  /** Pages read from one edge in one round at most (a backlog is read over the next rounds). */
  maxPagesPerRound?: number;
}

/**
 * Follows every edge's ring of seen play ids with a cursor of its own (instance, next), so
 * any number of steering replicas read the same edges without taking ids from each other.
 * A new edge instance (a restart) starts its cursor over. Like the health poller, a round
 * waits for all its reads before the next is scheduled; an edge that does not answer is
 * skipped until the next round (its ids wait in its ring).
 */
export class SeenPlaysPoller {
  private readonly cursors = new Map<string, { instance: string; next: number }>();
  private rounds: Periodic;
  private running = false;
  private edges: readonly EdgeConfig[];
  private intervalMs: number;
  /** Failed reads since start (an old edge without /plays, a dead edge). */
  failures = 0;

  constructor(private readonly opts: SeenPlaysPollerOptions) {
    this.edges = opts.edges;
    this.intervalMs = opts.intervalMs;
    this.rounds = this.newRounds();
  }

  private newRounds(): Periodic {
    return new Periodic(this.opts.clock, this.intervalMs, () => Promise.all(this.edges.map((e) => this.pollEdge(e))));
  }

  /**
   * The edges of a reloaded cluster file: a new one is read from the next round (its ids wait
   * in its ring), a removed one is no longer read and its cursor is forgotten, and one whose
   * admin URL changed starts its cursor over (another process, another ring).
   */
  setEdges(edges: readonly EdgeConfig[]): void {
    const next = new Map(edges.map((e) => [e.id, e]));
    for (const e of this.edges) {
      const now = next.get(e.id);
      if (now === undefined || now.adminUrl !== e.adminUrl) this.cursors.delete(e.id);
    }
    this.edges = edges;
  }

  /** A new read interval: the round under way finishes, the next ones come at the new pace. */
  async setIntervalMs(intervalMs: number): Promise<void> {
    if (intervalMs === this.intervalMs) return;
    this.intervalMs = intervalMs;
    const old = this.rounds;
    this.rounds = this.newRounds();
    await old.stop();
    if (this.running) this.rounds.start();
  }

  pollOnce(): Promise<void> {
    return this.rounds.runNow();
  }

  private async pollEdge(edge: EdgeConfig): Promise<void> {
    const maxPages = this.opts.maxPagesPerRound ?? 10;
    try {
      for (let page = 0; page < maxPages; page++) {
        const cursor = this.cursors.get(edge.id);
        const since = cursor?.next ?? 0;
        const a = await this.opts.fetcher(edge, since);
        if (cursor && cursor.instance !== a.instance) {
          // The edge restarted: our cursor belongs to its previous life.
          this.cursors.set(edge.id, { instance: a.instance, next: 0 });
          continue;
        }
        if (cursor && a.lost) this.opts.logger.warn({ edge: edge.id, since }, 'seen play ids overwritten before steering read them; those plays are not counted');
        this.cursors.set(edge.id, { instance: a.instance, next: a.next });
        if (a.ids.length > 0) this.opts.onSeen(a.ids, edge.id);
        if (!a.more) return;
      }
    } catch (err) {
      this.failures++;
      this.opts.logger.debug({ edge: edge.id, err: (err as Error).message }, 'seen plays not read');
    }
  }

  start(): void {
    this.running = true;
    this.rounds.start();
  }

  stop(): Promise<void> {
    this.running = false;
    return this.rounds.stop();
  }
}

/** The real fetcher: GET {adminUrl}/plays?since=N with the admin token; a malformed answer is an error. */
export function undiciSeenPlaysFetcher(opts: { timeoutMs: number; adminToken?: string; tls?: ClientTls }): {
  fetcher: SeenPlaysFetcher;
  close: () => Promise<void>;
  /** The cluster's CAs and our certificate after a reload (new connections use them). */
  setTls: (tls: ClientTls | undefined) => void;
} {
  const dispatcher = new SwappableAgent(
    (tls) => new Agent({ connections: 2, keepAliveTimeout: 30_000, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs, connect: connectFor(tls, opts.timeoutMs) }),
    opts.tls,
  );
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.adminToken) headers.authorization = `Bearer ${opts.adminToken}`;
  const fetcher: SeenPlaysFetcher = async (edge, since) => {
    const res = await request(`${edge.adminUrl}/plays?since=${since}`, { headers, dispatcher, signal: AbortSignal.timeout(opts.timeoutMs) });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
    const answer = asAnswer(JSON.parse(text));
    if (!answer) throw new Error('not a /plays answer');
    return answer;
  };
  return { fetcher, close: () => dispatcher.close(), setTls: (tls) => void dispatcher.setTls(tls) };
}

function asAnswer(body: unknown): SeenPlaysAnswer | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const b = body as Record<string, unknown>;
  if (typeof b.instance !== 'string' || !Number.isSafeInteger(b.next) || (b.next as number) < 0 || !Array.isArray(b.ids)) return undefined;
  // Ids are checked here so nothing malformed reaches the gate.
  const ids = b.ids.map(parsePlayId).filter((id): id is string => id !== undefined);
  return { instance: b.instance, next: b.next as number, ids, more: b.more === true, lost: b.lost === true };
}

import { Agent, request } from 'undici';
import type { ClientTls } from '../common/tls.js';
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
  private readonly rounds: Periodic;
  /** Failed reads since start (an old edge without /plays, a dead edge). */
  failures = 0;

  constructor(private readonly opts: SeenPlaysPollerOptions) {
    this.rounds = new Periodic(opts.clock, opts.intervalMs, () => Promise.all(opts.edges.map((e) => this.pollEdge(e))));
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
    this.rounds.start();
  }

  stop(): Promise<void> {
    return this.rounds.stop();
  }
}

/** The real fetcher: GET {adminUrl}/plays?since=N with the admin token; a malformed answer is an error. */
export function undiciSeenPlaysFetcher(opts: { timeoutMs: number; adminToken?: string; tls?: ClientTls }): { fetcher: SeenPlaysFetcher; close: () => Promise<void> } {
  const dispatcher = new Agent({ connections: 2, keepAliveTimeout: 30_000, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs, connect: { timeout: opts.timeoutMs, ...opts.tls } });
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
  return { fetcher, close: () => dispatcher.close() };
}

function asAnswer(body: unknown): SeenPlaysAnswer | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const b = body as Record<string, unknown>;
  if (typeof b.instance !== 'string' || !Number.isSafeInteger(b.next) || (b.next as number) < 0 || !Array.isArray(b.ids)) return undefined;
  // Ids are checked here so nothing malformed reaches the gate.
  const ids = b.ids.map(parsePlayId).filter((id): id is string => id !== undefined);
  return { instance: b.instance, next: b.next as number, ids, more: b.more === true, lost: b.lost === true };
}

import { Agent, request } from 'undici';
import { SwappableAgent } from '../common/swappable-agent.js';
import { type ClientTls, connectFor } from '../common/tls.js';
import type { Clock } from '../common/clock.js';
import type { EdgeConfig } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import { Periodic } from '../common/periodic.js';
import {
  type EdgeHealth,
  type EdgeHealthReport,
  type HealthParams,
  type PollResult,
  initialHealth,
  isEligible,
  step,
} from './health.js';

/** Fetches one edge's /health. Injected so tests can script answers. */
export type HealthFetcher = (edge: EdgeConfig) => Promise<PollResult>;

export interface HealthPollerOptions {
  edges: readonly EdgeConfig[];
  params: HealthParams;
  intervalMs: number;
  clock: Clock;
  logger: Logger;
  fetcher: HealthFetcher;
  /** Called after every poll of an edge (metrics). */
  onPoll?: (edgeId: string, result: PollResult, health: EdgeHealth) => void;
}

/**
 * Polls every edge's /health each interval, feeds the state machine and keeps a snapshot.
 * A round waits for all its polls (each bounded by the fetcher's timeout) before the next
 * is scheduled, so a slow edge never piles up requests.
 */
export class HealthPoller {
  private readonly health = new Map<string, EdgeHealth>();
  private rounds: Periodic;
  private running = false;
  /** The edges polled now (a reload replaces them), by id. */
  private edges: ReadonlyMap<string, EdgeConfig>;
  private params: HealthParams;
  private intervalMs: number;
  /** The poll in flight per edge id: an edge is never polled twice at once. */
  private readonly polling = new Map<string, { edge: EdgeConfig; done: Promise<void> }>();

  constructor(private readonly opts: HealthPollerOptions) {
    const now = opts.clock.now();
    for (const e of opts.edges) this.health.set(e.id, initialHealth(now));
    this.edges = new Map(opts.edges.map((e) => [e.id, e]));
    this.params = opts.params;
    this.intervalMs = opts.intervalMs;
    this.rounds = this.newRounds();
  }

  private newRounds(): Periodic {
    return new Periodic(this.opts.clock, this.intervalMs, () => Promise.all([...this.edges.values()].map((e) => this.pollEdge(e))));
  }

  /**
   * The edges and parameters of a reloaded cluster file. An edge that is new, or whose URLs
   * changed (another machine, as far as its health goes), starts `unknown` and is polled at
   * once, so it is ranked within one poll rather than one interval; a removed edge is forgotten
   * (a poll of it still in flight is dropped). Thresholds, downAfter and upAfter apply from
   * the next poll on. Returns the ids added, removed and restarted.
   */
  setEdges(edges: readonly EdgeConfig[], params: HealthParams): { added: string[]; removed: string[]; restarted: string[] } {
    const before = this.edges;
    const next = new Map(edges.map((e) => [e.id, e]));
    const out = { added: [] as string[], removed: [] as string[], restarted: [] as string[] };
    const fresh: EdgeConfig[] = [];
    const now = this.opts.clock.now();
    for (const e of edges) {
      const old = before.get(e.id);
      if (old !== undefined && old.url === e.url && old.adminUrl === e.adminUrl) continue;
      (old === undefined ? out.added : out.restarted).push(e.id);
      this.health.set(e.id, initialHealth(now));
      fresh.push(e);
    }
    for (const id of before.keys()) {
      if (next.has(id)) continue;
      out.removed.push(id);
      this.health.delete(id);
    }
    this.edges = next;
    this.params = params;
    if (this.running) for (const e of fresh) void this.pollEdge(e);
    return out;
  }

  /** A new poll interval: the current round finishes, the next ones come at the new pace. */
  async setIntervalMs(intervalMs: number): Promise<void> {
    if (intervalMs === this.intervalMs) return;
    this.intervalMs = intervalMs;
    const old = this.rounds;
    this.rounds = this.newRounds();
    await old.stop();
    if (this.running) this.rounds.start();
  }

  /** Current health of every edge (a fresh object map; values are immutable). */
  snapshot(): ReadonlyMap<string, EdgeHealth> {
    return this.health;
  }

  get(edgeId: string): EdgeHealth | undefined {
    return this.health.get(edgeId);
  }

  /** Ids of edges that may receive new clients. */
  eligibleIds(): Set<string> {
    const out = new Set<string>();
    for (const [id, h] of this.health) if (isEligible(h)) out.add(id);
    return out;
  }

  /** Runs one round now (tests, and start-up so the first answer is not "no edge"). */
  pollOnce(): Promise<void> {
    return this.rounds.runNow();
  }

  /**
   * Polls one edge now, after any poll of it already out (that one may predate what the
   * caller changed): an operator's drain shows within one round trip, not one interval.
   */
  async pollNow(edgeId: string): Promise<void> {
    await this.polling.get(edgeId)?.done;
    const edge = this.edges.get(edgeId);
    if (edge) await this.pollEdge(edge);
  }

  private pollEdge(edge: EdgeConfig): Promise<void> {
    const inFlight = this.polling.get(edge.id);
    if (inFlight && sameUrls(inFlight.edge, edge)) return inFlight.done;
    const entry = { edge, done: Promise.resolve() };
    entry.done = this.pollEdgeNow(edge).finally(() => {
      if (this.polling.get(edge.id) === entry) this.polling.delete(edge.id);
    });
    this.polling.set(edge.id, entry);
    return entry.done;
  }

  private async pollEdgeNow(edge: EdgeConfig): Promise<void> {
    let result: PollResult;
    try {
      result = await this.opts.fetcher(edge);
    } catch (err) {
      result = { ok: false, error: (err as Error).message, latencyMs: 0 };
    }
    // Removed or moved by a reload while this poll was out: its answer is about nothing we rank.
    if (!sameUrls(this.edges.get(edge.id), edge)) return;
    const before = this.health.get(edge.id) ?? initialHealth(this.opts.clock.now());
    const after = step(before, result, this.params, this.opts.clock.now());
    this.health.set(edge.id, after);
    if (after.state !== before.state) {
      this.opts.logger.info({ edge: edge.id, from: before.state, to: after.state, reason: after.reason }, 'edge health changed');
    }
    this.opts.onPoll?.(edge.id, result, after);
  }

  /** Starts periodic polling (first round immediately). */
  start(): void {
    this.running = true;
    this.rounds.start();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.rounds.stop();
    await Promise.all([...this.polling.values()].map((p) => p.done));
  }
}

function sameUrls(a: EdgeConfig | undefined, b: EdgeConfig): boolean {
  return a !== undefined && a.url === b.url && a.adminUrl === b.adminUrl;
}

/**
 * The real fetcher: GET {adminUrl}/health with the admin bearer token, a short timeout,
 * and a plausibility check of the JSON (a wrong answer is a failed poll, not a crash).
 */
export function undiciHealthFetcher(opts: { timeoutMs: number; adminToken?: string; dispatcher?: Agent; now?: () => number; tls?: ClientTls }): {
  fetcher: HealthFetcher;
  close: () => Promise<void>;
  /** The cluster's CAs and our certificate after a reload (new connections use them). */
  setTls: (tls: ClientTls | undefined) => void;
} {
  const own = opts.dispatcher
    ? undefined
    : new SwappableAgent(
        (tls) => new Agent({ connections: 2, keepAliveTimeout: 30_000, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs, connect: connectFor(tls, opts.timeoutMs) }),
        opts.tls,
      );
  const dispatcher = opts.dispatcher ?? own!;
  const now = opts.now ?? (() => performance.now());
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.adminToken) headers.authorization = `Bearer ${opts.adminToken}`;
  const fetcher: HealthFetcher = async (edge) => {
    const t0 = now();
    const ms = () => Math.max(0, now() - t0);
    try {
      const res = await request(`${edge.adminUrl}/health`, {
        method: 'GET',
        headers,
        dispatcher,
        signal: AbortSignal.timeout(opts.timeoutMs),
      });
      const text = await res.body.text();
      // A draining or overloaded edge may answer 503 with its JSON: still read it.
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return { ok: false, error: `HTTP ${res.statusCode}, not JSON`, latencyMs: ms() };
      }
      const report = asReport(body);
      if (!report) return { ok: false, error: `HTTP ${res.statusCode}, not a health report`, latencyMs: ms() };
      if (res.statusCode >= 400 && report.status === 'ok') return { ok: false, error: `HTTP ${res.statusCode}`, latencyMs: ms() };
      return { ok: true, report, latencyMs: ms() };
    } catch (err) {
      const e = err as Error & { code?: string };
      const error = e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_CONNECT_TIMEOUT' ? 'timeout' : (e.code ?? e.message);
      return { ok: false, error, latencyMs: ms() };
    }
  };
  return { fetcher, close: () => dispatcher.close(), setTls: (tls) => void own?.setTls(tls) };
}

function asReport(body: unknown): EdgeHealthReport | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const b = body as Record<string, unknown>;
  if (b.status !== 'ok' && b.status !== 'draining' && b.status !== 'overloaded') return undefined;
  return {
    ...(b as unknown as EdgeHealthReport),
    connections: typeof b.connections === 'number' ? b.connections : 0,
    errorRatio: typeof b.errorRatio === 'number' ? b.errorRatio : 0,
  };
}

import { Agent, request } from 'undici';
import type { ClientTls } from '../common/tls.js';
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
  private readonly rounds: Periodic;

  constructor(private readonly opts: HealthPollerOptions) {
    const now = opts.clock.now();
    for (const e of opts.edges) this.health.set(e.id, initialHealth(now));
    this.rounds = new Periodic(opts.clock, opts.intervalMs, () => Promise.all(opts.edges.map((e) => this.pollEdge(e))));
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

  private async pollEdge(edge: EdgeConfig): Promise<void> {
    let result: PollResult;
    try {
      result = await this.opts.fetcher(edge);
    } catch (err) {
      result = { ok: false, error: (err as Error).message, latencyMs: 0 };
    }
    const before = this.health.get(edge.id) ?? initialHealth(this.opts.clock.now());
    const after = step(before, result, this.opts.params, this.opts.clock.now());
    this.health.set(edge.id, after);
    if (after.state !== before.state) {
      this.opts.logger.info({ edge: edge.id, from: before.state, to: after.state, reason: after.reason }, 'edge health changed');
    }
    this.opts.onPoll?.(edge.id, result, after);
  }

  /** Starts periodic polling (first round immediately). */
  start(): void {
    this.rounds.start();
  }

  stop(): Promise<void> {
    return this.rounds.stop();
  }
}

/**
 * The real fetcher: GET {adminUrl}/health with the admin bearer token, a short timeout,
 * and a plausibility check of the JSON (a wrong answer is a failed poll, not a crash).
 */
export function undiciHealthFetcher(opts: { timeoutMs: number; adminToken?: string; dispatcher?: Agent; now?: () => number; tls?: ClientTls }): {
  fetcher: HealthFetcher;
  close: () => Promise<void>;
} {
  const dispatcher =
    opts.dispatcher ??
    new Agent({ connections: 2, keepAliveTimeout: 30_000, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs, connect: { timeout: opts.timeoutMs, ...opts.tls } });
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
  return { fetcher, close: () => dispatcher.close() };
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

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { BREAKER_STATES, type BreakerState } from './circuit-breaker.js';
import type { CacheEvents } from './edge-cache.js';
import type { UpstreamOptions } from './upstream.js';

/** The edge's Prometheus series. Tier labels: HIT-MEM, HIT-DISK, HIT-FILL (joined another request's fetch), MISS, and "none" for answers without a body source. */
export class EdgeMetrics {
  readonly requests: Counter<'tier' | 'status'>;
  readonly responseBytes: Counter<'tier'>;
  readonly duration: Histogram<'tier'>;
  readonly upstreamFetches: Counter<'result'>;
  readonly upstreamBytes: Counter;
  readonly coalescedWaits: Counter;
  readonly evictions: Counter<'tier'>;
  readonly evictedBytes: Counter<'tier'>;
  readonly diskWriteErrors: Counter;
  readonly representationChanges: Counter;
  readonly tierBytes: Gauge<'tier'>;
  readonly tierCapacity: Gauge<'tier'>;
  readonly connections: Gauge;
  readonly fillBytes: Counter<'source'>;

  constructor(
    readonly registry: Registry,
    sample: () => { memory: number; memoryCap: number; disk: number; diskCap: number; connections: number },
  ) {
    const registers = [registry];
    this.requests = new Counter({ name: 'reelcdn_edge_requests_total', help: 'Answers to /c/ requests by cache tier and status', labelNames: ['tier', 'status'], registers });
    this.responseBytes = new Counter({ name: 'reelcdn_edge_response_bytes_total', help: 'Body bytes answered by cache tier', labelNames: ['tier'], registers });
    this.duration = new Histogram({
      name: 'reelcdn_edge_request_duration_seconds',
      help: 'Time to answer a /c/ request, by tier',
      labelNames: ['tier'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.upstreamFetches = new Counter({ name: 'reelcdn_edge_upstream_fetches_total', help: 'Slice fetches and revalidations sent upstream, by result', labelNames: ['result'], registers });
    this.upstreamBytes = new Counter({ name: 'reelcdn_edge_upstream_bytes_total', help: 'Bytes received from upstream', registers });
    this.coalescedWaits = new Counter({ name: 'reelcdn_edge_coalesced_waits_total', help: 'Requests that joined an in-flight slice fetch instead of starting one', registers });
    this.evictions = new Counter({ name: 'reelcdn_edge_evictions_total', help: 'Slices evicted, by tier', labelNames: ['tier'], registers });
    this.evictedBytes = new Counter({ name: 'reelcdn_edge_evicted_bytes_total', help: 'Bytes evicted, by tier', labelNames: ['tier'], registers });
    this.diskWriteErrors = new Counter({ name: 'reelcdn_edge_disk_write_errors_total', help: 'Slices that could not be written to disk (full or failing disk)', registers });
    this.representationChanges = new Counter({
      name: 'reelcdn_edge_answers_cut_total',
      help: 'Answers cut mid-body because the object changed upstream (never finished with another version’s bytes)',
      registers,
    });
    this.tierBytes = new Gauge({
      name: 'reelcdn_edge_tier_bytes',
      help: 'Bytes held, by tier',
      labelNames: ['tier'],
      registers,
      collect() {
        const s = sample();
        this.set({ tier: 'memory' }, s.memory);
        this.set({ tier: 'disk' }, s.disk);
      },
    });
    this.tierCapacity = new Gauge({
      name: 'reelcdn_edge_tier_capacity_bytes',
      help: 'Capacity, by tier',
      labelNames: ['tier'],
      registers,
      collect() {
        const s = sample();
        this.set({ tier: 'memory' }, s.memoryCap);
        this.set({ tier: 'disk' }, s.diskCap);
      },
    });
    this.fillBytes = new Counter({ name: 'reelcdn_edge_fill_fetched_bytes_total', help: 'Bytes fetched by the fill agent, by source kind (peer or origin)', labelNames: ['source'], registers });
    this.connections = new Gauge({
      name: 'reelcdn_edge_open_connections',
      help: 'Open client connections on the public port',
      registers,
      collect() {
        this.set(sample().connections);
      },
    });
  }

  /** Fill progress gauges sample the agent lazily. */
  watchFill(progress: () => { filesDone: number; filesTotal: number; bytesDone: number; bytesTotal: number; held: number }): void {
    const registers = [this.registry];
    new Gauge({
      name: 'reelcdn_edge_fill_files',
      help: 'Files of the fill manifest, by state (done or total)',
      labelNames: ['state'],
      registers,
      collect() {
        const p = progress();
        this.set({ state: 'done' }, p.filesDone);
        this.set({ state: 'total' }, p.filesTotal);
      },
    });
    new Gauge({
      name: 'reelcdn_edge_fill_bytes',
      help: 'Bytes of the fill manifest, by state (done or total)',
      labelNames: ['state'],
      registers,
      collect() {
        const p = progress();
        this.set({ state: 'done' }, p.bytesDone);
        this.set({ state: 'total' }, p.bytesTotal);
      },
    });
    new Gauge({
      name: 'reelcdn_edge_fill_held_titles',
      help: 'Titles of the fill manifest held whole and verified',
      registers,
      collect() {
        this.set(progress().held);
      },
    });
  }

  /**
   * Status series (sampled on scrape): `reelcdn_edge_info{isp,version}` 1, for joins by ISP;
   * `reelcdn_edge_health_status{status}` 1 for the status /health reports (ok, draining,
   * overloaded), 0 for the others; the fill window (open, next start).
   */
  watchStatus(
    isp: string,
    version: string,
    sample: () => { status: 'ok' | 'draining' | 'overloaded'; fillWindowOpen: boolean; nextFillWindowStart: string },
  ): void {
    const registers = [this.registry];
    const info = new Gauge({ name: 'reelcdn_edge_info', help: 'Constant 1, labelled with the edge\'s ISP and version', labelNames: ['isp', 'version'], registers });
    info.set({ isp, version }, 1);
    new Gauge({
      name: 'reelcdn_edge_health_status',
      help: 'Status the edge reports on /health: 1 for the current one (ok, draining, overloaded), 0 for the others',
      labelNames: ['status'],
      registers,
      collect() {
        const now = sample().status;
        for (const st of ['ok', 'draining', 'overloaded'] as const) this.set({ status: st }, st === now ? 1 : 0);
      },
    });
    new Gauge({
      name: 'reelcdn_edge_fill_window_open',
      help: '1 while the node is inside its fill window (its own timezone), else 0',
      registers,
      collect() {
        this.set(sample().fillWindowOpen ? 1 : 0);
      },
    });
    new Gauge({
      name: 'reelcdn_edge_fill_next_window_start_seconds',
      help: 'Unix time of the next start of the fill window',
      registers,
      collect() {
        this.set(Math.floor(Date.parse(sample().nextFillWindowStart) / 1000));
      },
    });
  }

  /**
   * For an edge with a parent: `reelcdn_edge_parent_breaker_state{state}` 1 for the breaker's
   * current state (closed, open, half-open), 0 for the others; transitions by target state; and
   * misses sent to the origin instead of the parent.
   */
  watchParentBreaker(state: () => BreakerState | undefined): NonNullable<UpstreamOptions['events']> {
    const registers = [this.registry];
    new Gauge({
      name: 'reelcdn_edge_parent_breaker_state',
      help: 'Circuit breaker in front of the parent edge: 1 for the current state (closed, open, half-open), 0 for the others',
      labelNames: ['state'],
      registers,
      collect() {
        const now = state();
        for (const st of BREAKER_STATES) this.set({ state: st }, st === now ? 1 : 0);
      },
    });
    const transitions = new Counter({
      name: 'reelcdn_edge_parent_breaker_transitions_total',
      help: 'Parent circuit breaker transitions, by the state entered',
      labelNames: ['to'],
      registers,
    });
    const fallbacks = new Counter({
      name: 'reelcdn_edge_parent_fallbacks_total',
      help: 'Upstream requests sent to the origin instead of the parent (parent failed or breaker not closed)',
      registers,
    });
    return { breakerTransition: (t) => transitions.inc({ to: t.to }), fallback: () => fallbacks.inc() };
  }

  cacheEvents(): CacheEvents {
    return {
      upstreamFetch: (result, bytes) => {
        this.upstreamFetches.inc({ result });
        if (bytes > 0) this.upstreamBytes.inc(bytes);
      },
      coalescedWait: () => this.coalescedWaits.inc(),
      evicted: (tier, bytes) => {
        this.evictions.inc({ tier });
        this.evictedBytes.inc({ tier }, bytes);
      },
      diskWriteError: () => this.diskWriteErrors.inc(),
      representationChanged: () => this.representationChanges.inc(),
    };
  }
}

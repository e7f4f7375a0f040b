import { Counter, Gauge, Histogram, type Metric, type MetricObjectWithValues, type MetricType, type MetricValueWithName, type Registry } from 'prom-client';
import { BREAKER_STATES, type BreakerState } from './circuit-breaker.js';
import type { CacheEvents } from './edge-cache.js';
import { type QoeInput, type QoeTracker, type SessionOutcome, STARTUP_BOUNDS_MS, implausible, plausible } from './qoe.js';
import type { UpstreamOptions } from './upstream.js';

/** The edge's Prometheus series. Tier labels: HIT-MEM, HIT-DISK, HIT-FILL (joined another request's fetch), MISS, and "none" for answers without a body source. */
export class EdgeMetrics {
  readonly requests: Counter<'tier' | 'status'>;
  readonly responseBytes: Counter<'tier'>;
  readonly duration: TallyHistogram;
  /** Answers to /c/ requests, counted in plain numbers; the three series above read it on scrape. */
  readonly answers = new AnswerTally();
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
    const answers = this.answers;
    this.requests = new Counter({
      name: 'reelcdn_edge_requests_total',
      help: 'Answers to /c/ requests by cache tier and status',
      labelNames: ['tier', 'status'],
      registers,
      collect() {
        this.reset();
        answers.eachRequestCount((tier, status, n) => this.inc({ tier, status: String(status) }, n));
      },
    });
    this.responseBytes = new Counter({
      name: 'reelcdn_edge_response_bytes_total',
      help: 'Body bytes answered by cache tier',
      labelNames: ['tier'],
      registers,
      collect() {
        this.reset();
        answers.eachTierBytes((tier, n) => this.inc({ tier }, n));
      },
    });
    this.duration = new TallyHistogram('reelcdn_edge_request_duration_seconds', 'Time to answer a /c/ request, by tier', answers);
    registry.registerMetric(this.duration as unknown as Metric);
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
      // A multi-worker node's series come from its primary (which aggregates first), not a sum of copies.
      aggregator: 'first',
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
      aggregator: 'first',
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
      aggregator: 'first',
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
    const info = new Gauge({ name: 'reelcdn_edge_info', help: 'Constant 1, labelled with the edge\'s ISP and version', labelNames: ['isp', 'version'], registers, aggregator: 'first' });
    info.set({ isp, version }, 1);
    new Gauge({
      name: 'reelcdn_edge_health_status',
      aggregator: 'first',
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
      aggregator: 'first',
      help: '1 while the node is inside its fill window (its own timezone), else 0',
      registers,
      collect() {
        this.set(sample().fillWindowOpen ? 1 : 0);
      },
    });
    new Gauge({
      name: 'reelcdn_edge_fill_next_window_start_seconds',
      aggregator: 'first',
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
      // Each worker has its own breaker: a node is in a state when any worker is.
      aggregator: 'max',
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

  /**
   * The CMCD series (docs/operations.md, "CMCD and CMSD"), fed by the returned sink with each
   * request that carries CMCD; sessions and startup come from `qoe`, which also keeps /health's
   * block. No series is labelled by anything a client chooses but `ot`, itself one of a fixed set.
   */
  watchQoe(qoe: QoeTracker): CmcdSink {
    const registers = [this.registry];
    const requests = new Counter({ name: 'reelcdn_edge_cmcd_requests_total', help: 'Requests carrying CMCD, by object type (ot; other: not a CTA-5004 type, none: no ot)', labelNames: ['ot'], registers });
    // A worker of a node forwards its sessions to the primary (QoeTracker's forward): its series stay at zero.
    const sessionSeen = this.watchSessions(() => qoe.activeSessions());
    const media = new Counter({ name: 'reelcdn_edge_cmcd_media_requests_total', help: 'CMCD requests for media (ot a, v, av; or no ot but a br)', registers });
    const starved = new Counter({ name: 'reelcdn_edge_cmcd_starved_requests_total', help: 'CMCD media requests with bs (buffer starved since the last request): over media requests, the rebuffer ratio', registers });
    const bitrate = new Histogram({ name: 'reelcdn_edge_cmcd_bitrate_kbps', help: 'Encoded bitrate (br) of the media requested, kbps', buckets: [200, 400, 800, 1200, 2000, 3000, 4500, 6000, 8000, 12000, 20000, 40000], registers });
    const buffer = new Histogram({ name: 'reelcdn_edge_cmcd_buffer_length_ms', help: 'Buffer length (bl) players report with media requests, ms', buckets: [0, 500, 1000, 2000, 4000, 6000, 10000, 15000, 20000, 30000, 60000, 120000], registers });
    const throughput = new Histogram({ name: 'reelcdn_edge_cmcd_measured_throughput_kbps', help: 'Throughput players measured (mtp), kbps', buckets: [500, 1000, 2000, 4000, 8000, 15000, 25000, 50000, 100000, 250000, 1000000], registers });
    const rejected = new Counter({ name: 'reelcdn_edge_cmcd_implausible_total', help: 'CMCD values left out of the QoE sums and histograms as implausible (br over 200,000 kbps, bl or dl over 600,000 ms, mtp over 10,000,000 kbps), by key', labelNames: ['key'], registers });
    const deadline = new Histogram({ name: 'reelcdn_edge_cmcd_deadline_ms', help: 'Deadline (dl): how soon players need the object, ms', buckets: [100, 250, 500, 1000, 2000, 4000, 8000, 15000, 30000, 60000], registers });
    return {
      record(c: CmcdSample) {
        const out = qoe.record(c);
        requests.inc({ ot: otLabel(c.ot) });
        sessionSeen(out);
        if (out.media) {
          media.inc();
          if (c.bs === true) starved.inc();
          if (plausible('br', c.br)) bitrate.observe(c.br);
          if (plausible('bl', c.bl)) buffer.observe(c.bl);
        }
        if (plausible('mtp', c.mtp)) throughput.observe(c.mtp);
        if (plausible('dl', c.dl)) deadline.observe(c.dl);
        // Counted wherever the value appears (a br on an init segment too): what a client tried.
        if (implausible('br', c.br)) rejected.inc({ key: 'br' });
        if (implausible('bl', c.bl)) rejected.inc({ key: 'bl' });
        if (implausible('mtp', c.mtp)) rejected.inc({ key: 'mtp' });
        if (implausible('dl', c.dl)) rejected.inc({ key: 'dl' });
      },
    };
  }

  /**
   * The session series: sessions started, active sessions (`active`, read when scraped), startup
   * times. A one-process edge's come from its QoeTracker; a node's from its primary's one table
   * (cluster/node-sessions.ts), its workers reporting zero. The returned function takes what one
   * sighting changed.
   */
  watchSessions(active: () => number): (o: SessionOutcome) => void {
    const registers = [this.registry];
    const sessions = new Counter({ name: 'reelcdn_edge_cmcd_sessions_total', help: 'CMCD sessions (sid) first seen by this edge (a node: by any of its workers)', registers });
    new Gauge({
      name: 'reelcdn_edge_cmcd_active_sessions',
      help: 'CMCD sessions (sid) seen in the last 5 minutes',
      registers,
      collect() {
        this.set(active());
      },
    });
    const startup = new Histogram({ name: 'reelcdn_edge_cmcd_startup_seconds', help: 'Startup of a session: its first request with su to its first without, seconds (once per sid)', buckets: STARTUP_BOUNDS_MS.map((ms) => ms / 1000), registers });
    return (o) => {
      if (o.newSession) sessions.inc();
      if (o.startupMs >= 0) startup.observe(o.startupMs / 1000);
    };
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

/** The CMCD keys the metrics read (a `Cmcd` of src/common/cmcd.ts is one). */
export interface CmcdSample extends QoeInput {
  mtp?: number;
  dl?: number;
}

/** Where each request's CMCD goes (after its token check): QoE tracker and metrics. */
export interface CmcdSink {
  record(c: CmcdSample): void;
}

/** The CTA-5004 object types: the `ot` label takes these, `other` and `none` only. */
const OT_LABELS = new Set(['m', 'a', 'v', 'av', 'i', 'c', 'tt', 'k', 'o']);

function otLabel(ot: string | undefined): string {
  return ot === undefined ? 'none' : OT_LABELS.has(ot) ? ot : 'other';
}

/** The tier label of an answer: its X-Cache, or "none" for answers without one. */
export type AnswerTier = 'HIT-MEM' | 'HIT-DISK' | 'HIT-FILL' | 'MISS' | 'none';
const ANSWER_TIERS: readonly AnswerTier[] = ['HIT-MEM', 'HIT-DISK', 'HIT-FILL', 'MISS', 'none'];
const NONE = 4;

/** Upper bounds of reelcdn_edge_request_duration_seconds, seconds. */
export const DURATION_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Status codes 0..599, one slot each: no map lookup and no label string per answer. */
const STATUS_SLOTS = 600;

function tierIndex(tier: string | undefined): number {
  switch (tier) {
    case 'HIT-MEM':
      return 0;
    case 'HIT-DISK':
      return 1;
    case 'HIT-FILL':
      return 2;
    case 'MISS':
      return 3;
    default:
      return NONE;
  }
}

/**
 * Answers counted as plain numbers — requests by (tier, status), bytes and a duration histogram
 * by tier — so counting one costs a few array increments; prom-client reads the totals only
 * when scraped. Series appear once counted (none at zero), as prom-client's own would.
 */
export class AnswerTally {
  private readonly requests = new Float64Array(ANSWER_TIERS.length * STATUS_SLOTS);
  private readonly bytes = new Float64Array(ANSWER_TIERS.length);
  private readonly bytesSeen = new Uint8Array(ANSWER_TIERS.length);
  /** Per tier: one count per bucket (not cumulative), then the +Inf overflow. */
  private readonly buckets = new Float64Array(ANSWER_TIERS.length * (DURATION_BUCKETS.length + 1));
  private readonly sums = new Float64Array(ANSWER_TIERS.length);
  private readonly counts = new Float64Array(ANSWER_TIERS.length);

  /** One answer: its X-Cache (undefined: none), status, body bytes, time to answer in seconds. */
  record(tier: string | undefined, status: number, bytes: number, seconds: number): void {
    const t = tierIndex(tier);
    const s = status >= 0 && status < STATUS_SLOTS ? status : 0;
    this.requests[t * STATUS_SLOTS + s]! += 1;
    if (bytes > 0) {
      this.bytes[t]! += bytes;
      this.bytesSeen[t] = 1;
    }
    let b = 0;
    while (b < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[b]!) b++;
    this.buckets[t * (DURATION_BUCKETS.length + 1) + b]! += 1;
    this.sums[t]! += seconds;
    this.counts[t]! += 1;
  }

  eachRequestCount(fn: (tier: AnswerTier, status: number, n: number) => void): void {
    for (let t = 0; t < ANSWER_TIERS.length; t++) {
      for (let s = 0; s < STATUS_SLOTS; s++) {
        const n = this.requests[t * STATUS_SLOTS + s]!;
        if (n > 0) fn(ANSWER_TIERS[t]!, s, n);
      }
    }
  }

  eachTierBytes(fn: (tier: AnswerTier, n: number) => void): void {
    for (let t = 0; t < ANSWER_TIERS.length; t++) if (this.bytesSeen[t]) fn(ANSWER_TIERS[t]!, this.bytes[t]!);
  }

  /** Per tier answered at least once: cumulative bucket counts (as `le` says), sum and count. */
  eachDuration(fn: (tier: AnswerTier, cumulative: number[], sum: number, count: number) => void): void {
    const width = DURATION_BUCKETS.length + 1;
    for (let t = 0; t < ANSWER_TIERS.length; t++) {
      if (this.counts[t] === 0) continue;
      const cumulative: number[] = [];
      let acc = 0;
      for (let b = 0; b < width; b++) cumulative.push((acc += this.buckets[t * width + b]!));
      fn(ANSWER_TIERS[t]!, cumulative, this.sums[t]!, this.counts[t]!);
    }
  }
}

/**
 * A histogram prom-client exposes (text and JSON, so a node can aggregate its workers') whose
 * observations are counted by an AnswerTally: `get()` is all a registry asks of a metric.
 */
export class TallyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly tally: AnswerTally,
  ) {}

  async get(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const values: MetricValueWithName<string>[] = [];
    this.tally.eachDuration((tier, cumulative, sum, count) => {
      cumulative.forEach((n, i) => {
        const le = i < DURATION_BUCKETS.length ? DURATION_BUCKETS[i]! : '+Inf';
        values.push({ metricName: `${this.name}_bucket`, labels: { le, tier }, value: n });
      });
      values.push({ metricName: `${this.name}_sum`, labels: { tier }, value: sum });
      values.push({ metricName: `${this.name}_count`, labels: { tier }, value: count });
    });
    return { name: this.name, help: this.help, type: 'histogram' as unknown as MetricType, values, aggregator: this.aggregator, collect: () => {} };
  }

  /** Registry.resetMetrics() resets every metric; the tally's counts are the process's and stay. */
  reset(): void {}
}

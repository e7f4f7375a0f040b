import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Catalog } from './catalog.js';

export interface OriginMetrics {
  /** Public requests by method and status. */
  requests: Counter<'method' | 'status'>;
  /** File bytes sent on the public port, by class (`manifest` or `media`); multipart framing excluded. */
  bytes: Counter<'class'>;
  /** Plays reported by steering, by ISP. */
  plays: Counter<'isp'>;
  /** Requests to /o/ refused with 403, by reason (one of ORIGIN_REFUSALS: a bounded label). */
  refused: Counter<'reason'>;
  /** Reads of /o/ the store failed (answered 503), by reason (one of STORE_FAILURES). */
  storeErrors: Counter<'reason'>;
  /** Fill plans made in the planner's thread, by outcome (made, stale, failed). */
  fillPlans: Counter<'outcome'>;
  /** Seconds a fill plan took in the planner's thread (plans kept or dropped as stale). */
  fillPlanSeconds: Histogram;
  /** CPU seconds the planner's thread spent on plans. */
  fillPlanCpuSeconds: Counter;
}

/** Registers the origin's series; the catalog gauges read the current catalog on scrape. */
export function createOriginMetrics(registry: Registry, catalog: () => Catalog): OriginMetrics {
  new Gauge({
    name: 'reelcdn_origin_catalog_titles',
    help: 'Titles in the catalog',
    registers: [registry],
    collect() {
      this.set(catalog().size);
    },
  });
  new Gauge({
    name: 'reelcdn_origin_catalog_bytes',
    help: 'Bytes of all titles in the catalog',
    registers: [registry],
    collect() {
      this.set(catalog().bytes);
    },
  });
  return {
    requests: new Counter({
      name: 'reelcdn_origin_requests_total',
      help: 'Requests on the origin public port',
      labelNames: ['method', 'status'],
      registers: [registry],
    }),
    bytes: new Counter({
      name: 'reelcdn_origin_bytes_total',
      help: 'File bytes sent on the origin public port',
      labelNames: ['class'],
      registers: [registry],
    }),
    plays: new Counter({
      name: 'reelcdn_origin_plays_total',
      help: 'Plays reported by steering',
      labelNames: ['isp'],
      registers: [registry],
    }),
    refused: new Counter({
      name: 'reelcdn_origin_refused_total',
      help: 'Requests to /o/ refused (403): neither a valid token nor a verified client certificate',
      labelNames: ['reason'],
      registers: [registry],
    }),
    storeErrors: new Counter({
      name: 'reelcdn_origin_store_errors_total',
      help: 'Reads of /o/ the object store failed (answered 503 with Retry-After), by reason: throttled, server-error, unreachable, refused',
      labelNames: ['reason'],
      registers: [registry],
    }),
    fillPlans: new Counter({
      name: 'reelcdn_origin_fill_plans_total',
      help: 'Fill plans made off the event loop, by outcome: made (handed out), stale (inputs changed while it was made: dropped), failed (the previous plan stays)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    fillPlanSeconds: new Histogram({
      name: 'reelcdn_origin_fill_plan_seconds',
      help: 'Seconds one fill plan took in the planner thread',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers: [registry],
    }),
    fillPlanCpuSeconds: new Counter({
      name: 'reelcdn_origin_fill_plan_cpu_seconds_total',
      help: 'CPU seconds the fill planner thread spent making plans',
      registers: [registry],
    }),
  };
}

import { AggregatorRegistry, Counter, Gauge, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';

/** What a worker reports on each scrape. */
/** A metric as IPC carries it: its values, no functions. */
export type MetricData = Omit<MetricObjectWithValues<MetricValue<string>>, 'collect'>;

export interface WorkerScrape {
  worker: number;
  metrics: MetricData[];
  cpuSeconds: number;
  rssBytes: number;
  connections: number;
  eventLoopDelaySeconds: number;
  restarts: number;
}

/**
 * The node's /metrics: every series under its usual name is the node as a whole, the primary's
 * and the workers' registries aggregated as prom-client aggregates a cluster — each metric by its
 * own aggregator: counters and volumes summed (the primary holds the disk tier and the fill, the
 * workers the answers and the memory tiers, each reporting zero for what it does not hold),
 * status and info gauges taken from the primary ('first'), which comes first. Dashboards written
 * for a one-process edge read it unchanged. Per-worker series have names of their own
 * (`reelcdn_edge_worker_*{worker="N"}`) so that a sum over a metric never counts a worker twice.
 */
export async function nodeMetricsText(
  primary: Registry,
  workers: WorkerScrape[],
  defaultLabels: Record<string, string>,
  /** Metrics of workers that are gone or late (counters only): summed in, no per-worker series. */
  carried: MetricData[][] = [],
): Promise<string> {
  const inputs = [await primary.getMetricsAsJSON(), ...workers.map((w) => w.metrics), ...carried] as MetricObjectWithValues<MetricValue<string>>[][];
  const node = AggregatorRegistry.aggregate(inputs);
  return (await node.metrics()) + (await perWorkerRegistry(workers, defaultLabels).metrics());
}

/** Counters and histograms only: what must keep counting after a worker is gone. */
export function monotonicOnly(metrics: MetricData[]): MetricData[] {
  return metrics.filter((m) => String(m.type) === 'counter' || String(m.type) === 'histogram');
}

function perWorkerRegistry(workers: WorkerScrape[], defaultLabels: Record<string, string>): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(defaultLabels);
  const labelNames = ['worker'];
  const registers = [registry];
  const up = new Gauge({ name: 'reelcdn_edge_worker_up', help: '1 for each worker process that answered this scrape', labelNames, registers });
  const restarts = new Counter({ name: 'reelcdn_edge_worker_restarts_total', help: 'Times the primary restarted this worker after it died', labelNames, registers });
  const requests = new Counter({ name: 'reelcdn_edge_worker_requests_total', help: 'Answers to /c/ requests by this worker', labelNames, registers });
  const bytes = new Counter({ name: 'reelcdn_edge_worker_response_bytes_total', help: 'Body bytes answered by this worker', labelNames, registers });
  const cpu = new Counter({ name: 'reelcdn_edge_worker_cpu_seconds_total', help: 'User and system CPU time of this worker process', labelNames, registers });
  const rss = new Gauge({ name: 'reelcdn_edge_worker_resident_memory_bytes', help: 'Resident memory of this worker process', labelNames, registers });
  const conns = new Gauge({ name: 'reelcdn_edge_worker_open_connections', help: 'Client connections open on this worker', labelNames, registers });
  const lag = new Gauge({ name: 'reelcdn_edge_worker_event_loop_delay_seconds', help: 'p99 event loop delay of this worker since the last /health', labelNames, registers });
  for (const w of workers) {
    const l = { worker: String(w.worker) };
    up.set(l, 1);
    if (w.restarts > 0) restarts.inc(l, w.restarts);
    requests.inc(l, total(w.metrics, 'reelcdn_edge_requests_total'));
    bytes.inc(l, total(w.metrics, 'reelcdn_edge_response_bytes_total'));
    cpu.inc(l, w.cpuSeconds);
    rss.set(l, w.rssBytes);
    conns.set(l, w.connections);
    lag.set(l, w.eventLoopDelaySeconds);
  }
  return registry;
}

function total(metrics: MetricData[], name: string): number {
  const m = metrics.find((x) => x.name === name);
  return m ? m.values.reduce((n, v) => n + v.value, 0) : 0;
}

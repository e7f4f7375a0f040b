import { Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per service process, process metrics included, `service` (and `node`) on every series. */
export function createRegistry(service: string, node?: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service, ...(node ? { node } : {}) });
  collectDefaultMetrics({ register: registry, prefix: 'reelcdn_' });
  return registry;
}

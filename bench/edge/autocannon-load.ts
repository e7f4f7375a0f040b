/**
 * autocannon as the fallback client (when wrk is not installed): the same request lists, order
 * and connections as the wrk path, run inside the bench process (one thread).
 */
import autocannon from 'autocannon';
import { createRequire } from 'node:module';
import { type LoadPlan, type LoadResult, threadStarts } from './load.js';

// autocannon 9 keeps every response body as a string (`req.body += chunk`, a UTF-8 decode
// and a copy of every byte) even when nothing reads it: with 2 MiB binary bodies that alone
// capped the client near 40 req/s (0.08 GB/s) whatever the server. We never look at bodies
// (no expectBody/verifyBody/onResponse), so the load generator skips it.
{
  const require = createRequire(import.meta.url);
  const queue = require('autocannon/lib/pipelinedRequestsQueue.js') as { prototype: { addBody(data: unknown): void } };
  queue.prototype.addBody = () => {};
}

/** `ca`: what an https:// `base` is trusted by (the bench's own CA). */
export async function runAutocannon(base: string, plan: LoadPlan, ca?: Buffer): Promise<LoadResult> {
  const url = new URL(base);
  const [start] = threadStarts({ ...plan, threads: 1 });
  let i = 0;
  const n = plan.requests.length;
  const cpuBefore = process.cpuUsage();
  const res = await autocannon({
    url: base,
    connections: plan.connections,
    pipelining: 1,
    timeout: 20,
    ...(ca ? { tlsOptions: { ca } } : {}),
    ...(plan.amount !== undefined ? { amount: plan.amount } : { duration: plan.seconds }),
    requests: [
      {
        setupRequest: (req: autocannon.Request) => {
          const r = plan.requests[(start! + i++ * plan.stride) % n]!;
          return { ...req, method: 'GET', path: r.path, headers: { host: url.host, ...(r.range ? { range: r.range } : {}) } };
        },
      } as autocannon.Request,
    ],
  });
  const cpu = process.cpuUsage(cpuBefore);
  const seconds = Math.max(res.duration, 0.001);
  return {
    requests: res.requests.total,
    seconds,
    reqPerSec: res.requests.total / seconds,
    bytesPerSec: res.throughput.total / seconds,
    p50Ms: res.latency.p50,
    p99Ms: res.latency.p99,
    errors: res.errors + res.timeouts,
    non2xx: res.non2xx,
    clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

/**
 * What one measured run of a load generator (wrk or autocannon) reports, in the same units for
 * both, and the plan of a run: which requests, in which order, from how many threads.
 */
import type { Req } from './workloads.js';

export interface LoadResult {
  /** Answers completed. */
  requests: number;
  seconds: number;
  reqPerSec: number;
  /** Bytes read per second, headers included. */
  bytesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Connect, read and write errors and timeouts. */
  errors: number;
  /** Answers with a status outside 2xx (wrk: 4xx and 5xx). */
  non2xx: number;
  /** CPU the client itself used during the run (sampled; absent when unknown). */
  clientCpuSeconds?: number;
}

export interface LoadPlan {
  requests: Req[];
  /** Index i of a thread's stream is `requests[(start + i * stride) % length]`. */
  stride: number;
  connections: number;
  threads: number;
  /** Bounded run: `amount` answers in all, split over the threads; otherwise `seconds`. */
  amount?: number;
  seconds: number;
}

/**
 * Where each thread starts in the request list. A timed run spreads the threads over the list;
 * a bounded run gives each thread its own stretch of `amount / threads` never-seen requests,
 * plus room for what its connections still ask for while the last answers arrive.
 */
export function threadStarts(plan: Pick<LoadPlan, 'requests' | 'threads' | 'connections' | 'amount'>): number[] {
  const n = plan.requests.length;
  if (plan.amount === undefined) return Array.from({ length: plan.threads }, (_, t) => Math.floor((t * n) / plan.threads));
  const quota = Math.ceil(plan.amount / plan.threads);
  const perThread = quota + Math.ceil(plan.connections / plan.threads);
  if (perThread * plan.threads > n) {
    throw new Error(`a bounded run of ${plan.amount} over ${plan.threads} threads needs ${perThread * plan.threads} distinct requests, the list has ${n}`);
  }
  return Array.from({ length: plan.threads }, (_, t) => t * perThread);
}

/** Answers each thread completes in a bounded run. */
export function threadQuota(plan: Pick<LoadPlan, 'threads' | 'amount'>): number | undefined {
  return plan.amount === undefined ? undefined : Math.ceil(plan.amount / plan.threads);
}

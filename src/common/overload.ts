/**
 * Whether a process is overloaded, from samples of its event-loop delay. Pure: the samples
 * come in, nothing here reads a clock or the loop.
 *
 * One slow moment (a GC pause, a neighbour taking the core) must not take an edge out of
 * steering or make a service shed clients, so the state changes only on a run of samples,
 * with hysteresis — as steering's downAfter/upAfter do for edge health:
 *
 *   ok ──(overAfter samples in a row over the budget)──▶ overloaded
 *   overloaded ──(okAfter samples in a row within it)──▶ ok
 */

/** `ok`: within its delay budget. `overloaded`: over it for a sustained run of samples. */
export type LoadState = 'ok' | 'overloaded';

export interface OverloadParams {
  /** Event-loop delay budget, ms: a sample above it is an over-budget sample. */
  maxDelayMs: number;
  /** Consecutive over-budget samples before ok → overloaded. */
  overAfter: number;
  /** Consecutive within-budget samples before overloaded → ok. */
  okAfter: number;
}

export interface Overload {
  state: LoadState;
  /** Over-budget samples in a row, up to and including the last one. */
  overRun: number;
  /** Within-budget samples in a row, up to and including the last one. */
  okRun: number;
}

export function initialOverload(): Overload {
  return { state: 'ok', overRun: 0, okRun: 0 };
}

/** The state after one more sample of the loop's delay (ms). */
export function stepOverload(o: Overload, delayMs: number, p: OverloadParams): Overload {
  const over = delayMs > p.maxDelayMs;
  const overRun = over ? o.overRun + 1 : 0;
  const okRun = over ? 0 : o.okRun + 1;
  let state = o.state;
  if (state === 'ok' && overRun >= p.overAfter) state = 'overloaded';
  else if (state === 'overloaded' && okRun >= p.okAfter) state = 'ok';
  return { state, overRun, okRun };
}

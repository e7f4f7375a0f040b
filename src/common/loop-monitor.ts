import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { HttpConfig } from './config.js';
import type { Logger } from './logger.js';
import { type LoadState, type Overload, type OverloadParams, initialOverload, stepOverload } from './overload.js';

export interface LoopMonitorOptions {
  params: OverloadParams;
  /** Length of one sample, ms. Default 500. */
  sampleMs?: number;
  logger?: Logger;
}

/**
 * Samples this process's event-loop delay (the p99 of each sampleMs) and feeds the overload
 * state machine. It runs on real timers, not the injected Clock: the delay of the real loop
 * is what it measures, and a simulated clock would make its timer jump time forward.
 */
export class LoopMonitor {
  private readonly histogram: ReturnType<typeof monitorEventLoopDelay>;
  private readonly timer: NodeJS.Timeout;
  private overload: Overload = initialOverload();
  private last = 0;

  constructor(private readonly opts: LoopMonitorOptions) {
    this.histogram = monitorEventLoopDelay({ resolution: 10 });
    this.histogram.enable();
    this.timer = setInterval(() => this.sample(), opts.sampleMs ?? 500);
    this.timer.unref();
  }

  /** The smoothed verdict: overloaded only after a sustained run of slow samples. */
  get state(): LoadState {
    return this.overload.state;
  }

  get overloaded(): boolean {
    return this.overload.state === 'overloaded';
  }

  /** The p99 of the last complete sample, ms. */
  get lastDelayMs(): number {
    return this.last;
  }

  private sample(): void {
    // An empty histogram (no tick yet) reads as 0, not NaN.
    this.last = this.histogram.count > 0 ? this.histogram.percentile(99) / 1e6 : 0;
    this.histogram.reset();
    const before = this.overload.state;
    this.overload = stepOverload(this.overload, this.last, this.opts.params);
    if (this.overload.state !== before) {
      this.opts.logger?.warn({ from: before, to: this.overload.state, eventLoopDelayMs: Math.round(this.last) }, 'load state changed');
    }
  }

  /** A monitor with the cluster file's budget: `overloadSamples` both ways. */
  static fromConfig(http: HttpConfig, logger?: Logger): LoopMonitor {
    return new LoopMonitor({ params: { maxDelayMs: http.maxEventLoopDelayMs, overAfter: http.overloadSamples, okAfter: http.overloadSamples }, logger });
  }

  stop(): void {
    clearInterval(this.timer);
    this.histogram.disable();
  }
}

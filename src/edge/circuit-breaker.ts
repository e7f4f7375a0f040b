/**
 * A circuit breaker for one upstream (an edge's parent), as a pure state machine:
 *
 *   closed ──N consecutive failures──▶ open ──cool-down over, next request──▶ half-open
 *     ▲                                  ▲                                       │
 *     └────────── probe succeeded ───────┼────────── probe failed ◀──────────────┘
 *
 * It knows nothing of HTTP: the caller asks `admit()` before each request, sends it to the
 * guarded upstream only when given a permit (else elsewhere, e.g. the origin), and reports the
 * permit's outcome with `succeeded`/`failed`. Time is injected (monotonic ms), so a wall clock
 * stepped back cannot hold the breaker open.
 */

/**
 * - `closed`: requests go to the guarded upstream; consecutive failures are counted.
 * - `open`: the upstream is presumed down; requests go elsewhere until the cool-down is over.
 * - `half-open`: one probe request is in flight to the upstream; everything else still goes
 *   elsewhere until the probe says which way to turn.
 */
export type BreakerState = 'closed' | 'open' | 'half-open';

export const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half-open'];

export interface BreakerSettings {
  /** Consecutive failures that open the breaker. */
  failures: number;
  /** How long the breaker stays open before it lets one probe through, ms. */
  coolDownMs: number;
}

export interface BreakerTransition {
  from: BreakerState;
  to: BreakerState;
  reason: string;
}

/**
 * Leave to send one request to the guarded upstream. Outcomes count only in the state
 * generation that issued the permit: a slow answer to a request admitted before the breaker
 * opened must not close it again, nor a late failure re-open a breaker that has since closed.
 */
export interface BreakerPermit {
  readonly generation: number;
}

export class CircuitBreaker {
  private current: BreakerState = 'closed';
  private generation = 0;
  private consecutiveFailures = 0;
  private openedAt = 0;

  constructor(
    private readonly settings: BreakerSettings,
    private readonly now: () => number,
    private readonly onTransition: (t: BreakerTransition) => void = () => {},
  ) {
    if (!(settings.failures >= 1)) throw new RangeError('failures must be at least 1');
    if (!(settings.coolDownMs >= 0)) throw new RangeError('coolDownMs must not be negative');
  }

  get state(): BreakerState {
    return this.current;
  }

  /** A permit to try the guarded upstream, or undefined: send this request elsewhere. */
  admit(): BreakerPermit | undefined {
    if (this.current === 'closed') return { generation: this.generation };
    if (this.current === 'open' && this.now() - this.openedAt >= this.settings.coolDownMs) {
      this.move('half-open', `cool-down of ${this.settings.coolDownMs} ms over: one probe`);
      return { generation: this.generation };
    }
    // open and cooling down, or half-open with its one probe already out
    return undefined;
  }

  succeeded(permit: BreakerPermit): void {
    if (permit.generation !== this.generation) return;
    if (this.current === 'closed') this.consecutiveFailures = 0;
    else if (this.current === 'half-open') this.move('closed', 'probe succeeded');
  }

  failed(permit: BreakerPermit): void {
    if (permit.generation !== this.generation) return;
    if (this.current === 'closed') {
      this.consecutiveFailures++;
      if (this.consecutiveFailures >= this.settings.failures) this.open(`${this.consecutiveFailures} consecutive failures`);
    } else if (this.current === 'half-open') {
      this.open('probe failed');
    }
  }

  private open(reason: string): void {
    this.openedAt = this.now();
    this.move('open', reason);
  }

  private move(to: BreakerState, reason: string): void {
    const from = this.current;
    this.current = to;
    this.generation++;
    this.consecutiveFailures = 0;
    this.onTransition({ from, to, reason });
  }
}

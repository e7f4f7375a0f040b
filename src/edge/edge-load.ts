import type { EdgeStatus } from './edge-health.js';

/**
 * An edge process's load as steering and players are told it: its status (/health), and the
 * duress every answer's CMSD and every prefetch ask read. No I/O: the factory counts the public
 * port's connections into it and refreshes it on the loop monitor's period.
 */
export class EdgeLoad {
  /** Open connections on the public port. */
  connections = 0;
  /**
   * Duress as answers and prefetch read it: a field, set by refresh() when what it depends on
   * changes — the loop monitor's verdict (checked on its own period), a drain, the connections
   * crossing the limit, a reload of the limit, the node's status (a worker) — never computed per answer.
   */
  duress = false;
  /** The stop (close): no longer serving. */
  private draining = false;
  // An operator's drain (POST /drain): steered away from, still serving. `draining` is the stop.
  private drained = false;
  /** What a node's worker follows: the primary's merged verdict (NODE_STATUS). */
  private nodeStatus: EdgeStatus | undefined;
  /** The connection count at which the status changes (maxConnections + 1), kept by refresh(). */
  private overConnections: number;

  /**
   * `loop`: overloaded only on a sustained delay (the loop monitor's verdict). `maxConnections`:
   * the limit of the cluster file last applied (a reload changes it).
   */
  constructor(
    private readonly loop: { readonly overloaded: boolean },
    private readonly maxConnections: () => number,
  ) {
    this.overConnections = maxConnections() + 1;
  }

  status(): EdgeStatus {
    if (this.draining || this.drained) return 'draining';
    if (this.loop.overloaded || this.connections > this.maxConnections()) return 'overloaded';
    return 'ok';
  }

  /** A connection opened on the public port: duress is refreshed only when the limit is crossed. */
  connectionOpened(): void {
    this.connections++;
    if (this.connections === this.overConnections) this.refresh();
  }

  connectionClosed(): void {
    this.connections--;
    if (this.connections === this.overConnections - 1) this.refresh();
  }

  /** Returns whether it was drained before. */
  setDrained(on: boolean): boolean {
    const was = this.drained;
    this.drained = on;
    this.refresh();
    return was;
  }

  setNodeStatus(s: EdgeStatus): void {
    this.nodeStatus = s;
    this.refresh();
  }

  /** The process is closing: draining from now on. */
  close(): void {
    this.draining = true;
    this.refresh();
  }

  refresh(): void {
    this.overConnections = this.maxConnections() + 1;
    // A worker follows its node (the primary's merged verdict, as /health says it); its own close is its own.
    this.duress = this.nodeStatus !== undefined ? this.nodeStatus !== 'ok' || this.draining : this.status() !== 'ok';
  }
}

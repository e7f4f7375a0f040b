/**
 * An estimate of the throughput from this edge to each client address, from the answers it
 * recently sent them: what CMSD-Dynamic's `etp` tells a player (CTA-5006). Pure: the clock is a
 * parameter (monotonic ms).
 *
 * Only answers big enough to say something are measured (MIN_MEASURED_BYTES): a small body goes
 * to the kernel's socket buffer at once, and its "transfer time" is the server's own CPU time. A
 * client that only ever gets small answers (the 16 KiB hot bench) costs one failed size check.
 */

/** Bodies smaller than this are not measured. */
export const MIN_MEASURED_BYTES = 64 * 1024;
/** Transfers shorter than this are not measured (timer resolution, and the socket buffer's head start). */
export const MIN_MEASURED_MS = 2;

export interface ClientThroughputOptions {
  /** Monotonic ms. */
  now: () => number;
  /** Client addresses kept at most (client data: bounded); the least recently measured go first. Default 4096. */
  maxClients?: number;
  /** An estimate older than this is forgotten (the client's path may have changed). Default 60 s. */
  maxAgeMs?: number;
  /** Weight of a new sample in the moving average (0..1]. Default 0.3. */
  weight?: number;
}

interface Estimate {
  kbps: number;
  at: number;
}

export class ClientThroughput {
  /** By address, least recently measured first. */
  private readonly byClient = new Map<string, Estimate>();
  private readonly now: () => number;
  private readonly maxClients: number;
  private readonly maxAgeMs: number;
  private readonly weight: number;

  constructor(opts: ClientThroughputOptions) {
    this.now = opts.now;
    this.maxClients = Math.max(1, opts.maxClients ?? 4096);
    this.maxAgeMs = opts.maxAgeMs ?? 60_000;
    this.weight = Math.min(1, Math.max(0.01, opts.weight ?? 0.3));
  }

  /** A body of `bytes` went to `client` in `ms` (head written to response finished). Small ones are ignored. */
  transferred(client: string | undefined, bytes: number, ms: number): void {
    if (bytes < MIN_MEASURED_BYTES || client === undefined || !(ms >= MIN_MEASURED_MS)) return;
    const kbps = (bytes * 8) / ms; // bits per ms = kbit/s
    const now = this.now();
    const e = this.byClient.get(client);
    if (e === undefined || now - e.at > this.maxAgeMs) {
      if (e !== undefined) this.byClient.delete(client);
      else if (this.byClient.size >= this.maxClients) this.byClient.delete(this.byClient.keys().next().value!);
      this.byClient.set(client, { kbps, at: now });
      return;
    }
    e.kbps += this.weight * (kbps - e.kbps);
    e.at = now;
    this.byClient.delete(client); // to the end: most recently measured
    this.byClient.set(client, e);
  }

  /** The estimate for `client`, kbps rounded, or undefined when none is recent. Nothing is done for an unknown one but a lookup. */
  kbps(client: string | undefined): number | undefined {
    if (client === undefined || this.byClient.size === 0) return undefined;
    const e = this.byClient.get(client);
    if (e === undefined || this.now() - e.at > this.maxAgeMs) return undefined;
    return Math.max(1, Math.round(e.kbps));
  }

  /** Addresses held (tests: the bound holds). */
  get size(): number {
    return this.byClient.size;
  }
}

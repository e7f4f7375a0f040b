import { Readable } from 'node:stream';

/**
 * An estimate of the throughput from this edge to each client address, from the answers it
 * recently sent them: what CMSD-Dynamic's `etp` tells a player (CTA-5006). The estimate is pure
 * (the clock is a parameter, monotonic ms); `PacedTransfer` and the two writers below take its
 * samples from real responses, for the hit path and the object routes alike.
 *
 * Only answers to requests that carry CMCD are measured (only those are told `etp`), and only the
 * part of a body the client paced: what was handed to the response after the kernel first pushed
 * back (a write returned false, or the response's first 'drain'), timed from then to 'finish'.
 * What went before sat in the kernel's socket buffer (up to 4 MB with Linux's autotuning) at once
 * and says nothing of the client; counting it would overstate a slow client most. An answer the
 * client aborted gives no sample (it never finishes), nor one that never met backpressure.
 */

/** Paced parts smaller than this are not measured. */
export const MIN_MEASURED_BYTES = 64 * 1024;
/** Paced parts shorter than this are not measured (timer resolution). */
export const MIN_MEASURED_MS = 2;
/** A measured body goes to the response in pieces of this size until the kernel pushes back: where it does is known within one. */
export const PACED_PIECE_BYTES = 64 * 1024;

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
  /** Monotonic ms (the measurements' clock too). */
  readonly now: () => number;
  private readonly maxClients: number;
  private readonly maxAgeMs: number;
  private readonly weight: number;

  constructor(opts: ClientThroughputOptions) {
    this.now = opts.now;
    this.maxClients = Math.max(1, opts.maxClients ?? 4096);
    this.maxAgeMs = opts.maxAgeMs ?? 60_000;
    this.weight = Math.min(1, Math.max(0.01, opts.weight ?? 0.3));
  }

  /** `bytes` went to `client` in `ms`, at its pace (see PacedTransfer). Small or short ones are ignored. */
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

/** A response as measured: what node's ServerResponse and Http2ServerResponse both have. */
export interface PacedResponse {
  write(chunk: Buffer): boolean;
  end(): unknown;
  once(event: 'finish' | 'drain', listener: () => void): unknown;
}

/**
 * One answer's body as its client paces it: `pushedBack` marks the first backpressure, and the
 * response's 'finish' (emitted only when every byte went to the kernel: never for an aborted
 * answer) gives `into` the bytes handed over since, over the time since.
 */
export class PacedTransfer {
  private at = -1;
  private paced = 0;

  constructor(
    res: PacedResponse,
    /** The body's bytes. */
    private readonly total: number,
    private readonly client: string | undefined,
    private readonly into: ClientThroughput,
  ) {
    res.once('finish', () => {
      if (this.at >= 0) this.into.transferred(this.client, this.paced, this.into.now() - this.at);
    });
  }

  /**
   * The response pushed back once `handedOver` bytes of the body were handed to it (the piece
   * that met the push-back included: part of it may have gone to the kernel at once, so the
   * estimate errs low, never high). Only the first call counts.
   */
  pushedBack(handedOver: number): void {
    if (this.at >= 0) return;
    this.at = this.into.now();
    this.paced = this.total - handedOver;
  }
}

/**
 * Writes `body` to `res` and ends it, measured by `m`: piece by piece (PACED_PIECE_BYTES) until
 * a write returns false, the rest at once. A body the kernel takes whole costs a write per piece
 * and gives no sample. For the hit path, which writes its cached bodies itself.
 */
export function endMeasured(res: PacedResponse, body: Buffer | readonly Buffer[], m: PacedTransfer): void {
  let handed = 0;
  let pushedBack = false;
  for (const piece of Buffer.isBuffer(body) ? [body] : body) {
    if (pushedBack) {
      res.write(piece);
      continue;
    }
    for (let at = 0; at < piece.length; at += PACED_PIECE_BYTES) {
      const chunk = at === 0 && piece.length <= PACED_PIECE_BYTES ? piece : piece.subarray(at, at + PACED_PIECE_BYTES);
      handed += chunk.length;
      if (!res.write(chunk)) {
        m.pushedBack(handed);
        pushedBack = true;
        if (at + PACED_PIECE_BYTES < piece.length) res.write(piece.subarray(at + PACED_PIECE_BYTES));
        break;
      }
    }
  }
  res.end();
}

/**
 * `pieces` as a stream for a framework that pipes it into `res` (the object routes), measured
 * by `m`: the response's first 'drain' — a write returned false and the kernel has since taken
 * what was queued — marks the backpressure, with what the pipe had taken from the stream by then.
 */
export function measuredStream(pieces: readonly Buffer[], res: PacedResponse, m: PacedTransfer): Readable {
  let piece = 0;
  let at = 0;
  let pushed = 0;
  const s = new Readable({
    highWaterMark: 1,
    read() {
      const p = pieces[piece];
      if (p === undefined) {
        this.push(null);
        return;
      }
      const chunk = p.subarray(at, at + PACED_PIECE_BYTES);
      at += chunk.length;
      if (at >= p.length) {
        piece++;
        at = 0;
      }
      pushed += chunk.length;
      this.push(chunk);
    },
  });
  res.once('drain', () => m.pushedBack(pushed - s.readableLength));
  return s;
}

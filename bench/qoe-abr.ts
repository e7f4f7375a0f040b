/**
 * The bench player's rendition choice (pure): a throughput estimate like hls.js's (two
 * exponentially weighted averages of download throughput, weighted by how long each download
 * took, the lower one used) and a throughput rule with a safety factor, plus a buffer-based
 * downswitch when the buffer runs low. Every time here is in media (player) seconds.
 */

export interface EstimateOptions {
  /** Half-life of the fast average, seconds of download time. hls.js: 3. */
  fastHalfLifeS: number;
  /** Half-life of the slow average. hls.js: 9. */
  slowHalfLifeS: number;
  /** The estimate before any download finished. hls.js: 500 kbps. */
  defaultKbps: number;
}

export const DEFAULT_ESTIMATE: EstimateOptions = { fastHalfLifeS: 3, slowHalfLifeS: 9, defaultKbps: 500 };

/** One exponentially weighted average whose weight is time, zero-bias corrected (as hls.js's EWMA). */
class Ewma {
  private readonly alpha: number;
  private estimate = 0;
  private totalWeight = 0;

  constructor(halfLifeS: number) {
    this.alpha = Math.exp(Math.log(0.5) / halfLifeS);
  }

  sample(weight: number, value: number): void {
    const a = this.alpha ** weight;
    this.estimate = value * (1 - a) + a * this.estimate;
    this.totalWeight += weight;
  }

  /** The average, corrected for starting at 0: early samples are not pulled down by the empty start. */
  value(): number {
    const zeroFactor = 1 - this.alpha ** this.totalWeight;
    return zeroFactor > 0 ? this.estimate / zeroFactor : 0;
  }
}

export class ThroughputEstimate {
  private readonly fast: Ewma;
  private readonly slow: Ewma;
  private count = 0;

  constructor(private readonly o: EstimateOptions = DEFAULT_ESTIMATE) {
    this.fast = new Ewma(o.fastHalfLifeS);
    this.slow = new Ewma(o.slowHalfLifeS);
  }

  /** One finished download: `bytes` in `seconds` (media time). Empty or instant downloads say nothing. */
  sample(seconds: number, bytes: number): void {
    if (!(seconds > 0) || !(bytes > 0)) return;
    const kbps = (bytes * 8) / 1000 / seconds;
    // hls.js weighs by download time but at least a little, so a tiny object cannot dominate.
    const weight = Math.max(seconds, 0.001);
    this.fast.sample(weight, kbps);
    this.slow.sample(weight, kbps);
    this.count++;
  }

  /** The lower of both averages: quick to believe a drop, slow to believe a rise. */
  kbps(): number {
    return this.count === 0 ? this.o.defaultKbps : Math.min(this.fast.value(), this.slow.value());
  }

  get samples(): number {
    return this.count;
  }
}

export interface AbrOptions {
  /** A rendition is affordable when its bitrate ≤ estimate × this (staying or going down). */
  safety: number;
  /** The stricter factor for going up (hls.js's abrBandWidthUpFactor is 0.7). */
  upSafety: number;
  /** Below this buffer (s) while playing: no upswitch, and the next segment must arrive in time. */
  lowBufferS: number;
  /** With a low buffer, the next segment's expected download time must be ≤ buffer × this. */
  lowBufferShare: number;
}

export const DEFAULT_ABR: AbrOptions = { safety: 0.8, upSafety: 0.7, lowBufferS: 8, lowBufferShare: 0.5 };

export interface AbrInput {
  /** Bitrates of the renditions, kbps, ascending. */
  ladderKbps: readonly number[];
  /** Index of the rendition played last; undefined before the first segment. */
  current: number | undefined;
  estimateKbps: number;
  /** Buffered media ahead of the playhead, s. */
  bufferS: number;
  /** Playback has started (before it, only the throughput rule applies: the buffer is empty by design). */
  playing: boolean;
  /** Duration of the next segment, s. */
  segmentS: number;
}

/** The index of the rendition to fetch the next segment from. */
export function chooseRendition(input: AbrInput, o: AbrOptions = DEFAULT_ABR): number {
  const { ladderKbps: ladder, current, estimateKbps: est } = input;
  if (ladder.length === 0) throw new Error('chooseRendition: empty ladder');
  let pick = 0;
  for (let i = ladder.length - 1; i > 0; i--) {
    const factor = current !== undefined && i > current ? o.upSafety : o.safety;
    if (ladder[i]! <= est * factor) {
      pick = i;
      break;
    }
  }
  if (!input.playing || input.bufferS >= o.lowBufferS) return pick;
  // A low buffer: never go up, and step down until the next segment is expected in time.
  if (current !== undefined) pick = Math.min(pick, current);
  const fetchS = (i: number) => (est > 0 ? (ladder[i]! * input.segmentS) / est : Infinity);
  while (pick > 0 && fetchS(pick) > input.bufferS * o.lowBufferShare) pick--;
  return pick;
}

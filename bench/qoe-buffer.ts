/**
 * The bench player's playback model (pure): a buffer that segments fill and a playhead that
 * drains it, in media seconds since the session's first request. It says when playback starts
 * (startup time), how long it stalled after that (rebuffering), whether the buffer ran dry since
 * the last request (CMCD `bs`) and how long to wait before the buffer has room for a segment.
 * Time is a parameter: the caller maps its monotonic clock to media time.
 */

export interface BufferOptions {
  /** Buffer needed to start playing, s. */
  startS: number;
  /** Buffer needed to resume after a stall, s. */
  resumeS: number;
  /** The player fetches while the buffer is below this, s (hls.js's maxBufferLength: 30). */
  goalS: number;
}

export const DEFAULT_BUFFER: BufferOptions = { startS: 2, resumeS: 2, goalS: 30 };

export type PlaybackState = 'startup' | 'playing' | 'stalled';

export class Playback {
  private at = 0;
  private buffered = 0;
  private stateNow: PlaybackState = 'startup';
  private startedAt: number | undefined;
  private stalledFor = 0;
  private stalls = 0;
  private played = 0;
  private starvedSinceAsked = false;

  constructor(private readonly o: BufferOptions = DEFAULT_BUFFER) {}

  /** Plays (or stalls) from the last event to `t`. Time never goes back: an earlier `t` is now. */
  advanceTo(t: number): void {
    const dt = t - this.at;
    if (!(dt > 0)) return;
    this.at = t;
    if (this.stateNow === 'stalled') {
      this.stalledFor += dt;
      return;
    }
    if (this.stateNow !== 'playing') return;
    if (this.buffered >= dt) {
      this.buffered -= dt;
      this.played += dt;
      return;
    }
    // Ran dry inside the interval: played what there was, stalled for the rest.
    this.played += this.buffered;
    this.stalledFor += dt - this.buffered;
    this.buffered = 0;
    this.stateNow = 'stalled';
    this.stalls++;
    this.starvedSinceAsked = true;
  }

  /** A segment of `durationS` is in the buffer at `t`. */
  append(t: number, durationS: number): void {
    this.advanceTo(t);
    this.buffered += durationS;
    if (this.stateNow === 'startup' && this.buffered >= this.o.startS) {
      this.stateNow = 'playing';
      this.startedAt = this.at;
    } else if (this.stateNow === 'stalled' && this.buffered >= this.o.resumeS) {
      this.stateNow = 'playing';
    }
  }

  /**
   * The last segment is in: what is buffered plays out without a stall (nothing more to wait
   * for), so the session's totals are final at `t`. A session too short to start starts here.
   */
  finish(t: number): void {
    this.advanceTo(t);
    if (this.stateNow === 'startup' && this.buffered > 0) this.startedAt = this.at;
    this.played += this.buffered;
    this.buffered = 0;
    if (this.stateNow !== 'startup') this.stateNow = 'playing';
  }

  /** Seconds from now until the buffer has room for `segmentS` more below the goal (0: fetch now). */
  waitForRoomS(segmentS: number): number {
    const over = this.buffered + segmentS - this.o.goalS;
    // Only a playing buffer drains: in startup or a stall there is always room.
    return this.stateNow === 'playing' && over > 0 ? over : 0;
  }

  /** True once if the buffer ran dry since the last call (CMCD `bs` on the next request). */
  takeStarved(): boolean {
    const s = this.starvedSinceAsked;
    this.starvedSinceAsked = false;
    return s;
  }

  get bufferS(): number {
    return this.buffered;
  }

  get state(): PlaybackState {
    return this.stateNow;
  }

  /** Media seconds from the first request to the start of playback; undefined before it. */
  get startupS(): number | undefined {
    return this.startedAt;
  }

  /** Seconds stalled after playback started (startup is not rebuffering). */
  get stallS(): number {
    return this.stalledFor;
  }

  get stallCount(): number {
    return this.stalls;
  }

  get playedS(): number {
    return this.played;
  }
}

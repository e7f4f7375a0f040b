/**
 * What the chaos run knows and counts, with no I/O: which slices each live edge is known to
 * hold (so a failure can be judged "content already cached on a live edge" or not), and the
 * figures (requests, failures, wrong bytes, errors by cause, latency).
 */

/** One byte range of one file, half-open. */
export interface Want {
  title: string;
  file: string;
  start: number;
  end: number;
}

/** What the ledger needs to judge a failure later: each holder and its epochs when the request began. */
export interface HolderStamp {
  edge: string;
  epoch: number;
  titleEpoch: number;
}

/**
 * The slices each edge has served correctly since it last started, learned from answers only.
 * A kill, a purge of the title or a corrupted slice file forgets what it may have destroyed;
 * epochs make an answer that began before such an event unable to re-teach it.
 */
export class CacheView {
  private readonly held = new Map<string, Map<string, Set<number>>>();
  private readonly epochs = new Map<string, number>();
  private readonly titleEpochs = new Map<string, number>();
  private readonly alive = new Set<string>();

  constructor(private readonly sliceBytes: number) {}

  private key(w: { title: string; file: string }): string {
    return JSON.stringify([w.title, w.file]);
  }

  private slicesOf(w: Want): number[] {
    const out = [] as number[];
    if (w.end <= w.start) return out;
    for (let i = Math.floor(w.start / this.sliceBytes); i <= Math.floor((w.end - 1) / this.sliceBytes); i++) out.push(i);
    return out;
  }

  stamp(edge: string, title: string): HolderStamp {
    return { edge, epoch: this.epochs.get(edge) ?? 0, titleEpoch: this.titleEpochs.get(JSON.stringify([edge, title])) ?? 0 };
  }

  private current(s: HolderStamp, title: string): boolean {
    const now = this.stamp(s.edge, title);
    return this.alive.has(s.edge) && now.epoch === s.epoch && now.titleEpoch === s.titleEpoch;
  }

  markAlive(edge: string): void {
    this.alive.add(edge);
  }

  /** kill -9: the process is gone, and what it held is unknown until it serves again. */
  markDead(edge: string): void {
    this.alive.delete(edge);
    this.epochs.set(edge, (this.epochs.get(edge) ?? 0) + 1);
    this.held.delete(edge);
  }

  forgetTitle(edge: string, title: string): void {
    const k = JSON.stringify([edge, title]);
    this.titleEpochs.set(k, (this.titleEpochs.get(k) ?? 0) + 1);
    const files = this.held.get(edge);
    if (!files) return;
    for (const fk of [...files.keys()]) if ((JSON.parse(fk) as string[])[0] === title) files.delete(fk);
  }

  forgetSlice(edge: string, title: string, file: string, index: number): void {
    this.held.get(edge)?.get(this.key({ title, file }))?.delete(index);
  }

  /** A correct answer from `edge` for `w`, for a request that began at `stamp`. */
  noteServed(w: Want, stamp: HolderStamp): void {
    if (!this.current(stamp, w.title)) return;
    let files = this.held.get(stamp.edge);
    if (!files) this.held.set(stamp.edge, (files = new Map()));
    const k = this.key(w);
    let set = files.get(k);
    if (!set) files.set(k, (set = new Set()));
    for (const i of this.slicesOf(w)) set.add(i);
  }

  private holds(edge: string, w: Want): boolean {
    const set = this.held.get(edge)?.get(this.key(w));
    return set !== undefined && this.slicesOf(w).every((i) => set.has(i));
  }

  /** Live edges known to hold every slice of `w` now. */
  holders(w: Want): HolderStamp[] {
    return [...this.alive].filter((e) => this.holds(e, w)).map((e) => this.stamp(e, w.title));
  }

  /** Of the holders when a request began, those that held it throughout (alive, not purged, not corrupted). */
  stillHolding(w: Want, stamps: HolderStamp[]): string[] {
    return stamps.filter((s) => this.current(s, w.title) && this.holds(s.edge, w)).map((s) => s.edge);
  }

  /** Slices known held by this edge, for picking one to corrupt. */
  heldSlices(edge: string): { title: string; file: string; index: number }[] {
    const out = [] as { title: string; file: string; index: number }[];
    for (const [k, set] of this.held.get(edge) ?? []) {
      const [title, file] = JSON.parse(k) as [string, string];
      for (const index of set) out.push({ title, file, index });
    }
    return out;
  }
}

/**
 * Which version's bytes each ETag came with. An ETag names exactly one body: a body of one
 * version under an ETag first seen with the other is wrong even though each byte exists in
 * some version (the origin serving new bytes under an old ETag, an edge mixing them up).
 */
export class EtagBook {
  private readonly seen = new Map<string, number>();

  /** Notes that `etag` came with version `version`; returns the conflict if it came with another before. */
  note(title: string, file: string, etag: string, version: number): string | undefined {
    const k = JSON.stringify([title, file, etag]);
    const before = this.seen.get(k);
    if (before === undefined) this.seen.set(k, version);
    else if (before !== version) return `ETag ${etag} came with version ${'ab'[before]}'s bytes before, now with version ${'ab'[version]}'s`;
    return undefined;
  }
}

/** One attempt at one URL that did not give the right bytes. */
export interface AttemptError {
  /** `steering` or an edge id. */
  who: string;
  /** e.g. `504 bad gateway: upstream timed out`, `ECONNREFUSED`, `UND_ERR_HEADERS_TIMEOUT`. */
  cause: string;
}

export interface WrongAnswer {
  atMs: number;
  edge: string;
  want: Want;
  status: number;
  xCache: string;
  detail: string;
  faults: string;
}

export interface Failure {
  atMs: number;
  want: Want;
  /** Live edges that held the content for the whole request (empty: not counted as a failure). */
  heldBy: string[];
  attempts: AttemptError[];
  faults: string;
}

/** Figures of a run. */
export class Tally {
  requests = 0;
  ok = 0;
  /** Right bytes, but only after at least one URL failed (what the faults cost players). */
  okAfterFailover = 0;
  /** Right bytes of the re-ingested title's variant (shows the re-ingest reached players). */
  okVariant = 0;
  /** Answers (2xx) whose bytes differ from the source file. */
  wrongAnswers: WrongAnswer[] = [];
  wrongBytes = 0;
  /** Failed on every URL although a live edge held the content all along: the goal is 0. */
  failedCached: Failure[] = [];
  /** Failed on every URL, content not (known) cached on a live edge: expected while the origin is stopped. */
  failedUncached: Failure[] = [];
  manifestRequests = 0;
  manifestFailures: { atMs: number; what: string; cause: string; faults: string }[] = [];
  /** Every failed attempt (a request may fail on one URL and succeed on the next), by cause. */
  errorsByCause = new Map<string, number>();
  private readonly latencies: number[] = [];

  /** The first attempt of each 5xx cause: where to look in that process's log. */
  readonly firstOf5xx = new Map<string, string>();

  attemptFailed(e: AttemptError, where?: () => string): void {
    const k = `${e.who.startsWith('edge') ? 'edge' : e.who} ${e.cause}`;
    this.errorsByCause.set(k, (this.errorsByCause.get(k) ?? 0) + 1);
    if (where && /^5\d\d /.test(e.cause) && !this.firstOf5xx.has(k)) this.firstOf5xx.set(k, `${e.who} ${where()}`);
  }

  finished(ms: number): void {
    this.requests++;
    this.latencies.push(ms);
  }

  percentile(p: number): number {
    if (this.latencies.length === 0) return 0;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
  }

  /** The printed figures. */
  format(): string {
    const wantS = (w: Want) => `${w.title}/${w.file} bytes ${w.start}-${w.end - 1}`;
    const lines = [
      `requests          ${this.requests} (ok ${this.ok}, of which ${this.okAfterFailover} after moving to another URL, ${this.okVariant} the re-ingested variant)`,
      `failed, cached    ${this.failedCached.length}   (failed on every URL while a live edge held the content; goal 0)`,
      `failed, uncached  ${this.failedUncached.length}   (failed on every URL, content on no live edge)`,
      `wrong bytes       ${this.wrongAnswers.length} answers, ${this.wrongBytes} bytes   (goal 0)`,
      `manifests         ${this.manifestRequests} (failed ${this.manifestFailures.length})`,
      `latency           p50 ${this.percentile(50).toFixed(0)} ms, p99 ${this.percentile(99).toFixed(0)} ms, max ${this.percentile(100).toFixed(0)} ms`,
      'failed attempts by cause:',
      ...[...this.errorsByCause].sort((a, b) => b[1] - a[1]).map(([k, n]) => `  ${String(n).padStart(6)}  ${k}`),
      ...[...this.firstOf5xx].map(([k, w]) => `first "${k}": ${w}`),
    ];
    for (const w of this.wrongAnswers.slice(0, 5)) {
      lines.push(`WRONG at ${(w.atMs / 1000).toFixed(1)} s from ${w.edge}: ${wantS(w.want)}, ${w.status} ${w.xCache}: ${w.detail} [faults: ${w.faults}]`);
    }
    for (const f of this.failedCached.slice(0, 5)) {
      lines.push(
        `FAILED (cached on ${f.heldBy.join(', ')}) at ${(f.atMs / 1000).toFixed(1)} s: ${wantS(f.want)}; attempts: ${f.attempts.map((a) => `${a.who} ${a.cause}`).join('; ') || 'none'} [faults: ${f.faults}]`,
      );
    }
    for (const m of this.manifestFailures.slice(0, 3)) lines.push(`manifest failed at ${(m.atMs / 1000).toFixed(1)} s: ${m.what}: ${m.cause} [faults: ${m.faults}]`);
    return lines.join('\n');
  }
}

/**
 * The QoE bench's figures (pure): what each session recorded, summed into one run's summary
 * (startup p50/p90, rebuffer ratio, average bitrate, the X-Cache of media requests after a
 * session's first segment, origin bytes, the edge's CPU per answer), and the goal lines that
 * compare the run with prefetch to the run without.
 */

export type RequestKind = 'manifest' | 'init' | 'media';

export interface RequestRecord {
  kind: RequestKind;
  status: number;
  /** The answer's X-Cache ('' when it had none: steering's manifests). */
  xCache: string;
  bytes: number;
  /** Real milliseconds from sending the request to the body's last byte. */
  realMs: number;
  /** Media requests: the segment's index, and whether its rendition differs from the previous segment's (a `nor` naming the old rendition's next segment could not have brought it). */
  segment?: number;
  switched?: boolean;
}

export interface SessionRecord {
  player: number;
  title: string;
  capKbps: number;
  /** Media seconds from the first request to the start of playback; undefined if it never started. */
  startupS: number | undefined;
  stallS: number;
  stallCount: number;
  playedS: number;
  /** Σ bitrate × duration of the segments played (kbps·s). */
  bitrateSeconds: number;
  /** Σ duration of the segments played, s. */
  mediaS: number;
  switches: number;
  requests: RequestRecord[];
  /** Why the session ended early, if it did. */
  error?: string;
}

/** Nearest-rank percentile (p in 0..100) of `values`; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export interface RunMeasure {
  label: string;
  prefetch: boolean;
  sessions: SessionRecord[];
  /** Bytes the origin sent (through the delay in front of it). */
  originBytes: number;
  /** CPU seconds of the edge process (all its workers) during the sessions. */
  edgeCpuS: number;
  /** What the edge would have used idle over the same time (its idle rate, sampled before). */
  edgeIdleCpuS: number;
  /** Real seconds the sessions took. */
  wallS: number;
}

export interface RunSummary {
  label: string;
  prefetch: boolean;
  sessions: number;
  failed: number;
  startupP50S: number;
  startupP90S: number;
  /** Stalled time / (played + stalled time), startup excluded. */
  rebufferRatio: number;
  stalls: number;
  /** Time-weighted over the media played, kbps. */
  avgBitrateKbps: number;
  switches: number;
  /** Media requests after each session's first one. */
  laterMediaRequests: number;
  /** Their answers by X-Cache value. */
  laterXCache: Record<string, number>;
  /** Share of them answered HIT-MEM (0..1). */
  hitMemAfterFirst: number;
  /** Of them, those in the same rendition as the segment before (what `nor` announced), and their HIT-MEM share. */
  sameRenditionRequests: number;
  hitMemSameRendition: number;
  /** Requests the edge answered (init and media). */
  edgeAnswers: number;
  edgeCpuUsPerAnswer: number;
  /** The same less the edge's idle CPU over the run. */
  edgeCpuUsPerAnswerAboveIdle: number;
  originBytes: number;
  /** Bytes the players received from the edge. */
  edgeBytes: number;
  wallS: number;
}

export function summarizeRun(m: RunMeasure): RunSummary {
  const ok = m.sessions.filter((s) => s.error === undefined);
  const startups = m.sessions.flatMap((s) => (s.startupS === undefined ? [] : [s.startupS]));
  const stall = m.sessions.reduce((a, s) => a + s.stallS, 0);
  const played = m.sessions.reduce((a, s) => a + s.playedS, 0);
  const mediaS = m.sessions.reduce((a, s) => a + s.mediaS, 0);
  const laterXCache: Record<string, number> = {};
  let later = 0;
  let same = 0;
  let sameHitMem = 0;
  let edgeAnswers = 0;
  let edgeBytes = 0;
  for (const s of m.sessions) {
    let seenMedia = false;
    for (const r of s.requests) {
      if (r.kind !== 'manifest') {
        edgeAnswers++;
        edgeBytes += r.bytes;
      }
      if (r.kind !== 'media') continue;
      if (seenMedia) {
        later++;
        const k = r.xCache || `status ${r.status}`;
        laterXCache[k] = (laterXCache[k] ?? 0) + 1;
        if (!r.switched) {
          same++;
          if (r.xCache === 'HIT-MEM') sameHitMem++;
        }
      }
      seenMedia = true;
    }
  }
  return {
    label: m.label,
    prefetch: m.prefetch,
    sessions: m.sessions.length,
    failed: m.sessions.length - ok.length,
    startupP50S: percentile(startups, 50),
    startupP90S: percentile(startups, 90),
    rebufferRatio: played + stall > 0 ? stall / (played + stall) : 0,
    stalls: m.sessions.reduce((a, s) => a + s.stallCount, 0),
    avgBitrateKbps: mediaS > 0 ? m.sessions.reduce((a, s) => a + s.bitrateSeconds, 0) / mediaS : 0,
    switches: m.sessions.reduce((a, s) => a + s.switches, 0),
    laterMediaRequests: later,
    laterXCache,
    hitMemAfterFirst: later > 0 ? (laterXCache['HIT-MEM'] ?? 0) / later : 0,
    sameRenditionRequests: same,
    hitMemSameRendition: same > 0 ? sameHitMem / same : 0,
    edgeAnswers,
    edgeCpuUsPerAnswer: edgeAnswers > 0 ? (m.edgeCpuS * 1e6) / edgeAnswers : Number.NaN,
    edgeCpuUsPerAnswerAboveIdle: edgeAnswers > 0 ? (Math.max(0, m.edgeCpuS - m.edgeIdleCpuS) * 1e6) / edgeAnswers : Number.NaN,
    originBytes: m.originBytes,
    edgeBytes,
    wallS: m.wallS,
  };
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const secs = (s: number) => (Number.isFinite(s) ? `${s.toFixed(2)} s` : 'n/a');

/** One run as lines of text. */
export function formatRun(s: RunSummary): string[] {
  const xc = Object.entries(s.laterXCache)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  return [
    `${s.label}: ${s.sessions} sessions${s.failed > 0 ? ` (${s.failed} FAILED)` : ''} in ${s.wallS.toFixed(1)} s`,
    `  startup p50 ${secs(s.startupP50S)}, p90 ${secs(s.startupP90S)} (media time)`,
    `  rebuffer ratio ${pct(s.rebufferRatio)} (${s.stalls} stalls), average bitrate ${Math.round(s.avgBitrateKbps)} kbps, ${s.switches} switches`,
    `  media requests after each session's first: ${s.laterMediaRequests}, HIT-MEM ${pct(s.hitMemAfterFirst)} (${xc || 'none'}); ` +
      `in the rendition before (${s.sameRenditionRequests}): HIT-MEM ${pct(s.hitMemSameRendition)}`,
    `  origin bytes ${mib(s.originBytes)} for ${mib(s.edgeBytes)} served; edge CPU ${s.edgeCpuUsPerAnswer.toFixed(0)} µs per answer, ${s.edgeCpuUsPerAnswerAboveIdle.toFixed(0)} above its idle rate (${s.edgeAnswers} answers)`,
  ];
}

/** p90 startup with prefetch counts as "no worse" within this share of the run without (run-to-run noise). */
export const STARTUP_TOLERANCE = 0.05;

export interface GoalVerdicts {
  hitMem: { value: number; met: boolean };
  startup: { on: number; off: number; met: boolean };
  lines: string[];
}

/** The issue's two goals, judged on one pair of runs. */
export function goalVerdicts(off: RunSummary, on: RunSummary): GoalVerdicts {
  const hitMet = on.hitMemAfterFirst >= 0.95;
  const startupMet = on.startupP90S <= off.startupP90S * (1 + STARTUP_TOLERANCE);
  return {
    hitMem: { value: on.hitMemAfterFirst, met: hitMet },
    startup: { on: on.startupP90S, off: off.startupP90S, met: startupMet },
    lines: [
      `HIT-MEM after first segment with prefetch: ${pct(on.hitMemAfterFirst)} (goal ≥ 95 %) — ${hitMet ? 'met' : 'NOT met'} (without prefetch: ${pct(off.hitMemAfterFirst)})`,
      `p90 startup with prefetch: ${secs(on.startupP90S)} vs ${secs(off.startupP90S)} without (goal: no worse, within ${STARTUP_TOLERANCE * 100} %) — ${startupMet ? 'met' : 'NOT met'}`,
    ],
  };
}

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * An edge's serve report as it travels (`POST /v1/served` on the origin's admin port): what the
 * edge served its clients since its previous report, and the MAC that says an edge sent it.
 * The edge writes it (src/edge/serve-report.ts), the origin checks and sums it
 * (src/origin/file-weights.ts, serve-report-route.ts).
 */

/** One file in a report: what this edge served of it since its previous report. */
export interface ServedFile {
  /** Title-relative path, as in the catalog. */
  file: string;
  /** GET answers with a body (200/206) for this file. */
  requests: number;
  /** Body bytes sent for this file, all requests together. */
  bytes: number;
  /**
   * Bytes sent per slice of the report's `sliceBytes` (index i covers [i·sliceBytes, (i+1)·sliceBytes)),
   * summing to `bytes`; trailing zeros may be left off. Absent: not broken down (segment files).
   */
  slices?: number[];
}

/** One title in a report. */
export interface ServedTitle {
  title: string;
  /** Play ids first seen for this title by the edge in the period (a play counts once per edge). */
  plays: number;
  files: ServedFile[];
}

/** `POST /v1/served` on the origin's admin port (body; signed, see serve-report-route.ts). */
export interface ServeReport {
  edgeId: string;
  /** The edge process's instance id (changes at every start): `seq` counts within it. */
  instance: string;
  /** 1, 2, 3… per instance: a report is accepted once. */
  seq: number;
  /** The period the numbers cover, ms since the epoch (edge clock): [from, to). `to` is when it was sent. */
  from: number;
  to: number;
  /** The edge's slice size: the unit of `slices`. */
  sliceBytes: number;
  titles: ServedTitle[];
}

/**
 * Header an edge puts on its misses to a parent edge: the parent does not count those answers
 * in its serve report — the child counts them where its clients asked.
 */
export const EDGE_HOP_HEADER = 'x-reelcdn-edge-hop';

export const REPORT_PATH = '/v1/served';
/** `k=<key id>,t=<base64url MAC>` */
export const REPORT_SIGNATURE_HEADER = 'x-reelcdn-report-signature';
/** Largest report body (an edge cuts its report into several below it). */
export const MAX_REPORT_BODY = 8 * 1024 * 1024;

/** The MAC of a report body: HMAC-SHA256(secret, "serve-report|{edgeId}|{sha256 hex of the body}"). */
export function reportMac(secret: string, edgeId: string, body: Buffer | string): string {
  const digest = createHash('sha256').update(body).digest('hex');
  return createHmac('sha256', secret).update(`serve-report|${edgeId}|${digest}`).digest('base64url');
}

/** The signature header's value for a body, with the active key. */
export function signReport(keys: Record<string, string>, keyId: string, edgeId: string, body: Buffer | string): string {
  const secret = keys[keyId];
  if (secret === undefined) throw new Error(`signing key "${keyId}" is not configured`);
  return `k=${keyId},t=${reportMac(secret, edgeId, body)}`;
}

/** Whether the header carries a MAC of `body` for `edgeId` under one of `keys`. */
export function reportSignatureValid(keys: Record<string, string>, header: string | undefined, edgeId: string, body: Buffer): boolean {
  const m = header ? /^k=([^,\s]{1,128}),t=([A-Za-z0-9_-]{43})$/.exec(header.trim()) : null;
  if (!m || !Object.prototype.hasOwnProperty.call(keys, m[1]!)) return false;
  const want = Buffer.from(reportMac(keys[m[1]!]!, edgeId, body));
  const got = Buffer.from(m[2]!);
  return got.length === want.length && timingSafeEqual(got, want);
}


import { formatBytes } from '../common/format-bytes.js';

/**
 * `reelcdn status` as data and as a table, from steering's GET /v1/edges. Pure.
 *
 * Numbers come from the edge's last /health report; an edge whose last poll failed shows none
 * (its old numbers would read as current), only its state and steering's reason.
 */
export interface EdgeStatusRow {
  id: string;
  isp: string;
  /** Steering's state of it: up, suspect, down, unknown. */
  state: string;
  /** Whether steering sends new sessions to it. */
  eligible: boolean;
  /** Why it is in that state ('ok' when up; 'draining', 'poll failed: ...'). */
  reason: string;
  since: string | null;
  /** Its numbers are not from a poll that succeeded just now. */
  stale: boolean;
  /** Share of answers (requests, bytes) served from memory or disk since it started; null before its first answer. */
  hitRatio: { requests: number; bytes: number } | null;
  bytesPerSec: number | null;
  requestsPerSec: number | null;
  connections: number | null;
  disk: { usedBytes: number; capacityBytes: number } | null;
  fill: { state: string; filesDone: number; filesTotal: number; bytesDone: number; bytesTotal: number } | null;
}

interface EdgesAnswerEdge {
  id?: unknown;
  isp?: unknown;
  state?: unknown;
  eligible?: unknown;
  reason?: unknown;
  since?: unknown;
  failures?: unknown;
  health?: Record<string, unknown> | null;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown, d = ''): string => (typeof v === 'string' ? v : d);
const obj = (v: unknown): Record<string, unknown> | undefined => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : undefined);

/** Rows of steering's /v1/edges answer; throws on an answer of another shape. */
export function statusRows(answer: unknown): EdgeStatusRow[] {
  const edges = obj(answer)?.edges;
  if (!Array.isArray(edges)) throw new Error('steering\'s /v1/edges answer has no "edges" list');
  return (edges as EdgesAnswerEdge[]).map((e) => {
    const stale = num(e.failures) !== 0 || !obj(e.health);
    const h = stale ? undefined : obj(e.health);
    // No answer yet is no ratio, not 0%.
    const tiers = obj(h?.byTier);
    const answered = tiers ? Object.values(tiers).reduce((n: number, t) => n + (num(obj(t)?.requests) ?? 0), 0) : undefined;
    const hit = answered === 0 ? undefined : obj(h?.hitRatio);
    const disk = obj(h?.disk);
    const fill = obj(h?.fill);
    return {
      id: str(e.id, '?'),
      isp: str(e.isp, '?'),
      state: str(e.state, '?'),
      eligible: e.eligible === true,
      reason: str(e.reason),
      since: typeof e.since === 'string' ? e.since : null,
      stale,
      hitRatio: hit && num(hit.requests) !== null ? { requests: num(hit.requests)!, bytes: num(hit.bytes) ?? 0 } : null,
      bytesPerSec: num(h?.bytesPerSec),
      requestsPerSec: num(h?.requestsPerSec),
      connections: num(h?.connections),
      disk: disk && num(disk.capacityBytes) !== null ? { usedBytes: num(disk.usedBytes) ?? 0, capacityBytes: num(disk.capacityBytes)! } : null,
      fill: fill
        ? { state: str(fill.state, '?'), filesDone: num(fill.filesDone) ?? 0, filesTotal: num(fill.filesTotal) ?? 0, bytesDone: num(fill.bytesDone) ?? 0, bytesTotal: num(fill.bytesTotal) ?? 0 }
        : null,
    };
  });
}

const pct = (r: number) => `${(r * 100).toFixed(1)}%`;

/** One line per edge, columns aligned; the reason last (it can be long). */
export function formatStatusTable(rows: readonly EdgeStatusRow[]): string {
  const head = ['EDGE', 'ISP', 'STATE', 'HIT REQ', 'HIT BYTES', 'THROUGHPUT', 'CONNS', 'DISK', 'FILL', 'REASON'];
  const body = rows.map((r) => [
    r.id,
    r.isp,
    r.state,
    r.hitRatio ? pct(r.hitRatio.requests) : '-',
    r.hitRatio ? pct(r.hitRatio.bytes) : '-',
    r.bytesPerSec !== null ? `${formatBytes(r.bytesPerSec)}/s` : '-',
    r.connections !== null ? String(r.connections) : '-',
    r.disk ? `${formatBytes(r.disk.usedBytes)}/${formatBytes(r.disk.capacityBytes)} ${pct(r.disk.capacityBytes > 0 ? r.disk.usedBytes / r.disk.capacityBytes : 0)}` : '-',
    r.fill ? `${r.fill.state} ${r.fill.filesDone}/${r.fill.filesTotal}` : '-',
    r.reason,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...body.map(line)].join('\n') + '\n';
}

/** The line under the table: how many edges take new sessions. */
export function statusSummary(rows: readonly EdgeStatusRow[]): string {
  const eligible = rows.filter((r) => r.eligible).length;
  const down = rows.filter((r) => !r.eligible).map((r) => r.id);
  return `${eligible} of ${rows.length} edges take new sessions${down.length ? `; not: ${down.join(', ')}` : ''}\n`;
}

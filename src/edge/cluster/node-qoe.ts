import { type QoeBlock, emptyQoeBlock, sumQoeBlocks } from '../qoe.js';

/**
 * The node's /health qoe block, which must only go up: steering's QoeHistory takes differences
 * between samples, and a counter that goes down is taken as a restart of the node — the next
 * sample then counts a whole worker's history as one interval's (a spike that never happened).
 * So a worker that misses one /health (its loop busy past the stats timeout: when the node is
 * overloaded, of all times) counts with its last block, and one that died or was restarted
 * leaves its last block in `retired` (its successor starts again from zero). What a worker
 * counted after its last answer and before its death is lost, never shown and then taken back.
 * As `lastScrape`/`retired` do for /metrics (node.ts). Pure.
 */
export class NodeQoeCounts {
  /** Each worker's last block, by worker number, with the pid that said it. */
  private readonly last = new Map<number, { pid: number; block: QoeBlock }>();
  /** Pids retired: a reply of theirs that comes after their exit is not counted twice. */
  private readonly gone = new Map<number, number>();
  private retiredBlock = emptyQoeBlock();

  /** Worker `index` (process `pid`) answered with `block`. */
  answered(index: number, pid: number, block: QoeBlock | undefined): void {
    if (!block || this.gone.get(index) === pid) return;
    const prev = this.last.get(index);
    // A new process in the slot before its predecessor's exit was seen: the old one is gone.
    if (prev && prev.pid !== pid) this.retire(index);
    const kept = this.last.get(index);
    // Two reads may cross (the fill's poll and a /health): each field keeps its highest value.
    this.last.set(index, { pid, block: kept ? maxQoeBlock(kept.block, block) : copy(block) });
  }

  /** Worker `index` exited: its last block stays in the node's for good. */
  retire(index: number): void {
    const prev = this.last.get(index);
    if (!prev) return;
    this.last.delete(index);
    this.gone.set(index, prev.pid);
    this.retiredBlock = sumQoeBlocks([this.retiredBlock, prev.block]);
  }

  /** The node's block: every worker's last, the retired, and `extra` (the primary's sessions). */
  total(extra?: QoeBlock): QoeBlock {
    return sumQoeBlocks([this.retiredBlock, ...[...this.last.values()].map((w) => w.block), extra]);
  }
}

function copy(b: QoeBlock): QoeBlock {
  return { ...b, startupBoundsMs: [...b.startupBoundsMs], startupCounts: [...b.startupCounts] };
}

/** Field by field the higher of two blocks of one process (each of its fields only goes up). */
export function maxQoeBlock(a: QoeBlock, b: QoeBlock): QoeBlock {
  return {
    sessions: Math.max(a.sessions, b.sessions),
    requests: Math.max(a.requests, b.requests),
    mediaRequests: Math.max(a.mediaRequests, b.mediaRequests),
    starved: Math.max(a.starved, b.starved),
    brKbpsSum: Math.max(a.brKbpsSum, b.brKbpsSum),
    brCount: Math.max(a.brCount, b.brCount),
    blMsSum: Math.max(a.blMsSum, b.blMsSum),
    blCount: Math.max(a.blCount, b.blCount),
    startupBoundsMs: [...a.startupBoundsMs],
    startupCounts: a.startupCounts.map((n, i) => Math.max(n, b.startupCounts[i] ?? 0)),
  };
}

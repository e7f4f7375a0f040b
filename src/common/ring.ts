import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

/**
 * A consistent-hash ring of node ids keyed by title (docs/contract.md "Client → ISP → node").
 *
 * Every process must compute the same ring from node ids alone, so control points are
 * never random: point i of node N is sha256(`${N}#${i}`) mod `range`; the rare collision is
 * settled by sorted id (see the constructor), never by the order nodes are listed in.
 *
 * Keys are hashed with sha256 before the ring sees them: the ring's own string hash is
 * skewed for correlated keys ("title-1", "title-2", ...).
 *
 * Used by steering (ranking) and by the origin's fill planner (placement inside an ISP).
 */

interface ConsistentHashRing {
  add(node: string, weight?: number, points?: number[]): ConsistentHashRing;
  get(name: string, count: number): string[] | null;
  get(name: string): string | null;
  nodeCount: number;
  keyCount: number;
}
type ConsistentHashCtor = new (options: { range: number; weight: number }) => ConsistentHashRing;

const require = createRequire(import.meta.url);
const ConsistentHash = require('consistent-hash') as ConsistentHashCtor;

export interface RingOptions {
  /** Control points per node: more points, smoother shares. Default 160. */
  pointsPerNode?: number;
  /** Modulus of control points and keys; an odd (prime) number well above nodes × points. Default 1000003. */
  range?: number;
  /** Rank lists cached per key (titles repeat a lot); 0 disables. Default 100000. */
  cacheSize?: number;
}

export const DEFAULT_RING_RANGE = 1_000_003;
export const DEFAULT_POINTS_PER_NODE = 160;

/** The control points of one node: deterministic, from its id alone. */
export function controlPoints(nodeId: string, count: number, range = DEFAULT_RING_RANGE): number[] {
  const points: number[] = [];
  for (let i = 0; i < count; i++) {
    const d = createHash('sha256').update(`${nodeId}#${i}`).digest();
    // 48 bits of the digest, exact in a double, then mod range.
    points.push((d.readUIntBE(0, 6) % range) >>> 0);
  }
  return points;
}

/** The position-hash input for a key: sha256 spreads correlated keys over the ring. */
function keyDigest(key: string): string {
  return createHash('sha256').update(key).digest('base64');
}

/** An immutable ring over a fixed set of node ids. */
export class Ring {
  /** The node ids, sorted. */
  readonly nodeIds: readonly string[];
  private readonly ring: ConsistentHashRing;
  private readonly cache = new Map<string, readonly string[]>();
  private readonly cacheSize: number;

  constructor(nodeIds: Iterable<string>, options: RingOptions = {}) {
    const range = options.range ?? DEFAULT_RING_RANGE;
    const perNode = options.pointsPerNode ?? DEFAULT_POINTS_PER_NODE;
    this.cacheSize = options.cacheSize ?? 100_000;
    const ids = [...new Set(nodeIds)].sort();
    this.nodeIds = ids;
    // Collisions are resolved from the sorted ids, so the answer depends on the set alone:
    // the smaller id keeps the point, the other node takes the nearest free point below it.
    // Removing the smaller node then hands the titles at that point to the other node only.
    const taken = new Set<number>();
    this.ring = new ConsistentHash({ range, weight: perNode });
    for (const id of ids) {
      const mine: number[] = [];
      for (let p of controlPoints(id, perNode, range)) {
        while (taken.has(p)) p = (p - 1 + range) % range;
        taken.add(p);
        mine.push(p);
      }
      this.ring.add(id, mine.length, mine);
    }
  }

  /** Every node, in ring order from the key's position (first = the key's owner). */
  rank(key: string): readonly string[] {
    const hit = this.cache.get(key);
    if (hit) return hit;
    const r = this.nodeIds.length === 0 ? [] : (this.ring.get(keyDigest(key), this.nodeIds.length) ?? []);
    const frozen = Object.freeze(r.slice());
    if (this.cacheSize > 0) {
      if (this.cache.size >= this.cacheSize) this.cache.clear();
      this.cache.set(key, frozen);
    }
    return frozen;
  }

  /** The node that owns the key, or undefined on an empty ring. */
  owner(key: string): string | undefined {
    return this.rank(key)[0];
  }

  /**
   * Nodes of `subset` in ring order from the key: the same order a ring of only those nodes
   * would give (walking the full ring and skipping the others is exactly that ring).
   */
  rankAmong(key: string, subset: ReadonlySet<string>): string[] {
    return this.rank(key).filter((n) => subset.has(n));
  }
}

/** Convenience: rank `key` over `nodeIds` (builds a ring; keep a Ring for repeated use). */
export function rank(key: string, nodeIds: Iterable<string>, options?: RingOptions): readonly string[] {
  return new Ring(nodeIds, { ...options, cacheSize: 0 }).rank(key);
}

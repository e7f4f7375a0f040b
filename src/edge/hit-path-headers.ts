import { formatCmsdDynamic, formatCmsdStatic, objectTypeOf } from '../common/cmsd.js';
import { CORS_HEADERS } from '../common/cors.js';
import type { ByteRange } from '../common/range.js';
import type { ObjectMeta } from '../common/response-plan.js';
import type { ClientThroughput } from './client-throughput.js';
import type { Tier } from './edge-cache.js';

/** How to answer: the status, the body's bytes and, off the common case, planResponse's headers. */
export interface Plan {
  readonly status: number;
  /** The bytes the body carries: none for HEAD, 304, 412, 416. */
  readonly range: ByteRange | undefined;
  /** The one range of a 206 answered without planResponse (its Content-Range, also on HEAD). */
  readonly partial: ByteRange | undefined;
  readonly planned: Record<string, string> | undefined;
}

const TIER_SLOTS: readonly Tier[] = ['HIT-MEM', 'HIT-DISK', 'HIT-FILL', 'MISS'];
const CORS_FLAT: readonly string[] = Object.entries(CORS_HEADERS).flat();

/**
 * The response headers of one representation, built once and shared by every answer from it:
 * what a 200 or 206 always carries (CORS, validators, Accept-Ranges, Content-Type) as the flat
 * array `res.writeHead` takes without building a header object; and, per X-Cache value, the
 * whole 200 itself. Only Content-Length, Content-Range, X-Cache, CMSD-Dynamic, traceparent and Warning vary.
 * With them, the plans of a whole GET and HEAD.
 */
export class RepresentationHeaders {
  /** Name, value, name, value…: CORS, accept-ranges, validators, content-type, CMSD-Static. */
  readonly common: readonly string[];
  readonly sizeText: string;
  /** The plan of a whole 200 to GET and to HEAD (the commonest answers, shared rather than made per request). */
  readonly get200: Plan;
  readonly head200: Plan;
  private readonly whole: (string[] | undefined)[] = [undefined, undefined, undefined, undefined];
  /** The CMSD-Dynamic value each of `whole` was built with. */
  private readonly wholeDynamic: (string | undefined)[] = [undefined, undefined, undefined, undefined];

  /** `file`: the object's name (its CMSD object type). */
  constructor(meta: ObjectMeta, file: string) {
    // The order planResponse gives them, after the CORS headers every public answer carries.
    const h = [...CORS_FLAT, 'accept-ranges', 'bytes'];
    if (meta.etag) h.push('etag', meta.etag);
    if (meta.lastModified) h.push('last-modified', meta.lastModified);
    if (meta.cacheControl) h.push('cache-control', meta.cacheControl);
    h.push('content-type', meta.contentType);
    h.push(CMSD_STATIC, cmsdStaticOf(meta, file));
    this.common = h;
    this.sizeText = String(meta.size);
    this.get200 = { status: 200, range: meta.size === 0 ? undefined : { start: 0, end: meta.size }, partial: undefined, planned: undefined };
    this.head200 = { status: 200, range: undefined, partial: undefined, planned: undefined };
  }

  /**
   * The headers of a whole 200 answered from `tier` with CMSD-Dynamic `dynamic`, nothing else
   * added: built once per tier while the node's CMSD-Dynamic stays the same (a client with its
   * own `etp` gets a list of its own).
   */
  whole200(tier: Tier, dynamic: string): readonly string[] {
    const i = TIER_SLOTS.indexOf(tier);
    let h = this.whole[i];
    if (!h || this.wholeDynamic[i] !== dynamic) {
      h = [...this.common, 'content-length', this.sizeText, 'x-cache', tier, CMSD_DYNAMIC, dynamic];
      this.whole[i] = h;
      this.wholeDynamic[i] = dynamic;
    }
    return h;
  }
}

/**
 * RepresentationHeaders by the cache's meta object. A meta is replaced, never mutated, when its
 * object changes or is revalidated, so keying by identity can never hand out stale validators;
 * entries go with their metas (WeakMap).
 */
export class HeaderBook {
  private readonly byMeta = new WeakMap<ObjectMeta, RepresentationHeaders>();

  of(meta: ObjectMeta, file: string): RepresentationHeaders {
    let h = this.byMeta.get(meta);
    if (!h) {
      h = new RepresentationHeaders(meta, file);
      this.byMeta.set(meta, h);
    }
    return h;
  }
}

export const CMSD_STATIC = 'cmsd-static';
export const CMSD_DYNAMIC = 'cmsd-dynamic';

/** CMSD-Static by representation (a meta is replaced, never mutated, when its object changes). */
const staticByMeta = new WeakMap<ObjectMeta, string>();

/** CMSD-Static of a representation of `file`: its object type, and VOD (every title an edge serves is). */
export function cmsdStaticOf(meta: ObjectMeta, file: string): string {
  let s = staticByMeta.get(meta);
  if (s === undefined) {
    s = formatCmsdStatic({ ot: objectTypeOf(file, meta.contentType), st: 'v' });
    staticByMeta.set(meta, s);
  }
  return s;
}

/**
 * CMSD-Dynamic of this edge's answers: its id; `du` (duress) while the node is overloaded or
 * draining; `etp` for a client whose recent large answers were measured (ClientThroughput), on
 * answers to requests that carry CMCD only — a player that speaks CMCD reads it, and other
 * answers stay the same for every client (a shared cache downstream may keep them) and cost no
 * lookup. The two values without `etp` are made once; only an answer with `etp` makes a string.
 */
export class CmsdDynamicHeader {
  private readonly plain: string;
  private readonly duress: string;

  constructor(
    private readonly id: string,
    /** True while the node is overloaded or draining (read per answer: a few comparisons). */
    private readonly inDuress: () => boolean,
    readonly throughput: ClientThroughput | undefined,
  ) {
    this.plain = formatCmsdDynamic(id);
    this.duress = formatCmsdDynamic(id, { du: true });
  }

  /** The value for an answer to `client` (its address); `player`: the request carried CMCD. */
  valueFor(client: string | undefined, player: boolean): string {
    const du = this.inDuress();
    const etp = player ? this.throughput?.kbps(client) : undefined;
    if (etp === undefined) return du ? this.duress : this.plain;
    return formatCmsdDynamic(this.id, { etp, du });
  }
}

import { CORS_HEADERS } from '../common/cors.js';
import type { ByteRange } from '../common/range.js';
import type { ObjectMeta } from '../common/response-plan.js';
import { CMSD_DYNAMIC, CMSD_STATIC, cmsdStaticOf } from './cmsd-header.js';
import type { Tier } from './edge-cache.js';

// Until server.ts and test/edge/qoe.test.ts import it from its own module (cmsd-header.ts).

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
   * The headers of a whole 200 answered from `tier` with the node's CMSD-Dynamic `dynamic`
   * (CmsdDynamicHeader.shared), nothing else added: built once per tier while that value stays
   * the same. An answer with an `etp` of its own takes `whole200Own`, which leaves these alone.
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

  /** The headers of a whole 200 with a client's own CMSD-Dynamic (`etp`): `common` and the rest, made for this answer. */
  whole200Own(tier: Tier, dynamic: string): string[] {
    const h = this.common.slice();
    h.push('content-length', this.sizeText, 'x-cache', tier, CMSD_DYNAMIC, dynamic);
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

import { CORS_HEADERS } from '../common/cors.js';
import type { ObjectMeta } from '../common/response-plan.js';
import type { Tier } from './edge-cache.js';

const TIER_SLOTS: readonly Tier[] = ['HIT-MEM', 'HIT-DISK', 'HIT-FILL', 'MISS'];
const CORS_FLAT: readonly string[] = Object.entries(CORS_HEADERS).flat();

/**
 * The response headers of one representation, built once and shared by every answer from it:
 * what a 200 or 206 always carries (CORS, validators, Accept-Ranges, Content-Type) as the flat
 * array `res.writeHead` takes without building a header object; and, per X-Cache value, the
 * whole 200 itself. Only Content-Length, Content-Range, X-Cache, traceparent and Warning vary.
 */
export class RepresentationHeaders {
  /** Name, value, name, value…: CORS, accept-ranges, validators, content-type. */
  readonly common: readonly string[];
  readonly sizeText: string;
  private readonly whole: (string[] | undefined)[] = [undefined, undefined, undefined, undefined];

  constructor(meta: ObjectMeta) {
    // The order planResponse gives them, after the CORS headers every public answer carries.
    const h = [...CORS_FLAT, 'accept-ranges', 'bytes'];
    if (meta.etag) h.push('etag', meta.etag);
    if (meta.lastModified) h.push('last-modified', meta.lastModified);
    if (meta.cacheControl) h.push('cache-control', meta.cacheControl);
    h.push('content-type', meta.contentType);
    this.common = h;
    this.sizeText = String(meta.size);
  }

  /** The headers of a whole 200 answered from `tier`, nothing else added: built once per tier. */
  whole200(tier: Tier): readonly string[] {
    const i = TIER_SLOTS.indexOf(tier);
    let h = this.whole[i];
    if (!h) {
      h = [...this.common, 'content-length', this.sizeText, 'x-cache', tier];
      this.whole[i] = h;
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

  of(meta: ObjectMeta): RepresentationHeaders {
    let h = this.byMeta.get(meta);
    if (!h) {
      h = new RepresentationHeaders(meta);
      this.byMeta.set(meta, h);
    }
    return h;
  }
}

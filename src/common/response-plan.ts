import { randomBytes } from 'node:crypto';
import { type ByteRange, contentRange, parseRange } from './range.js';

/** What we know of an object before sending any of it. */
export interface ObjectMeta {
  size: number;
  contentType: string;
  /** Strong ETag as the origin gave it, quotes included. */
  etag?: string;
  /** HTTP-date. */
  lastModified?: string;
  cacheControl?: string;
}

/** The request headers that decide the answer. */
export interface RequestView {
  method: string;
  range?: string;
  ifRange?: string;
  ifMatch?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  ifUnmodifiedSince?: string;
}

/** A piece of the body: object bytes [start, end) or literal bytes (multipart framing). */
export type BodyPart = { kind: 'bytes'; range: ByteRange } | { kind: 'literal'; data: Buffer };

export interface ResponsePlan {
  status: 200 | 206 | 304 | 412 | 416;
  headers: Record<string, string>;
  /** Empty for HEAD, 304, 412, 416. */
  body: BodyPart[];
}

/**
 * How to answer a GET or HEAD of an object, in send's order:
 * validators → conditionals (412/304) → If-Range → Range → Content-Length → HEAD.
 * Pure: the caller streams `body` from whichever tier holds the bytes.
 */
export function planResponse(req: RequestView, meta: ObjectMeta, boundaryIn?: string): ResponsePlan {
  const headers: Record<string, string> = { 'accept-ranges': 'bytes' };
  if (meta.etag) headers.etag = meta.etag;
  if (meta.lastModified) headers['last-modified'] = meta.lastModified;
  if (meta.cacheControl) headers['cache-control'] = meta.cacheControl;

  const lastModifiedMs = meta.lastModified ? Date.parse(meta.lastModified) : NaN;

  // RFC 9110 §13.2.2: If-Match, then If-Unmodified-Since (only without If-Match).
  if (req.ifMatch !== undefined) {
    if (!etagListMatches(req.ifMatch, meta.etag, 'strong')) return { status: 412, headers, body: [] };
  } else if (req.ifUnmodifiedSince !== undefined && !Number.isNaN(lastModifiedMs)) {
    const since = Date.parse(req.ifUnmodifiedSince);
    if (!Number.isNaN(since) && lastModifiedMs > since) return { status: 412, headers, body: [] };
  }
  // If-None-Match, then If-Modified-Since (only without If-None-Match).
  if (req.ifNoneMatch !== undefined) {
    if (etagListMatches(req.ifNoneMatch, meta.etag, 'weak')) return { status: 304, headers, body: [] };
  } else if (req.ifModifiedSince !== undefined && !Number.isNaN(lastModifiedMs)) {
    const since = Date.parse(req.ifModifiedSince);
    if (!Number.isNaN(since) && lastModifiedMs <= since) return { status: 304, headers, body: [] };
  }

  const head = req.method === 'HEAD';
  const rangeHeader = req.range !== undefined && ifRangeHolds(req.ifRange, meta) ? req.range : undefined;
  const wanted = parseRange(rangeHeader, meta.size);

  if (wanted.kind === 'unsatisfiable') {
    headers['content-range'] = `bytes */${meta.size}`;
    headers['content-length'] = '0';
    return { status: 416, headers, body: [] };
  }

  if (wanted.kind === 'none') {
    headers['content-type'] = meta.contentType;
    headers['content-length'] = String(meta.size);
    const body: BodyPart[] = head || meta.size === 0 ? [] : [{ kind: 'bytes', range: { start: 0, end: meta.size } }];
    return { status: 200, headers, body };
  }

  const ranges = wanted.ranges;
  if (ranges.length === 1) {
    const r = ranges[0]!;
    headers['content-type'] = meta.contentType;
    headers['content-range'] = contentRange(r, meta.size);
    headers['content-length'] = String(r.end - r.start);
    return { status: 206, headers, body: head ? [] : [{ kind: 'bytes', range: r }] };
  }

  // multipart/byteranges (RFC 9110 §14.6); the boundary is made only here, not on the hot path.
  const boundary = boundaryIn ?? newBoundary();
  const body: BodyPart[] = [];
  let length = 0;
  ranges.forEach((r, i) => {
    const partHead = Buffer.from(
      `${i === 0 ? '' : '\r\n'}--${boundary}\r\ncontent-type: ${meta.contentType}\r\ncontent-range: ${contentRange(r, meta.size)}\r\n\r\n`,
    );
    body.push({ kind: 'literal', data: partHead }, { kind: 'bytes', range: r });
    length += partHead.length + (r.end - r.start);
  });
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  body.push({ kind: 'literal', data: tail });
  length += tail.length;
  headers['content-type'] = `multipart/byteranges; boundary=${boundary}`;
  headers['content-length'] = String(length);
  return { status: 206, headers, body: head ? [] : body };
}

function newBoundary(): string {
  return `reelcdn-${randomBytes(12).toString('hex')}`;
}

/**
 * If-Range (RFC 9110 §13.1.5): the Range applies only when the validator still matches —
 * a strong ETag compared strongly, or a date equal to Last-Modified.
 */
function ifRangeHolds(ifRange: string | undefined, meta: ObjectMeta): boolean {
  if (ifRange === undefined) return true;
  const v = ifRange.trim();
  if (v.startsWith('"') || v.startsWith('W/')) {
    return !v.startsWith('W/') && meta.etag !== undefined && !meta.etag.startsWith('W/') && v === meta.etag;
  }
  if (!meta.lastModified) return false;
  const date = Date.parse(v);
  return !Number.isNaN(date) && date === Date.parse(meta.lastModified);
}

/** Matches an If-Match / If-None-Match list ("*" or comma-separated entity tags). */
export function etagListMatches(list: string, etag: string | undefined, comparison: 'strong' | 'weak'): boolean {
  const trimmed = list.trim();
  if (trimmed === '*') return etag !== undefined;
  if (etag === undefined) return false;
  const opaque = (t: string) => (t.startsWith('W/') ? t.slice(2) : t);
  for (const raw of trimmed.split(',')) {
    const tag = raw.trim();
    if (comparison === 'strong') {
      if (!tag.startsWith('W/') && !etag.startsWith('W/') && tag === etag) return true;
    } else if (opaque(tag) === opaque(etag)) {
      return true;
    }
  }
  return false;
}

/** Reads the headers `planResponse` needs from a Node/fastify header object. */
export function requestView(method: string, h: Record<string, string | string[] | undefined>): RequestView {
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(', ') : v);
  return {
    method,
    range: one(h.range),
    ifRange: one(h['if-range']),
    ifMatch: one(h['if-match']),
    ifNoneMatch: one(h['if-none-match']),
    ifModifiedSince: one(h['if-modified-since']),
    ifUnmodifiedSince: one(h['if-unmodified-since']),
  };
}

import { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { sendError } from '../common/http-app.js';
import { parseObjectPath } from '../common/paths.js';
import { type BodyPart, type ObjectMeta, planResponse, requestView } from '../common/response-plan.js';
import type { Catalog, CatalogFile, TitleEntry } from './catalog.js';
import type { OriginRefusal, OriginRequestFacts, OriginVerdict } from './origin-auth.js';
import { type ObjectReader, type OriginStorage, StoreUnavailable, entryFileKey } from './storage/storage.js';

/** Catalog files never change under their URL: a re-ingest gives new ETags, caches may keep them a year. */
export const IMMUTABLE = 'public, max-age=31536000, immutable';

export const OBJECT_PREFIX = '/o/';

/**
 * A title or file not in the loaded catalog makes the route look at the stored catalog (a stat;
 * a reload if it changed) at most this often, ms: every such request shares that one look.
 */
export const UNKNOWN_REFRESH_MS = 250;

/** A strong ETag from the content hash: the same bytes have the same tag on every origin replica. */
export function etagFor(file: CatalogFile): string {
  return `"${file.sha256.slice(0, 32)}"`;
}

export function objectMeta(entry: TitleEntry, file: CatalogFile): ObjectMeta {
  return {
    size: file.size,
    contentType: file.contentType,
    etag: etagFor(file),
    lastModified: new Date(entry.ingestedAt).toUTCString(),
    cacheControl: IMMUTABLE,
  };
}

export interface ObjectRouteDeps {
  /** Where the titles' files are (a folder, a bucket). */
  storage: OriginStorage;
  catalog: () => Catalog;
  /** Called for every chunk of file bytes sent (metrics). */
  onBytes: (contentType: string, n: number) => void;
  /**
   * A file the loaded catalog names is not on disk as listed: the catalog on disk has moved on
   * (our entry's version was replaced and swept). Also asked (rate-limited) before a 404: another
   * replica may have just added the title. Resolves once the newest catalog is loaded.
   */
  refreshCatalog: () => Promise<void>;
  /** Who may read /o/ (origin-auth.ts): asked before anything else. */
  auth: { check(req: OriginRequestFacts): OriginVerdict };
  /** Unix seconds now (token expiry). */
  nowSec: () => number;
  /** Told of each refusal (metrics, log); `path` is without the query, so without the token. */
  onRefused?: (reason: OriginRefusal, path: string, req: FastifyRequest) => void;
  /** Told of each read the store failed (metrics, log): answered 503, the catalog is not doubted. */
  onStoreError?: (err: StoreUnavailable, req: FastifyRequest) => void;
}

/** Seconds a client is told to wait after the store failed a read. */
export const STORE_RETRY_AFTER_SEC = 1;

/**
 * `GET|HEAD /o/{title}/{file}`: edges only (origin-auth.ts), so the request is admitted first —
 * 403 before any path check or catalog lookup, which tells a stranger nothing of what exists.
 * Then the catalog decides what exists; only a file the catalog
 * lists is ever opened, in the folder of the version the catalog entry names (versions are
 * never rewritten, so the ETag from the entry's sha256 always names the bytes sent). The answer
 * is planned by planResponse (conditionals, ranges, multipart) and the bytes are streamed from
 * storage range by range (a file handle, ranged GETs), never read whole.
 */
export function objectHandler(deps: ObjectRouteDeps) {
  // Unknown titles: one look at the stored catalog per UNKNOWN_REFRESH_MS, shared by the requests meanwhile.
  let lookedAt = -Infinity;
  let looking: Promise<void> | undefined;
  const lookForUnknown = (): Promise<void> => {
    if (looking) return looking;
    const now = deps.nowSec() * 1000;
    if (now - lookedAt < UNKNOWN_REFRESH_MS && now >= lookedAt) return Promise.resolve();
    lookedAt = now;
    looking = deps.refreshCatalog().finally(() => (looking = undefined));
    return looking;
  };

  return async (req: FastifyRequest, reply: FastifyReply) => {
    const raw = req.raw.url ?? '';
    const q = raw.indexOf('?');
    const path = q < 0 ? raw : raw.slice(0, q);
    const verdict = deps.auth.check({ path, query: q < 0 ? '' : raw.slice(q + 1), clientCertVerified: verifiedClientCert(req), nowSec: deps.nowSec() });
    if (!verdict.ok) {
      deps.onRefused?.(verdict.reason, path, req);
      return sendError(reply, 403, `forbidden: ${verdict.reason}`);
    }
    // The token's query never reaches the lookup: only the path names the file.
    const parsed = parseObjectPath(path.slice(OBJECT_PREFIX.length));
    if (!parsed.ok) return sendError(reply, 400, parsed.reason);
    const view = requestView(req.method, req.headers);

    // Twice at most: the second time with the newest catalog, if the first one's version is gone.
    for (let attempt = 0; attempt < 2; attempt++) {
      const catalog = deps.catalog();
      const entry = catalog.get(parsed.title);
      const file = catalog.file(parsed.title, parsed.file);
      if (!entry || !file) {
        // Edges remember a 404 for a while: a title another replica just ingested is looked for
        // in the stored catalog first (this replica's poll may be up to 2 s behind).
        if (attempt === 0) {
          await lookForUnknown().catch(() => {});
          if (deps.catalog() !== catalog) continue;
        }
        return sendError(reply, 404, 'not found');
      }

      const plan = planResponse(view, objectMeta(entry, file));
      const parts = plan.body;
      if (!parts.some((p) => p.kind === 'bytes')) return reply.code(plan.status).headers(plan.headers).send();

      // Open before answering, so a file gone or damaged is an error status, not a cut body. Once
      // open, a file handle reads these bytes even if a sweep deletes the version meanwhile (on
      // S3 the first range is already on its way; the sweep's grace period covers the rest).
      const first = parts.find((p): p is Extract<BodyPart, { kind: 'bytes' }> => p.kind === 'bytes')?.range;
      let reader: ObjectReader | undefined;
      try {
        reader = await deps.storage.openObject(entryFileKey(entry, file.path), file.size, first);
      } catch (err) {
        if (err instanceof StoreUnavailable) {
          // Throttled or failing: the same read may work in a moment; the catalog is not in question.
          deps.onStoreError?.(err, req);
          return sendError(reply, 503, `the object store failed (${err.reason}), try again`, { 'retry-after': String(STORE_RETRY_AFTER_SEC) });
        }
        reader = undefined;
      }
      if (reader) return reply.code(plan.status).headers(plan.headers).send(streamParts(reader, parts, (n) => deps.onBytes(file.contentType, n)));
      if (attempt === 0) await deps.refreshCatalog();
    }
    return sendError(reply, 503, 'title is being replaced, try again', { 'retry-after': '1' });
  };
}

/**
 * The connection presented a certificate the server verified against its CA. `authorized` is
 * only true on a TLS socket whose server asked for a certificate (requireClientCert) and
 * found it good; plain HTTP and TLS without client certificates are never verified.
 */
function verifiedClientCert(req: FastifyRequest): boolean {
  return (req.raw.socket as Partial<TLSSocket> | null)?.authorized === true;
}

/** The planned body as one stream; the object is closed however the stream ends. */
function streamParts(reader: ObjectReader, parts: BodyPart[], onBytes: (n: number) => void): Readable {
  async function* chunks() {
    for (const p of parts) {
      if (p.kind === 'literal') {
        yield p.data;
        continue;
      }
      for await (const c of reader.read(p.range)) {
        onBytes((c as Buffer).length);
        yield c as Buffer;
      }
    }
  }
  const body = Readable.from(chunks(), { objectMode: false });
  body.once('close', () => void reader.close());
  return body;
}

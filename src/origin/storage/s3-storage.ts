import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { type Clock, systemClock } from '../../common/clock.js';
import type { S3StorageConfig } from '../../common/config.js';
import { contentTypeFor } from '../../common/mime.js';
import { OriginInputError } from '../errors.js';
import { type ByteRange, type ObjectReader, type ObjectStat, type OriginStorage, type StoreFailure, type StoredDocument, StoreUnavailable, type VersionWriter, type WriteResult } from './storage.js';

export interface S3StorageOptions {
  /** Lock leases and their renewal. */
  clock?: Clock;
  /** How long a lock holds without renewal; renewed every third of it. Default 60 s. */
  lockLeaseMs?: number;
  /** Extra client settings (tests: retries). Credentials come from the SDK's default chain. */
  client?: Partial<S3ClientConfig>;
}

/** S3 deletes at most this many keys per request. */
const DELETE_BATCH = 1000;

/**
 * The origin's storage in an S3-compatible bucket (`origin.storage.kind: "s3"`), under
 * `prefix`. Credentials come from the AWS SDK's default chain: the AWS_* environment variables,
 * ~/.aws/credentials and AWS_PROFILE, web identity (Kubernetes service accounts), instance roles.
 *
 * - Documents (catalog.json, plays.json) are single PUTs, atomic by nature; `ifTag` becomes
 *   If-Match / If-None-Match, so replicas and ingests that race on a document find out (412)
 *   instead of overwriting each other. The store must honour conditional writes (AWS S3, MinIO,
 *   Cloudflare R2, Ceph do); docs/operations.md says what to do with one that does not.
 * - Objects are read by ranged GETs, one per body part, never whole; the first is sent before
 *   the answer's status, so a missing object is a 503 rather than a cut body.
 * - A title version is uploaded straight to its final keys (multipart above 5 MiB): nothing
 *   reads them until the catalog names the version, so there is no rename to do.
 * - The ingest lock is a document created with If-None-Match and renewed as a lease: a lock
 *   whose lease ran out (its ingest died) is taken over with If-Match on the stale tag.
 */
export class S3Storage implements OriginStorage {
  readonly client: S3Client;
  readonly bucket: string;
  /** '' or ends with '/'. */
  readonly prefix: string;
  private readonly clock: Clock;
  private readonly leaseMs: number;

  constructor(cfg: S3StorageConfig, opts: S3StorageOptions = {}) {
    this.bucket = cfg.bucket;
    this.prefix = cfg.prefix;
    this.clock = opts.clock ?? systemClock;
    this.leaseMs = opts.lockLeaseMs ?? 60_000;
    this.client = new S3Client({
      region: cfg.region,
      ...(cfg.endpoint === undefined ? {} : { endpoint: cfg.endpoint }),
      forcePathStyle: cfg.forcePathStyle,
      // The SDK's default trailing checksums (aws-chunked bodies) are not understood by many
      // S3-compatible stores, which then store the framing as content. Integrity is ours anyway:
      // the catalog's sha256 of every file, which edges verify.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...opts.client,
    });
  }

  get location(): string {
    return `s3://${this.bucket}/${this.prefix}`;
  }

  describe(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  private full(key: string): string {
    return this.prefix + key;
  }

  async stat(key: string): Promise<ObjectStat | undefined> {
    try {
      const h = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.full(key) }));
      return { size: h.ContentLength ?? 0, tag: h.ETag ?? '' };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw storageError(err, this.describe(key));
    }
  }

  async readDocument(key: string): Promise<StoredDocument | undefined> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key) }));
      return { text: await r.Body!.transformToString('utf8'), tag: r.ETag ?? '' };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw storageError(err, this.describe(key));
    }
  }

  async writeDocument(key: string, data: string, ifTag?: string | null): Promise<WriteResult> {
    try {
      const r = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.full(key),
          Body: data,
          ContentType: 'application/json',
          ...(ifTag === null ? { IfNoneMatch: '*' } : ifTag !== undefined ? { IfMatch: ifTag } : {}),
        }),
      );
      return { ok: true, tag: r.ETag ?? '' };
    } catch (err) {
      // 412: the document is not (or no longer) the one named; 409: a concurrent conditional write won.
      if (ifTag !== undefined && (status(err) === 412 || status(err) === 409)) return { ok: false };
      // If-Match on a document that does not exist is a 404 on some stores.
      if (typeof ifTag === 'string' && isNotFound(err)) return { ok: false };
      throw storageError(err, this.describe(key));
    }
  }

  async removeDocument(key: string, ifTag?: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.full(key), ...(ifTag === undefined ? {} : { IfMatch: ifTag }) }));
    } catch (err) {
      if (isNotFound(err) || status(err) === 412) return;
      throw storageError(err, this.describe(key));
    }
  }

  async openObject(key: string, size: number, first?: ByteRange): Promise<ObjectReader | undefined> {
    const Key = this.full(key);
    if (first === undefined || first.end <= first.start) {
      let h;
      try {
        h = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw unavailable(err, this.describe(key));
      }
      return h.ContentLength === size ? this.reader(Key, h.ETag, undefined, undefined) : undefined;
    }
    let r: GetObjectCommandOutput;
    try {
      r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range: rangeHeader(first) }));
    } catch (err) {
      // Gone (404) or shorter than listed (416): not servable as listed. Anything else is the
      // store failing, not the catalog being wrong: said so, never taken for a replaced title.
      if (isNotFound(err) || status(err) === 416) return undefined;
      throw unavailable(err, this.describe(key));
    }
    if (totalOf(r) !== size) {
      (r.Body as Readable | undefined)?.destroy();
      return undefined;
    }
    return this.reader(Key, r.ETag, first, r.Body as Readable);
  }

  /** Reads ranges of one object; `pending` is the already-sent GET of `first`. */
  private reader(Key: string, tag: string | undefined, first: ByteRange | undefined, pending: Readable | undefined): ObjectReader {
    let waiting = pending;
    return {
      read: (range: ByteRange): Readable => {
        if (range.end <= range.start) return Readable.from([]);
        if (waiting && first && range.start === first.start && range.end === first.end) {
          const body = waiting;
          waiting = undefined;
          return body;
        }
        // Later parts of a multipart answer: one GET each, pinned to the object the first one saw.
        const client = this.client;
        const bucket = this.bucket;
        return Readable.from(
          (async function* () {
            const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key, Range: rangeHeader(range), ...(tag ? { IfMatch: tag } : {}) }));
            yield* r.Body as Readable;
          })(),
        );
      },
      close: async () => {
        waiting?.destroy();
        waiting = undefined;
      },
    };
  }

  async list(prefix: string): Promise<string[]> {
    const Prefix = this.full(prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`);
    const out: string[] = [];
    let ContinuationToken: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix, Delimiter: '/', ContinuationToken }));
      for (const p of r.CommonPrefixes ?? []) if (p.Prefix) out.push(p.Prefix.slice(Prefix.length).replace(/\/$/, ''));
      for (const o of r.Contents ?? []) if (o.Key && o.Key !== Prefix) out.push(o.Key.slice(Prefix.length));
      ContinuationToken = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (ContinuationToken);
    return out.sort();
  }

  async removeTree(key: string): Promise<void> {
    const base = this.full(key.replace(/\/+$/, ''));
    const keys: string[] = [base];
    let ContinuationToken: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${base}/`, ContinuationToken }));
      for (const o of r.Contents ?? []) if (o.Key) keys.push(o.Key);
      ContinuationToken = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (ContinuationToken);
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
    }
  }

  async stageVersion(title: string, version: string): Promise<VersionWriter> {
    const folder = `titles/${title}/${version}`;
    return {
      put: async (path: string, source: Readable): Promise<void> => {
        const upload = new Upload({
          client: this.client,
          params: { Bucket: this.bucket, Key: this.full(`${folder}/${path}`), Body: source, ContentType: contentTypeFor(path) },
        });
        try {
          await upload.done();
        } catch (err) {
          throw storageError(err, this.describe(`${folder}/${path}`));
        }
      },
      publish: async () => {},
      discard: async () => {
        await this.removeTree(folder).catch(() => {});
      },
    };
  }

  /**
   * Whether the store refuses a conditional write whose condition fails: a probe document
   * created twice with If-None-Match. A store that accepts the second (older MinIO, some
   * S3-compatible services) gives no exclusion — the ingest lock and the shared play counts
   * then rest on running one ingest and one origin replica at a time (docs/operations.md).
   */
  async honoursConditionalWrites(): Promise<boolean> {
    const key = `.probe-conditional-${randomBytes(6).toString('hex')}`;
    try {
      const first = await this.writeDocument(key, '{}\n', null);
      if (!first.ok) return false;
      const second = await this.writeDocument(key, '{}\n', null);
      return !second.ok;
    } finally {
      await this.removeDocument(key).catch(() => {});
    }
  }

  async lock(key: string, what: string): Promise<() => Promise<void>> {
    const owner = `${hostname()} pid ${process.pid} ${randomBytes(4).toString('hex')}`;
    const body = () => JSON.stringify({ owner, expiresAt: new Date(this.clock.now() + this.leaseMs).toISOString() }) + '\n';
    let got = await this.writeDocument(key, body(), null);
    if (!got.ok) {
      const held = await this.readDocument(key);
      const lease = held ? parseLease(held.text) : undefined;
      if (held && lease && lease.expiresAt > this.clock.now()) {
        throw new OriginInputError(`${what} is already running (${lease.owner}, lease until ${new Date(lease.expiresAt).toISOString()}); try again when it has finished`);
      }
      // Its owner stopped renewing (or it was never a lease): take it over, unless someone else just did.
      got = await this.writeDocument(key, body(), held ? held.tag : null);
      if (!got.ok) throw new OriginInputError(`${what} is already running (it took ${this.describe(key)} just now); try again when it has finished`);
    }
    let tag = got.tag;
    let released = false;
    const renew = async (): Promise<void> => {
      if (released) return;
      const r = await this.writeDocument(key, body(), tag).catch(() => ({ ok: false }) as const);
      if (r.ok) tag = r.tag;
    };
    // Renewals one after another: each names the tag the previous one left.
    let renewing: Promise<void> = Promise.resolve();
    const timer = setInterval(() => {
      renewing = renewing.then(renew, renew);
    }, Math.max(10, Math.floor(this.leaseMs / 3)));
    timer.unref();
    return async () => {
      released = true;
      clearInterval(timer);
      await renewing.catch(() => {});
      await this.removeDocument(key, tag);
    };
  }
}

function rangeHeader(r: ByteRange): string {
  return `bytes=${r.start}-${r.end - 1}`;
}

/** The object's full size from a (ranged) GET: Content-Range's total, or the length of a whole body. */
function totalOf(r: GetObjectCommandOutput): number | undefined {
  const m = /\/(\d+)$/.exec(r.ContentRange ?? '');
  if (m) return Number(m[1]);
  return r.ContentRange === undefined ? r.ContentLength : undefined;
}

function parseLease(text: string): { owner: string; expiresAt: number } | undefined {
  try {
    const v = JSON.parse(text) as { owner?: unknown; expiresAt?: unknown };
    const at = typeof v.expiresAt === 'string' ? Date.parse(v.expiresAt) : NaN;
    return typeof v.owner === 'string' && !Number.isNaN(at) ? { owner: v.owner, expiresAt: at } : undefined;
  } catch {
    return undefined;
  }
}

function status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function isNotFound(err: unknown): boolean {
  const name = (err as { name?: string }).name;
  return status(err) === 404 || name === 'NoSuchKey' || name === 'NotFound';
}

/** A failed read the store may answer in a moment, with its bounded reason. */
function unavailable(err: unknown, where: string): StoreUnavailable {
  const e = err as { name?: string; message?: string; $retryable?: { throttling?: boolean } };
  const code = status(err);
  const throttled = code === 429 || code === 503 || e.$retryable?.throttling === true || /throttl|slowdown|toomanyrequests|requestlimitexceeded/i.test(e.name ?? '');
  let reason: StoreFailure;
  if (throttled) reason = 'throttled';
  else if (code !== undefined && code >= 500) reason = 'server-error';
  else if (code === undefined) reason = 'unreachable';
  else reason = 'refused';
  return new StoreUnavailable(where, reason, `${e.name ?? 'error'}${code ? ` (HTTP ${code})` : ''}: ${e.message ?? String(err)}`);
}

/** One line naming the object and what the store said (never the SDK's stack). */
function storageError(err: unknown, where: string): Error {
  const e = err as { name?: string; message?: string };
  const code = status(err);
  return new Error(`${where}: ${e.name ?? 'error'}${code ? ` (HTTP ${code})` : ''}: ${e.message ?? String(err)}`, { cause: err });
}

import { type IncomingMessage, type ServerResponse, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startFauxqs } from 'fauxqs';

/** One request the S3 server saw (method, path with the query, Range header). */
export interface S3Request {
  method: string;
  path: string;
  range?: string;
}

export interface TestS3 {
  /** The endpoint to give origin.storage.endpoint (path style). */
  endpoint: string;
  bucket: string;
  /** Every request, in order of arrival. */
  requests: S3Request[];
  /** The S3 server itself, without conditional writes (a store that ignores them). */
  plainEndpoint: string;
  /**
   * A store having trouble: a request this answers for gets that S3 error (e.g. 503 SlowDown)
   * instead of reaching the server. Unset: none.
   */
  fault: ((r: S3Request) => { status: number; code: string } | undefined) | undefined;
  close(): Promise<void>;
}

// The S3 SDK reads credentials from the standard environment variables, as an operator's origin
// does; the test server takes any.
process.env.AWS_ACCESS_KEY_ID ??= 'reelcdn-test';
process.env.AWS_SECRET_ACCESS_KEY ??= 'reelcdn-test';
process.env.AWS_EC2_METADATA_DISABLED = 'true';

/**
 * A real S3 API server on 127.0.0.1 (fauxqs's S3, from npm, in memory) with one bucket. (s3rver
 * was tried first: it runs on Node 24, but lists no common prefix for a folder that holds only
 * folders, which is every title folder.)
 *
 * fauxqs does not implement S3's conditional writes (If-Match / If-None-Match on PUT and DELETE, 2024),
 * which the origin relies on between replicas; so the endpoint is a small front that gives PUT
 * and DELETE those semantics the way S3 does — one conditional write per key at a time, the
 * precondition checked against the object's current ETag, 412 PreconditionFailed otherwise — and
 * passes everything else through untouched. It also records each request, so tests can check what
 * reached the store (ranged GETs only, for instance).
 */
export async function startTestS3(bucket = 'reelcdn-test'): Promise<TestS3> {
  const upstream = await startFauxqs({ port: 0, host: '127.0.0.1', logger: false });
  upstream.createBucket(bucket);
  const upstreamPort = upstream.port;
  const requests: S3Request[] = [];
  const locks = new Map<string, Promise<void>>();

  const forward = (req: IncomingMessage, res: ServerResponse) => {
    const up = request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
    return new Promise<void>((resolve) => res.once('close', resolve));
  };
  const currentEtag = (path: string) =>
    new Promise<string | undefined>((resolve, reject) => {
      const r = request({ host: '127.0.0.1', port: upstreamPort, method: 'HEAD', path: path.split('?')[0] }, (res) => {
        res.resume();
        resolve(res.statusCode === 200 ? (res.headers.etag as string | undefined) : undefined);
      });
      r.on('error', reject);
      r.end();
    });
  const preconditionFailed = (res: ServerResponse) => {
    res.writeHead(412, { 'content-type': 'application/xml' });
    res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>');
  };

  const front = createServer((req, res) => {
    const range = req.headers.range;
    const seen: S3Request = { method: req.method ?? '', path: req.url ?? '', ...(typeof range === 'string' ? { range } : {}) };
    requests.push(seen);
    const fault = self.fault?.(seen);
    if (fault) {
      req.resume();
      res.writeHead(fault.status, { 'content-type': 'application/xml' });
      res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${fault.code}</Code><Message>injected by the test</Message></Error>`);
      return;
    }
    const ifMatch = req.headers['if-match'];
    const ifNoneMatch = req.headers['if-none-match'];
    const conditionalWrite = (req.method === 'PUT' || req.method === 'DELETE') && (ifMatch !== undefined || ifNoneMatch !== undefined);
    if (!conditionalWrite) {
      void forward(req, res);
      return;
    }
    const key = (req.url ?? '').split('?')[0]!;
    const prev = locks.get(key) ?? Promise.resolve();
    const mine = prev.then(async () => {
      const etag = await currentEtag(key).catch(() => undefined);
      const ok = ifNoneMatch === '*' ? etag === undefined : ifMatch !== undefined ? etag !== undefined && (ifMatch === '*' || ifMatch === etag) : true;
      if (!ok) {
        req.resume();
        preconditionFailed(res);
        return;
      }
      // The headers stay (they are signed); the server ignores them on writes.
      await forward(req, res);
    });
    const settled = mine.catch(() => {});
    locks.set(key, settled);
    void settled.then(() => {
      if (locks.get(key) === settled) locks.delete(key);
    });
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  const { port } = front.address() as AddressInfo;
  const self: TestS3 = {
    endpoint: `http://127.0.0.1:${port}`,
    plainEndpoint: `http://127.0.0.1:${upstreamPort}`,
    bucket,
    requests,
    fault: undefined,
    async close() {
      front.closeAllConnections();
      await new Promise<void>((resolve) => front.close(() => resolve()));
      await upstream.stop();
    },
  };
  return self;
}

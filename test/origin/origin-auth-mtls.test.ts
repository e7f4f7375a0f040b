import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterConfig, validateCluster } from '../../src/common/config.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { type OriginServer, createOriginServer } from '../../src/origin/server.js';
import { type TestPki, makeTestPki } from '../helpers/certs.js';
import { TEST_KEYS, tempDir } from '../helpers/cluster.js';
import { startEdge } from '../helpers/edge-harness.js';
import { metricValue } from '../helpers/http-tools.js';
import { FIXTURES, ORIGIN_ADMIN_TOKEN } from '../helpers/origin-harness.js';
import { signedForOrigin } from '../helpers/origin-http.js';

const FILE = 'stream_360p.mp4';
const PATH = `/o/movie/${FILE}`;
const source = readFileSync(join(FIXTURES, 'hls-bytes', FILE));

/** A cluster whose origin speaks https with `originTls`; steering and the edge hold certificates of the same CA. */
function mtlsCluster(pki: TestPki, requireClientCert: boolean): ClusterConfig {
  const base = tempDir();
  return validateCluster(
    {
      signing: { keys: TEST_KEYS, activeKey: 'k1' },
      origin: { url: 'https://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'origin', tls: pki.tls('origin', { requireClientCert }) },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', tls: pki.tls('steering') },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
      edges: [
        {
          id: 'edge-a1',
          isp: 'isp-a',
          url: 'http://127.0.0.1:0',
          adminUrl: 'http://127.0.0.1:0',
          dataDir: 'edge-a1',
          diskBytes: 1e8,
          memoryBytes: 1e7,
          tls: pki.tls('edge-a1'),
        },
      ],
      log: { level: 'silent' },
    },
    base,
  );
}

/** The cluster file as the edge reads it once the origin is up: edges trust the origin by the address the file gives. */
function atOrigin(config: ClusterConfig, url: string): ClusterConfig {
  return { ...config, origin: { ...config.origin, url } };
}

interface RunningOrigin {
  server: OriginServer;
  url: string;
  registry: Registry;
}

async function startOrigin(config: ClusterConfig): Promise<RunningOrigin> {
  await ingestTitle(config, 'movie', join(FIXTURES, 'hls-bytes'));
  const registry = new Registry();
  const server = createOriginServer({
    config,
    logger: pino({ level: 'silent' }),
    registry,
    adminToken: ORIGIN_ADMIN_TOKEN,
    catalogPollMs: 0,
    listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
  });
  const { publicUrl } = await server.start();
  return { server, url: publicUrl, registry };
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
}

interface Outcome {
  status?: number;
  body?: Buffer;
  /** Set when no HTTP answer came: the TLS layer refused. */
  error?: string;
}

/** One HTTPS request trusting `ca`, showing `identity` (a certificate and key) if given. */
function fetchOver(url: string, path: string, ca: Buffer, identity?: { certPem: string; keyPem: string }, headers: Record<string, string> = {}): Promise<Outcome> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const req = httpsRequest(
      { host: u.hostname, port: u.port, path, ca, agent: false, headers, ...(identity ? { cert: identity.certPem, key: identity.keyPem } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
        res.on('error', (err) => resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message }));
      },
    );
    req.on('error', (err) => resolve({ error: `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}` }));
    req.end();
  });
}

describe('origin.tls.requireClientCert: the handshake admits edges only', () => {
  const pki = makeTestPki(tempDir(), ['origin', 'steering', 'edge-a1']);
  // Same names, another CA: what someone who copied the cluster file (not the keys) could make.
  const stranger = makeTestPki(tempDir(), ['edge-a1'], { caName: 'Not the cluster CA' });
  let config: ClusterConfig;
  let origin: RunningOrigin;
  let ca: Buffer;
  /** What the origin's TLS layer refused, as node tells the server ('tlsClientError'). */
  const handshakeErrors: string[] = [];
  /** HTTP requests the origin's public port answered. */
  const requestsAnswered = async () => metricValue(await origin.registry.metrics(), 'reelcdn_origin_requests_total');

  beforeAll(async () => {
    config = mtlsCluster(pki, true);
    origin = await startOrigin(config);
    origin.server.publicApp.server.on('tlsClientError', (err: NodeJS.ErrnoException) => handshakeErrors.push(`${err.code ?? ''} ${err.message}`));
    ca = readFileSync(pki.caFile);
  });
  afterAll(async () => {
    await origin?.server.close();
  });

  it('listensOnHttps', () => {
    expect(origin.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('refusesAClientWithoutACertificateAtTheHandshake, even with a valid token', async () => {
    const before = handshakeErrors.length;
    const r = await fetchOver(origin.url, signedForOrigin(config.signing, PATH), ca);
    expect(r.status).toBeUndefined();
    // TLS 1.3: the server's alert reaches the client as it reads ("certificate required").
    expect(r.error).toMatch(/CERTIFICATE_REQUIRED/);
    await until(() => handshakeErrors.length > before);
    expect(handshakeErrors.at(-1)).toMatch(/peer did not return a certificate/i);
  });

  it('refusesACertificateFromAnotherCaAtTheHandshake', async () => {
    const before = handshakeErrors.length;
    const answeredBefore = await requestsAnswered();
    const r = await fetchOver(origin.url, PATH, ca, stranger.certs['edge-a1']!);
    expect(r.status).toBeUndefined();
    expect(r.error).toMatch(/UNKNOWN_CA|ECONNRESET/);
    await until(() => handshakeErrors.length > before);
    // Node drops the connection once OpenSSL reports the chain unverified, before any request is read.
    expect(await requestsAnswered()).toBe(answeredBefore);
  });

  it('servesAClientWhoseCertificateTheCaIssuedWithoutAToken', async () => {
    const r = await fetchOver(origin.url, PATH, ca, pki.certs['edge-a1']!);
    expect(r.status).toBe(200);
    expect(r.body!.equals(source)).toBe(true);
    const ranged = await fetchOver(origin.url, PATH, ca, pki.certs['edge-a1']!, { range: 'bytes=10-19' });
    expect([ranged.status, ranged.body!.equals(source.subarray(10, 20))]).toEqual([206, true]);
  });

  it('letsAnEdgeShowingItsCertificateServeMissThenHit', async () => {
    const edge = await startEdge(atOrigin(config, origin.url), origin.url);
    try {
      const a = await edge.get('movie', FILE, { range: 'bytes=100-50000' });
      expect([a.status, a.headers['x-cache']]).toEqual([206, 'MISS']);
      expect(a.body.equals(source.subarray(100, 50001))).toBe(true);
      await edge.idle();
      const b = await edge.get('movie', FILE, { range: 'bytes=100-50000' });
      expect(b.status).toBe(206);
      expect(b.headers['x-cache']).toMatch(/^HIT/);
      expect(b.body.equals(source.subarray(100, 50001))).toBe(true);
    } finally {
      await edge.close();
    }
  });
});

describe('origin over TLS without requireClientCert', () => {
  const pki = makeTestPki(tempDir(), ['origin', 'steering', 'edge-a1']);
  let config: ClusterConfig;
  let origin: RunningOrigin;
  let ca: Buffer;

  beforeAll(async () => {
    config = mtlsCluster(pki, false);
    origin = await startOrigin(config);
    ca = readFileSync(pki.caFile);
  });
  afterAll(async () => {
    await origin?.server.close();
  });

  it('stillWantsAToken: encryption alone says nothing of who asks', async () => {
    // The server asks for no certificate, so the one the client holds is never shown.
    const unsigned = await fetchOver(origin.url, PATH, ca, pki.certs['edge-a1']!);
    expect([unsigned.status, unsigned.body?.toString()]).toEqual([403, 'forbidden: missing token\n']);
    const signed = await fetchOver(origin.url, signedForOrigin(config.signing, PATH), ca);
    expect(signed.status).toBe(200);
    expect(signed.body!.equals(source)).toBe(true);
  });

  it('letsAnEdgeServeThroughItOnTokens', async () => {
    const edge = await startEdge(atOrigin(config, origin.url), origin.url);
    try {
      const a = await edge.get('movie', FILE);
      expect([a.status, a.headers['x-cache'], a.body.equals(source)]).toEqual([200, 'MISS', true]);
    } finally {
      await edge.close();
    }
  });
});

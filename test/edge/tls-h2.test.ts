import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signQuery } from '../../src/common/signing.js';
import { createEdgeServer, type EdgeServer } from '../../src/edge/server.js';
import { makeTestPki } from '../helpers/certs.js';
import { TEST_ADMIN_TOKEN, TEST_KEYS, tempDir, testCluster, writeMedia } from '../helpers/cluster.js';
import { TestOrigin } from '../helpers/test-origin.js';

const S = 64 * 1024;
const SIZE = 5 * S + 1234;

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Headers that differ between two answers by time, by the connection, or by the tier (the first
 * reads of a warm object promote it from disk to memory), not by what was asked.
 */
const VOLATILE = new Set(['date', 'connection', 'keep-alive', 'x-request-id', 'traceparent', 'x-cache']);

/** The answer without its volatile headers; a multipart boundary (random per answer) made one fixed word. */
function comparable(a: Answer): Answer {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(a.headers)) if (!VOLATILE.has(k) && !k.startsWith(':')) headers[k] = v;
  const boundary = /boundary=([^;\s]+)/.exec(headers['content-type'] ?? '')?.[1];
  if (boundary === undefined) return { status: a.status, headers, body: a.body };
  headers['content-type'] = headers['content-type']!.replace(boundary, 'BOUNDARY');
  return { status: a.status, headers, body: Buffer.from(a.body.toString('latin1').replaceAll(boundary, 'BOUNDARY'), 'latin1') };
}

describe('edge over TLS: HTTP/1.1 and HTTP/2 on one port answer alike', () => {
  const root = tempDir();
  const pki = makeTestPki(tempDir(), ['edge']);
  const origin = new TestOrigin(root);
  let server: EdgeServer;
  let url = '';
  let h1: Agent;
  let h2: ClientHttp2Session;
  const data = writeMedia(root, 'tls-title', 'seg.m4s', SIZE);

  beforeAll(async () => {
    await origin.start();
    const config = testCluster({ sliceBytes: S, url: 'https://127.0.0.1:0', adminUrl: 'https://127.0.0.1:0', tls: pki.tls('edge') });
    server = createEdgeServer({
      config,
      edge: config.edges[0]!,
      upstreamUrl: origin.url,
      adminToken: TEST_ADMIN_TOKEN,
      autoFill: false,
      listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    });
    url = (await server.start()).publicUrl;
    const ca = readFileSync(pki.caFile);
    h1 = new Agent({ connect: { ca } });
    h2 = h2connect(url, { ca });
  });
  afterAll(async () => {
    h2?.close();
    await h1?.close();
    await server?.close();
    await origin.close();
  });

  const path = '/c/tls-title/seg.m4s';
  const signed = () => `${path}?${signQuery(TEST_KEYS, 'k1', path, Date.now() / 1000, 3600)}`;

  async function overH1(method: string, headers: Record<string, string>): Promise<Answer> {
    const res = await request(`${url}${signed()}`, { method: method as 'GET', headers, dispatcher: h1 });
    const body = Buffer.from(await res.body.arrayBuffer());
    const flat: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : v;
    return { status: res.statusCode, headers: flat, body };
  }

  function overH2(method: string, headers: Record<string, string>): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const stream = h2.request({ ':method': method, ':path': signed(), ...headers });
      const chunks: Buffer[] = [];
      let head: Record<string, string> = {};
      let status = 0;
      stream.on('response', (h) => {
        status = Number(h[':status']);
        head = Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]));
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve({ status, headers: head, body: Buffer.concat(chunks) }));
      stream.on('error', reject);
      stream.end();
    });
  }

  it('offers h2 and http/1.1 in ALPN', async () => {
    for (const [offer, want] of [[['h2', 'http/1.1'], 'h2'], [['http/1.1'], 'http/1.1']] as const) {
      const alpn = await new Promise<string | false>((resolve, reject) => {
        const s = tlsConnect({ host: '127.0.0.1', port: Number(new URL(url).port), ca: readFileSync(pki.caFile), ALPNProtocols: [...offer] }, () => {
          resolve(s.alpnProtocol ?? false);
          s.end();
        });
        s.on('error', reject);
      });
      expect(alpn).toBe(want);
    }
  });

  it('gives the same status, headers and bytes for ranges, multipart, 304, 416 and HEAD', async () => {
    // Warm the cache over h1 so both protocols then read the same tiers.
    const first = await overH1('GET', {});
    expect(first.status).toBe(200);
    expect(first.body.equals(data)).toBe(true);
    const etag = first.headers.etag!;
    const cases: [string, Record<string, string>][] = [
      ['GET', {}],
      ['GET', { range: 'bytes=0-99' }],
      ['GET', { range: `bytes=${S - 10}-${3 * S + 10}` }],
      ['GET', { range: 'bytes=-1000' }],
      ['GET', { range: `bytes=${4 * S}-` }],
      ['GET', { range: 'bytes=0-9,200-299' }],
      ['GET', { 'if-none-match': etag }],
      ['GET', { range: `bytes=${SIZE + 10}-` }],
      ['HEAD', {}],
      ['HEAD', { range: 'bytes=10-20' }],
    ];
    for (const [method, headers] of cases) {
      const a = await overH1(method, headers);
      const b = await overH2(method, headers);
      const [ca, cb] = [comparable(a), comparable(b)];
      const what = `${method} ${JSON.stringify(headers)}`;
      expect(cb.status, what).toBe(ca.status);
      expect(cb.headers, what).toEqual(ca.headers);
      expect(cb.body.equals(ca.body), what).toBe(true);
      if (b.status < 300) expect(b.headers['x-cache'], what).toMatch(/^HIT-/);
      if (method === 'GET' && a.status === 206 && !headers.range!.includes(',')) {
        const [s, e] = a.headers['content-range']!.replace('bytes ', '').split('/')[0]!.split('-').map(Number);
        expect(b.body.equals(data.subarray(s, e! + 1))).toBe(true);
      }
    }
    const statuses = await Promise.all(cases.map(([m, h]) => overH2(m, h).then((r) => r.status)));
    expect(statuses).toEqual([200, 206, 206, 206, 206, 206, 304, 416, 200, 206]);
  });

  it('refuses plain HTTP on the TLS port', async () => {
    const plain = url.replace('https:', 'http:');
    await expect(request(`${plain}${signed()}`, { headersTimeout: 2000 }).then((r) => r.body.text())).rejects.toThrow();
  });
});

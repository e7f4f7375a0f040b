import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signQuery, signToken } from '../src/common/signing.js';
import { TEST_ADMIN_TOKEN, TEST_KEYS, randomTitle, tempDir, testCluster, writeMedia } from './helpers/cluster.js';
import { startEdge, type RunningEdge } from './helpers/edge-harness.js';
import { metricValue, rawRequest } from './helpers/http-tools.js';
import { TestOrigin } from './helpers/test-origin.js';

const SLICE = 65536;
const now = () => Math.floor(Date.now() / 1000);

describe('edge access', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  let edge: RunningEdge;
  const title = randomTitle();
  let data: Buffer;
  const path = `/c/${title}/seg.m4s`;

  beforeAll(async () => {
    data = writeMedia(root, title, 'seg.m4s', 2 * SLICE + 3);
    await origin.start();
    edge = await startEdge(testCluster({ sliceBytes: SLICE }), origin.url);
  });
  afterAll(async () => {
    await edge.close();
    await origin.close();
  });

  const fetchAt = async (url: string) => {
    const res = await request(`${edge.url}${url}`);
    return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
  };

  describe('tokens', () => {
    it('serves a valid token of the active key and of the second key of a rotation', async () => {
      for (const k of ['k1', 'k2']) {
        const a = await fetchAt(`${path}?${signQuery(TEST_KEYS, k, path, now(), 60)}`);
        expect(a.status).toBe(200);
        expect(a.body.equals(data)).toBe(true);
      }
    });

    it('ignores extra query parameters (CMCD) next to the token', async () => {
      const a = await fetchAt(`${path}?CMCD=bl%3D1000&${signQuery(TEST_KEYS, 'k1', path, now(), 60)}`);
      expect(a.status).toBe(200);
    });

    const e = () => now() + 60;
    const cases: [string, () => string, RegExp][] = [
      ['no token', () => path, /missing token/],
      ['expired', () => { const x = now() - 10; return `${path}?e=${x}&k=k1&t=${signToken(TEST_KEYS.k1, path, x)}`; }, /expired/],
      ['tampered path', () => `/c/${title}/other.m4s?${signQuery(TEST_KEYS, 'k1', path, now(), 60)}`, /bad signature/],
      ['tampered expiry', () => { const x = e(); return `${path}?e=${x + 86400}&k=k1&t=${signToken(TEST_KEYS.k1, path, x)}`; }, /bad signature/],
      ['unknown key', () => { const x = e(); return `${path}?e=${x}&k=k9&t=${signToken('k9-secret-0123456789abcdef', path, x)}`; }, /unknown key/],
      ['token of one key under another key id', () => { const x = e(); return `${path}?e=${x}&k=k2&t=${signToken(TEST_KEYS.k1, path, x)}`; }, /bad signature/],
      ['malformed expiry', () => `${path}?e=soon&k=k1&t=abc`, /malformed expiry/],
    ];
    it.each(cases)('answers 403 with a one-line reason for %s, without asking upstream', async (_name, url, reason) => {
      const before = origin.requests.length;
      const a = await fetchAt(url());
      expect(a.status).toBe(403);
      const text = a.body.toString();
      expect(text).toMatch(/^forbidden: [^\n]+\n$/);
      expect(text).toMatch(reason);
      expect(origin.requests.length).toBe(before);
    });

    it('accepts unsigned requests when signing.required is false', async () => {
      const open = await startEdge(testCluster({ sliceBytes: SLICE }, { signing: { keys: TEST_KEYS, activeKey: 'k1', required: false } }), origin.url);
      try {
        const res = await request(`${open.url}${path}`);
        expect(res.statusCode).toBe(200);
        expect(Buffer.from(await res.body.arrayBuffer()).equals(data)).toBe(true);
      } finally {
        await open.close();
      }
    });
  });

  describe('bad paths', () => {
    let open: RunningEdge;
    beforeAll(async () => {
      // unsigned, so that only the path decides
      open = await startEdge(testCluster({ sliceBytes: SLICE }, { signing: { keys: TEST_KEYS, activeKey: 'k1', required: false } }), origin.url);
    });
    afterAll(async () => {
      await open.close();
    });

    const bad: [string, string][] = [
      ['dot-dot', `/c/${title}/../../../etc/passwd`],
      ['dot-dot as the file', `/c/${title}/..`],
      ['encoded dot-dot', `/c/${title}/%2e%2e/%2e%2e/etc/passwd`],
      ['encoded slash', `/c/${title}%2F..%2F..%2Fetc/passwd`],
      ['encoded backslash', `/c/${title}/..%5c..%5cetc`],
      ['encoded NUL', `/c/${title}/seg.m4s%00.jpg`],
      ['overlong', `/c/${title}/${'a/'.repeat(520)}seg.m4s`],
      ['overlong single segment', `/c/${title}/${'a'.repeat(1100)}`],
      ['empty segment', `/c/${title}//seg.m4s`],
      ['no file', `/c/${title}`],
    ];
    it.each(bad)('answers 400 to %s and never asks upstream', async (_name, p) => {
      const before = origin.requests.length;
      const a = await rawRequest(open.url, p);
      expect(a.status).toBe(400);
      expect(a.head).toMatch(/access-control-allow-origin: \*/i);
      expect(origin.requests.length).toBe(before);
    });

    it('answers bad percent-encoding with 400 (fastify refuses it before routing)', async () => {
      const before = origin.requests.length;
      expect((await rawRequest(open.url, `/c/${title}/%zz`)).status).toBe(400);
      expect(origin.requests.length).toBe(before);
    });

    it('answers a very long URL with a 4xx, not a crash', async () => {
      const a = await rawRequest(open.url, `/c/${title}/${'b'.repeat(6000)}`);
      expect(a.status).toBeGreaterThanOrEqual(400);
      expect(a.status).toBeLessThan(500);
      expect((await rawRequest(open.url, `/c/${title}/seg.m4s`)).status).toBe(200);
    });

    it('checks the path before the token (400, not 403, for a traversal)', async () => {
      expect((await rawRequest(edge.url, `/c/${title}/../x`)).status).toBe(400);
    });
  });

  describe('admin', () => {
    const admin = (p: string, init: { method?: 'GET' | 'POST'; token?: string; body?: unknown } = {}) =>
      request(`${edge.adminUrl}${p}`, {
        method: init.method ?? 'GET',
        headers: {
          ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
          ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
      });

    it('answers /health without a token with the documented fields', async () => {
      const res = await admin('/health');
      expect(res.statusCode).toBe(200);
      const h = (await res.body.json()) as Record<string, any>;
      expect(h).toMatchObject({ status: 'ok', id: 'edge-a1', isp: 'isp-a' });
      for (const k of ['version', 'uptimeSec', 'connections', 'requestsPerSec', 'bytesPerSec', 'errorRatio', 'eventLoopDelayMs']) {
        expect(h, k).toHaveProperty(k);
      }
      expect(h.memory).toMatchObject({ capacityBytes: 64 * 1024 * 1024 });
      expect(h.disk).toMatchObject({ capacityBytes: 256 * 1024 * 1024 });
      expect(h.disk).toHaveProperty('pinnedBytes');
      expect(Object.keys(h.byTier).sort()).toEqual(['HIT-DISK', 'HIT-FILL', 'HIT-MEM', 'MISS']);
      expect(h.upstream).toMatchObject({ url: origin.url, inflightSlices: 0 });
      expect(h.hitRatio).toHaveProperty('bytes');
    });

    it('refuses /metrics and /purge without the admin token (401)', async () => {
      for (const [p, method] of [['/metrics', 'GET'], ['/purge', 'POST']] as const) {
        for (const token of [undefined, 'wrong-token']) {
          const res = await admin(p, { method, token, body: method === 'POST' ? { title } : undefined });
          expect(res.statusCode).toBe(401);
          expect(res.headers['www-authenticate']).toMatch(/Bearer/);
          await res.body.dump();
        }
      }
    });

    it('counts traffic in /metrics as it happened', async () => {
      const t = randomTitle();
      const d = writeMedia(root, t, 'm.ts', SLICE + 1);
      const before = await (await admin('/metrics', { token: TEST_ADMIN_TOKEN })).body.text();
      const count = (m: string, tier: string, status: string) => metricValue(m, 'reelcdn_edge_requests_total', { tier, status });
      await edge.get(t, 'm.ts', { range: 'bytes=0-9' }); // MISS 206
      await edge.idle();
      await edge.get(t, 'm.ts', { range: 'bytes=0-9' }); // HIT-DISK 206
      await edge.get(t, 'm.ts', { range: 'bytes=0-9' }); // HIT-MEM 206
      await edge.get(t, 'm.ts', { range: `bytes=${SLICE * 5}-` }); // 416
      await edge.get(t, 'nope.ts'); // 404
      const res = await admin('/metrics', { token: TEST_ADMIN_TOKEN });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/text\/plain/);
      const after = await res.body.text();
      for (const name of [
        'reelcdn_edge_requests_total', 'reelcdn_edge_response_bytes_total', 'reelcdn_edge_request_duration_seconds_bucket',
        'reelcdn_edge_upstream_fetches_total', 'reelcdn_edge_coalesced_waits_total', 'reelcdn_edge_tier_bytes',
        'reelcdn_edge_tier_capacity_bytes', 'reelcdn_edge_open_connections', 'reelcdn_edge_disk_write_errors_total',
      ]) {
        expect(after, name).toContain(name);
      }
      expect(count(after, 'MISS', '206') - count(before, 'MISS', '206')).toBe(1);
      expect(count(after, 'HIT-DISK', '206') - count(before, 'HIT-DISK', '206')).toBe(1);
      expect(count(after, 'HIT-MEM', '206') - count(before, 'HIT-MEM', '206')).toBe(1);
      const all = (m: string, status: string) => metricValue(m, 'reelcdn_edge_requests_total', { status });
      expect(all(after, '416') - all(before, '416')).toBe(1);
      expect(all(after, '404') - all(before, '404')).toBe(1);
      const bytes = (m: string) => metricValue(m, 'reelcdn_edge_response_bytes_total');
      expect(bytes(after) - bytes(before)).toBe(30 + 'not found\n'.length);
      const ok = (m: string) => metricValue(m, 'reelcdn_edge_upstream_fetches_total', { result: 'ok' });
      expect(ok(after) - ok(before)).toBe(1);
      expect(metricValue(after, 'reelcdn_edge_tier_bytes', { tier: 'disk', node: 'edge-a1' })).toBe(edge.server.disk.stats().usedBytes);
      void d;
    });

    it('purges a file and a whole title, after which the next request is a MISS', async () => {
      const t = randomTitle();
      const a = writeMedia(root, t, 'a.ts', SLICE + 1, 1);
      const b = writeMedia(root, t, 'b.ts', 1000, 2);
      for (const f of ['a.ts', 'b.ts']) await edge.get(t, f);
      await edge.idle();
      expect((await edge.get(t, 'a.ts')).headers['x-cache']).not.toBe('MISS');

      const one = await admin('/purge', { method: 'POST', token: TEST_ADMIN_TOKEN, body: { title: t, file: 'a.ts' } });
      expect(one.statusCode).toBe(200);
      expect(await one.body.json()).toMatchObject({ purged: 1 });
      const ra = await edge.get(t, 'a.ts');
      expect(ra.headers['x-cache']).toBe('MISS');
      expect(ra.body.equals(a)).toBe(true);
      expect((await edge.get(t, 'b.ts')).headers['x-cache']).not.toBe('MISS');
      await edge.idle();

      const all = await admin('/purge', { method: 'POST', token: TEST_ADMIN_TOKEN, body: { title: t } });
      expect(((await all.body.json()) as { purged: number }).purged).toBe(2);
      const rb = await edge.get(t, 'b.ts');
      expect(rb.headers['x-cache']).toBe('MISS');
      expect(rb.body.equals(b)).toBe(true);
    });

    it('refuses a purge with a bad body or a traversal (400)', async () => {
      for (const body of [{}, { title: 5 }, { title: '..', file: 'x' }, { title: 't', file: '../x' }, { title: 't', file: 7 }]) {
        const res = await admin('/purge', { method: 'POST', token: TEST_ADMIN_TOKEN, body });
        expect(res.statusCode, JSON.stringify(body)).toBe(400);
        await res.body.dump();
      }
    });
  });
});

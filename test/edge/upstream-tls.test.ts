import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateCluster } from '../../src/common/config.js';
import { startEdge, type RunningEdge } from '../helpers/edge-harness.js';
import { makeTestPki } from '../helpers/certs.js';
import { TEST_KEYS, randomTitle, tempDir, writeMedia } from '../helpers/cluster.js';
import { TestOrigin } from '../helpers/test-origin.js';

const S = 64 * 1024;

/**
 * An edge reaches its upstream over https only when the upstream proves itself with a
 * certificate of the cluster's CA: a server with another CA's certificate for the same address
 * (a man in the middle) gets no request, and the client hears 502.
 */
describe('edge → origin and edge → parent over TLS', () => {
  const root = tempDir();
  const dir = tempDir();
  const pki = makeTestPki(dir, ['origin', 'edge-a1', 'edge-a2']);
  const stranger = makeTestPki(tempDir(), ['origin'], { caName: 'not the cluster CA' });
  const origin = new TestOrigin(root);
  const impostor = new TestOrigin(root);
  const edges: RunningEdge[] = [];

  const cluster = (originUrl: string, edgesRaw: object[]) =>
    validateCluster(
      {
        signing: { keys: TEST_KEYS, activeKey: 'k1', ttlSeconds: 3600 },
        origin: { url: originUrl, adminUrl: 'http://127.0.0.1:1', dataDir: 'origin', tls: pki.tls('origin') },
        steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
        isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
        edges: edgesRaw,
        log: { level: 'silent' },
      },
      tempDir(),
    );
  const edgeRaw = (id: string, url: string, extra: object = {}) => ({
    id,
    isp: 'isp-a',
    url,
    adminUrl: 'http://127.0.0.1:0',
    dataDir: id,
    diskBytes: 64 * 1024 * 1024,
    memoryBytes: 16 * 1024 * 1024,
    sliceBytes: S,
    tls: pki.tls(id),
    ...extra,
  });

  beforeAll(async () => {
    await origin.start({ cert: pki.certs.origin!.certPem, key: pki.certs.origin!.keyPem });
    await impostor.start({ cert: stranger.certs.origin!.certPem, key: stranger.certs.origin!.keyPem });
  });
  afterAll(async () => {
    for (const e of edges) await e.close();
    await origin.close();
    await impostor.close();
  });

  it('fetches from an https origin it can verify, showing its own certificate', async () => {
    const config = cluster(origin.url, [edgeRaw('edge-a1', 'http://127.0.0.1:0')]);
    const edge = await startEdge(config, origin.url);
    edges.push(edge);
    const title = randomTitle();
    const data = writeMedia(root, title, 'seg.ts', 2 * S + 3);
    const a = await edge.get(title, 'seg.ts');
    expect(a.status).toBe(200);
    expect(a.headers['x-cache']).toBe('MISS');
    expect(a.body.equals(data)).toBe(true);
    expect(origin.countFor(`/o/${title}/seg.ts`)).toBe(3);
    expect(origin.clientCertificates).toContain(pki.certs['edge-a1']!.serial);
  });

  it('sends nothing to a server whose certificate another CA issued, and answers 502', async () => {
    const config = cluster(impostor.url, [edgeRaw('edge-a1', 'http://127.0.0.1:0')]);
    const edge = await startEdge(config, impostor.url);
    edges.push(edge);
    const title = randomTitle();
    writeMedia(root, title, 'seg.ts', S);
    const a = await edge.get(title, 'seg.ts');
    expect(a.status).toBe(502);
    expect(impostor.requests).toHaveLength(0);
  });

  it('fetches through an https parent edge it verifies', async () => {
    const parentConfig = cluster(origin.url, [edgeRaw('edge-a2', 'https://127.0.0.1:0')]);
    const parent = await startEdge(parentConfig, origin.url);
    edges.push(parent);
    expect(parent.url).toMatch(/^https:/);
    // The child learns the parent's real address from the cluster file, as in production.
    const config = cluster(origin.url, [edgeRaw('edge-a1', 'http://127.0.0.1:0', { parent: 'edge-a2' }), edgeRaw('edge-a2', parent.url)]);
    const child = await startEdge(config, '', {});
    edges.push(child);
    const title = randomTitle();
    const data = writeMedia(root, title, 'p.ts', S + 11);
    const a = await child.get(title, 'p.ts');
    expect(a.status).toBe(200);
    expect(a.body.equals(data)).toBe(true);
    // Through the parent: its answer was its own miss, not the child's fallback to the origin.
    expect(origin.countFor(`/o/${title}/p.ts`)).toBe(2);
    const dispatcher = new Agent({ connect: { ca: readFileSync(pki.caFile) } });
    const again = await request(`${parent.url}${parent.signed(title, 'p.ts')}`, { dispatcher });
    await again.body.dump();
    await dispatcher.close();
    expect(again.statusCode).toBe(200);
    expect(again.headers['x-cache']).toMatch(/^HIT-/);
  });
});

import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { loadClusterFile } from '../../src/common/config.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { makeTestPki } from '../helpers/certs.js';
import { TEST_ADMIN_TOKEN, tempDir } from '../helpers/cluster.js';
import { deadPort } from '../helpers/http-tools.js';
import { FIXTURES } from '../helpers/origin-harness.js';
import { signedForOrigin } from '../helpers/origin-http.js';
import { parsePrometheusText, sumOf } from '../helpers/prom-parse.js';
import { type RoleProc, killAll, resumes, serialAt, sessionTicket, spawnRole } from '../helpers/role-proc.js';

/**
 * Reload of a running `reelcdn origin` process: signing keys (a new key opens /o/ without a
 * restart; an old one keeps doing so until the file drops it), the edges the fill plans are
 * made for, and its certificates — re-issued ones reach new connections, a bad one is refused
 * with the field named and the old one goes on being served.
 */

const K1 = { k1: 'origin-reload-k1-0123456789abcdef' };
const K2 = { k2: 'origin-reload-k2-0123456789abcdef' };
const PATH = '/o/movie/stream_180p.m3u8';

interface OriginProc extends RoleProc {
  publicUrl: string;
  adminUrl: string;
  file: string;
  raw: Record<string, any>;
  ca?: Buffer;
}

async function get(p: OriginProc, base: string, path: string, opts: { method?: 'GET' | 'POST'; token?: boolean } = {}): Promise<{ status: number; body: string }> {
  if (path === '/reload') p.reloads++;
  const dispatcher = new Agent({ pipelining: 0, ...(p.ca ? { connect: { ca: p.ca } } : {}) });
  try {
    const res = await request(`${base}${path}`, {
      method: opts.method ?? 'GET',
      dispatcher,
      headers: opts.token ? { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } : {},
    });
    return { status: res.statusCode, body: await res.body.text() };
  } finally {
    await dispatcher.close();
  }
}

describe('reloading a running origin', () => {
  async function startOrigin(opts: { tls?: (name: string) => Record<string, unknown>; ca?: Buffer } = {}): Promise<OriginProc> {
    const dir = tempDir('reelcdn-origin-reload-');
    const scheme = opts.tls ? 'https' : 'http';
    const [pub, adm] = [await deadPort(), await deadPort()];
    const raw: Record<string, any> = {
      signing: { keys: { ...K1 }, activeKey: 'k1' },
      origin: { url: `${scheme}://127.0.0.1:${pub}`, adminUrl: `${scheme}://127.0.0.1:${adm}`, dataDir: 'origin', ...(opts.tls ? { tls: opts.tls('origin') } : {}) },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/8'] }],
      edges: [{ id: 'edge-a1', isp: 'isp-a', url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'edge', diskBytes: 1e9, memoryBytes: 1e7 }],
      log: { level: 'info' },
    };
    const file = join(dir, 'cluster.json');
    writeFileSync(file, JSON.stringify(raw), { mode: 0o600 });
    await ingestTitle(loadClusterFile(file), 'movie', join(FIXTURES, 'hls-bytes'));
    const { proc } = await spawnRole(['origin', '--config', file], { env: { REELCDN_ADMIN_TOKEN: TEST_ADMIN_TOKEN }, readyMsg: 'origin listening' });
    return Object.assign(proc, { publicUrl: raw.origin.url as string, adminUrl: raw.origin.adminUrl as string, file, raw, ca: opts.ca });
  }

  function write(p: OriginProc): void {
    writeFileSync(p.file, JSON.stringify(p.raw), { mode: 0o600 });
  }

  afterEach(() => killAll());

  it('opens /o/ to a new key on SIGHUP, keeps an old one until the file drops it, and plans fills for an edge added', async () => {
    const p = await startOrigin();
    const byK1 = () => signedForOrigin({ keys: K1, activeKey: 'k1' }, PATH);
    const byK2 = () => signedForOrigin({ keys: K2, activeKey: 'k2' }, PATH);
    expect((await get(p, p.publicUrl, byK1())).status).toBe(200);
    expect(await get(p, p.publicUrl, byK2())).toEqual({ status: 403, body: 'forbidden: unknown key\n' });
    expect((await get(p, p.adminUrl, '/v1/manifests/edge-b1', { token: true })).status).toBe(404);

    // k2 added (and active), an edge added.
    p.raw.signing = { keys: { ...K1, ...K2 }, activeKey: 'k2' };
    p.raw.edges.push({ id: 'edge-b1', isp: 'isp-a', url: 'http://127.0.0.1:2', adminUrl: 'http://127.0.0.1:2', dataDir: 'edge-b', diskBytes: 1e9, memoryBytes: 1e7 });
    write(p);
    const added = await p.sighup();
    expect(added.msg).toBe('reload applied');
    expect(added.applied).toEqual(expect.arrayContaining(['signing', 'edges']));
    expect(added.needsRestart).toEqual([]);
    expect((await get(p, p.publicUrl, byK2())).status).toBe(200);
    expect((await get(p, p.publicUrl, byK1())).status).toBe(200);
    const manifest = await get(p, p.adminUrl, '/v1/manifests/edge-b1', { token: true });
    expect(manifest.status).toBe(200);
    expect(JSON.parse(manifest.body)).toMatchObject({ edgeId: 'edge-b1' });

    // k1 dropped.
    p.raw.signing = { keys: { ...K2 }, activeKey: 'k2' };
    write(p);
    expect((await p.sighup()).msg).toBe('reload applied');
    expect(await get(p, p.publicUrl, byK1())).toEqual({ status: 403, body: 'forbidden: unknown key\n' });
    expect((await get(p, p.publicUrl, byK2())).status).toBe(200);

    // A file that does not validate: refused, the keys stay.
    p.raw.signing = { keys: { ...K1 }, activeKey: 'k9' };
    write(p);
    const refused = await p.sighup();
    expect(refused.level).toBe(50);
    expect(refused.msg).toMatch(/^reload refused: signing\.activeKey: .*; still serving the previous configuration$/);
    expect((await get(p, p.publicUrl, byK2())).status).toBe(200);
    expect((await get(p, p.publicUrl, byK1())).status).toBe(403);

    // Restart-only: the listen URLs and the data folder.
    p.raw.signing = { keys: { ...K2 }, activeKey: 'k2' };
    p.raw.origin.dataDir = 'moved';
    write(p);
    const r = await get(p, p.adminUrl, '/reload', { method: 'POST', token: true });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ applied: [], needsRestart: ['origin.dataDir'] });
    expect((await get(p, p.publicUrl, byK2())).status).toBe(200);
    expect(p.child.exitCode).toBe(null);
  });

  it('swaps its certificates for new connections, and refuses a mismatched key or an expired certificate, serving the old', async () => {
    const pki = makeTestPki(tempDir(), ['origin']);
    const ca = readFileSync(pki.caFile);
    const p = await startOrigin({ tls: (n) => pki.tls(n), ca });
    const first = pki.certs.origin!.serial;
    expect(await serialAt(p.publicUrl, ca)).toBe(first);
    expect(await serialAt(p.adminUrl, ca)).toBe(first);
    const signed = () => signedForOrigin({ keys: K1, activeKey: 'k1' }, PATH);
    expect((await get(p, p.publicUrl, signed())).status).toBe(200);

    const second = pki.issue('origin').serial;
    const swapped = await p.sighup();
    expect(swapped.msg).toBe('reload applied');
    expect(swapped.applied).toEqual(expect.arrayContaining(['origin.tls', 'origin.adminTls']));
    expect(await serialAt(p.publicUrl, ca)).toBe(second);
    expect(await serialAt(p.adminUrl, ca)).toBe(second);
    expect((await get(p, p.publicUrl, signed())).status).toBe(200);

    const { certFile, keyFile } = pki.certs.origin!;
    const goodKey = readFileSync(keyFile);
    copyFileSync(pki.issue('stranger').keyFile, keyFile);
    const mismatch = await p.sighup();
    expect(mismatch.msg).toBe(`reload refused: origin.tls.keyFile: ${keyFile} does not match ${certFile}; still serving the previous configuration`);
    expect(await serialAt(p.publicUrl, ca)).toBe(second);
    writeFileSync(keyFile, goodKey, { mode: 0o600 });

    const day = 86_400_000;
    pki.issue('origin', { notBefore: Date.now() - 30 * day, notAfter: Date.now() - day });
    const r = await get(p, p.adminUrl, '/reload', { method: 'POST', token: true });
    expect(r.status).toBe(422);
    expect(JSON.parse(r.body).error).toMatch(/^origin\.tls\.certFile: .* expired on /);
    expect(await serialAt(p.publicUrl, ca)).toBe(second);
    expect(await serialAt(p.adminUrl, ca)).toBe(second);
    expect((await get(p, p.publicUrl, signed())).status).toBe(200);
  });
  it('refuses a file whose certificate OpenSSL will not serve, and takes none of it: not the key, not the edge added with it', async () => {
    const pki = makeTestPki(tempDir(), ['origin']);
    const ca = readFileSync(pki.caFile);
    const p = await startOrigin({ tls: (n) => pki.tls(n), ca });
    const first = pki.certs.origin!.serial;
    const byK2 = () => signedForOrigin({ keys: K2, activeKey: 'k2' }, PATH);

    // Every check of the cluster file passes; only OpenSSL refuses a 512-bit RSA key, in use.
    const weak = pki.issue('weak', { keyType: 'rsa', rsaBits: 512 });
    p.raw.signing = { keys: { ...K1, ...K2 }, activeKey: 'k2' };
    p.raw.edges.push({ id: 'edge-b1', isp: 'isp-a', url: 'http://127.0.0.1:2', adminUrl: 'http://127.0.0.1:2', dataDir: 'edge-b', diskBytes: 1e9, memoryBytes: 1e7 });
    p.raw.admin = { openMetrics: true };
    p.raw.origin.tls = { ...pki.tls('origin'), certFile: weak.certFile, keyFile: weak.keyFile };
    write(p);
    const refused = await p.sighup();
    expect(refused.level).toBe(50);
    expect(refused.msg).toMatch(/^reload refused: origin\.tls\.(certFile|keyFile): .*weak.*; still serving the previous configuration$/);

    expect(await get(p, p.publicUrl, byK2())).toEqual({ status: 403, body: 'forbidden: unknown key\n' });
    expect((await get(p, p.publicUrl, signedForOrigin({ keys: K1, activeKey: 'k1' }, PATH))).status).toBe(200);
    expect((await get(p, p.adminUrl, '/v1/manifests/edge-b1', { token: true })).status).toBe(404);
    expect((await get(p, p.adminUrl, '/metrics')).status).toBe(401);
    expect(await serialAt(p.publicUrl, ca)).toBe(first);
    expect(await serialAt(p.adminUrl, ca)).toBe(first);
  });

  it('keeps its TLS listeners as they are on a reload that changes nothing (sessions resume), and reports when each certificate expires', async () => {
    const pki = makeTestPki(tempDir(), ['origin']);
    const ca = readFileSync(pki.caFile);
    const p = await startOrigin({ tls: (n) => pki.tls(n), ca });
    const notAfter = (pem: string) => Math.floor(new X509Certificate(pem).validToDate.getTime() / 1000);
    const expiry = async () => {
      const m = parsePrometheusText((await get(p, p.adminUrl, '/metrics', { token: true })).body);
      return ['public', 'admin'].map((listener) => sumOf(m, 'reelcdn_tls_certificate_expiry_seconds', { listener }));
    };
    expect(await expiry()).toEqual([notAfter(pki.certs.origin!.certPem), notAfter(pki.certs.origin!.certPem)]);
    const tickets = { public: await sessionTicket(p.publicUrl, ca), admin: await sessionTicket(p.adminUrl, ca) };

    expect((await p.sighup()).msg).toBe('reload: nothing this role uses changed');
    expect(await resumes(p.publicUrl, ca, tickets.public)).toBe(true);
    expect(await resumes(p.adminUrl, ca, tickets.admin)).toBe(true);

    const renewed = pki.issue('origin', { notAfter: Date.now() + 90 * 86_400_000 });
    expect((await p.sighup()).applied).toEqual(expect.arrayContaining(['origin.tls', 'origin.adminTls']));
    expect(await resumes(p.publicUrl, ca, tickets.public)).toBe(false);
    expect(await expiry()).toEqual([notAfter(renewed.certPem), notAfter(renewed.certPem)]);
  });
});

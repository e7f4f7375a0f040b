import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signQuery } from '../../src/common/signing.js';
import { makeTestPki } from '../helpers/certs.js';
import { TEST_ADMIN_TOKEN, randomTitle, tempDir, writeMedia } from '../helpers/cluster.js';
import { nodeClusterRaw, startEdgeNode, untilWorkersUp, writeClusterFile } from '../helpers/node-cluster.js';
import { parsePrometheusText, sumOf } from '../helpers/prom-parse.js';
import { type LogLine, type RoleProc, killAll, resumes, serialAt, sessionTicket, until } from '../helpers/role-proc.js';
import { TestOrigin } from '../helpers/test-origin.js';

/**
 * Reload of a running `reelcdn edge` process (SIGHUP, POST /reload): a key rotation is taken
 * without a restart, by one process and by every worker of a node (and by a worker restarted
 * afterwards); certificates re-issued in place reach new connections; a file or a certificate
 * that does not validate is refused with a line naming the field, and the edge keeps serving.
 */

const K1 = { k1: 'reload-k1-secret-0123456789abcdef' };
const K3 = { k3: 'reload-k3-secret-0123456789abcdef' };

interface EdgeProc extends RoleProc {
  workers: number;
  publicUrl: string;
  adminUrl: string;
  /** The cluster file and what it holds now (tests edit `raw`, then `write()`). */
  file: string;
  raw: Record<string, any>;
  ca?: Buffer;
}

/** A fresh connection per request: a node's kernel spreads connections over its workers. */
async function get(base: string, path: string, ca?: Buffer): Promise<{ status: number; body: string }> {
  const dispatcher = new Agent({ pipelining: 0, headersTimeout: 10_000, bodyTimeout: 10_000, ...(ca ? { connect: { ca } } : {}) });
  try {
    const res = await request(`${base}${path}`, { dispatcher });
    return { status: res.statusCode, body: await res.body.text() };
  } finally {
    await dispatcher.close();
  }
}

async function admin(p: EdgeProc, method: 'GET' | 'POST', path: string): Promise<{ status: number; body: string }> {
  if (path === '/reload') p.reloads++;
  const dispatcher = new Agent(p.ca ? { connect: { ca: p.ca } } : {});
  try {
    const res = await request(`${p.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }, dispatcher });
    return { status: res.statusCode, body: await res.body.text() };
  } finally {
    await dispatcher.close();
  }
}

function signed(keys: Record<string, string>, keyId: string, path: string): string {
  return `${path}?${signQuery(keys, keyId, path, Date.now() / 1000, 3600)}`;
}

/** Answers per worker so far (a node's /metrics). */
async function answeredBy(p: EdgeProc): Promise<number[]> {
  const m = parsePrometheusText((await admin(p, 'GET', '/metrics')).body);
  return [1, 2].map((w) => sumOf(m, 'reelcdn_edge_worker_requests_total', { worker: String(w) }));
}

/**
 * Runs `check` (one request on a new connection) until every worker of the node has answered
 * at least one of them; a single process twice.
 */
async function onEveryWorker(p: EdgeProc, check: () => Promise<void>): Promise<void> {
  if (p.workers === 1) {
    await check();
    await check();
    return;
  }
  const before = await answeredBy(p);
  for (let i = 0; i < 80; i++) {
    await check();
    const now = await answeredBy(p);
    if (now.every((n, w) => n > before[w]!)) return;
  }
  throw new Error('the requests never reached every worker');
}

describe('reloading a running edge', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);

  function clusterRaw(edge: Record<string, unknown> = {}): Record<string, any> {
    return nodeClusterRaw(origin.url, { timezone: 'UTC', ...edge }, { signing: { keys: { ...K1 }, activeKey: 'k1', ttlSeconds: 3600 }, admin: { openHealth: true, openMetrics: false } });
  }

  async function startEdge(raw: Record<string, any>, workers: number, ca?: Buffer): Promise<EdgeProc> {
    const file = writeClusterFile(raw);
    const node = await startEdgeNode(file, ['--workers', String(workers)]);
    const p: EdgeProc = Object.assign(node.proc, { workers, publicUrl: node.publicUrl, adminUrl: node.adminUrl, file, raw, ca });
    if (workers > 1) await untilWorkersUp(p, workers);
    return p;
  }

  function write(p: EdgeProc): void {
    writeClusterFile(p.raw, p.file);
  }

  beforeAll(async () => {
    await origin.start();
  });
  afterEach(() => {
    killAll();
    origin.reset();
  });
  afterAll(async () => {
    await origin.close();
  });

  it.each([1, 2])('takes a key rotation without a restart, then stops a dropped key even for URLs it remembered (%i worker(s))', async (workers) => {
    const title = randomTitle();
    writeMedia(root, title, 'a.ts', 5000, 1);
    writeMedia(root, title, 'b.ts', 7000, 2);
    const p = await startEdge(clusterRaw(), workers);
    const pid = p.child.pid;
    const byK1 = signed(K1, 'k1', `/c/${title}/a.ts`);
    const byK3 = signed(K3, 'k3', `/c/${title}/b.ts`);

    // Every worker admits (and remembers) the k1 URL; k3 is nobody's yet.
    await onEveryWorker(p, async () => expect((await get(p.publicUrl, byK1)).status).toBe(200));
    expect(await get(p.publicUrl, byK3)).toEqual({ status: 403, body: 'forbidden: unknown key\n' });
    expect(origin.requests.filter((r) => r.path === `/o/${title}/a.ts`).every((r) => new URLSearchParams(r.query).get('k') === 'k1')).toBe(true);

    // k3 added and made the active key.
    p.raw.signing = { keys: { ...K1, ...K3 }, activeKey: 'k3', ttlSeconds: 3600 };
    write(p);
    const added = await p.sighup();
    expect(added.msg).toBe('reload applied');
    expect(added.applied).toContain('signing');
    expect(added.needsRestart).toEqual([]);
    await onEveryWorker(p, async () => expect((await get(p.publicUrl, byK3)).status).toBe(200));
    await onEveryWorker(p, async () => expect((await get(p.publicUrl, byK1)).status).toBe(200));
    // Its miss went to the origin signed with the new active key.
    const toOrigin = origin.requests.filter((r) => r.path === `/o/${title}/b.ts`);
    expect(toOrigin.length).toBeGreaterThan(0);
    for (const r of toOrigin) expect(new URLSearchParams(r.query).get('k')).toBe('k3');

    // k1 dropped: the URL every worker had admitted before is refused now.
    p.raw.signing = { keys: { ...K3 }, activeKey: 'k3', ttlSeconds: 3600 };
    write(p);
    expect((await p.sighup()).msg).toBe('reload applied');
    await onEveryWorker(p, async () => expect(await get(p.publicUrl, byK1)).toEqual({ status: 403, body: 'forbidden: unknown key\n' }));
    await onEveryWorker(p, async () => expect((await get(p.publicUrl, byK3)).status).toBe(200));

    // No restart: the same process (and, in a node, no worker restarted).
    expect(p.child.exitCode).toBe(null);
    expect(p.child.pid).toBe(pid);
    if (workers > 1) {
      const h = JSON.parse((await admin(p, 'GET', '/health')).body) as { workers: { restarts: number; pid: number }[] };
      expect(h.workers.map((w) => w.restarts)).toEqual([0, 0]);

      // A worker that dies after the reload starts again with the reloaded file, not the boot one.
      process.kill(h.workers[0]!.pid, 'SIGKILL');
      await until('the worker restarted', async () => {
        const again = JSON.parse((await admin(p, 'GET', '/health')).body) as { workers: { restarts: number; status: string; pid: number }[] };
        return again.workers.length === 2 && again.workers.every((w) => w.status === 'ok') && again.workers[0]!.restarts === 1 ? true : undefined;
      });
      await onEveryWorker(p, async () => expect((await get(p.publicUrl, byK1)).status).toBe(403));
      await onEveryWorker(p, async () => expect((await get(p.publicUrl, byK3)).status).toBe(200));
    }
  });

  it('refuses a cluster file that does not validate, names the field, and keeps serving on the old one', async () => {
    const title = randomTitle();
    writeMedia(root, title, 'a.ts', 3000);
    const p = await startEdge(clusterRaw(), 1);
    const byK1 = signed(K1, 'k1', `/c/${title}/a.ts`);
    expect((await get(p.publicUrl, byK1)).status).toBe(200);

    p.raw.edges[0].diskBytes = 'lots';
    p.raw.signing = { keys: { ...K3 }, activeKey: 'k3' };
    write(p);
    const refused = await p.sighup();
    expect(refused.level).toBe(50);
    expect(refused.msg).toBe('reload refused: edges[0].diskBytes: must be a positive integer; still serving the previous configuration');
    // The old keys still hold: nothing of the refused file was taken.
    expect((await get(p.publicUrl, byK1)).status).toBe(200);
    expect((await get(p.publicUrl, signed(K3, 'k3', `/c/${title}/a.ts`))).status).toBe(403);
    expect(await admin(p, 'POST', '/reload')).toEqual({ status: 422, body: JSON.stringify({ error: 'edges[0].diskBytes: must be a positive integer' }) });

    // Not JSON at all.
    writeFileSync(p.file, '{"signing": ', { mode: 0o600 });
    const broken = await p.sighup();
    expect(broken.msg).toMatch(/^reload refused: \(cluster file\): .* is not valid JSON/);
    expect((await get(p.publicUrl, byK1)).status).toBe(200);
    expect(p.child.exitCode).toBe(null);
  });

  it('says which changed fields wait for a restart, and takes the fill settings at once', async () => {
    const p = await startEdge(clusterRaw(), 1);
    p.raw.edges[0].dataDir = 'elsewhere';
    p.raw.edges[0].sliceBytes = 131072;
    p.raw.edges[0].fill = { window: '00:00-00:00', bytesPerSec: 1_000_000 };
    write(p);
    const r = await admin(p, 'POST', '/reload');
    expect(r.status).toBe(200);
    const outcome = JSON.parse(r.body) as { applied: string[]; needsRestart: string[] };
    expect(outcome.applied).toEqual(['edges[0].fill']);
    expect(outcome.needsRestart.sort()).toEqual(['edges[0].dataDir', 'edges[0].sliceBytes']);
    // An all-day window is open now.
    const fill = JSON.parse((await admin(p, 'GET', '/fill')).body) as { window: string; windowOpen: boolean };
    expect(fill).toMatchObject({ window: '00:00-00:00', windowOpen: true });
    // Still waiting for a restart on the next reload: the process runs the old values.
    const again = JSON.parse((await admin(p, 'POST', '/reload')).body) as { applied: string[]; needsRestart: string[] };
    expect(again.applied).toEqual([]);
    expect(again.needsRestart.sort()).toEqual(['edges[0].dataDir', 'edges[0].sliceBytes']);
  });

  it.each([1, 2])('swaps the certificate for new connections, and refuses a bad one, keeping the old (%i worker(s))', async (workers) => {
    const title = randomTitle();
    writeMedia(root, title, 'a.ts', 3000);
    const pki = makeTestPki(tempDir(), ['edge-a1']);
    const ca = readFileSync(pki.caFile);
    const raw = clusterRaw({ url: 'https://127.0.0.1:0', adminUrl: 'https://127.0.0.1:0', tls: pki.tls('edge-a1') });
    const p = await startEdge(raw, workers, ca);
    const first = pki.certs['edge-a1']!.serial;
    expect(await serialAt(p.publicUrl, ca)).toBe(first);
    expect(await serialAt(p.adminUrl, ca)).toBe(first);
    const path = signed(K1, 'k1', `/c/${title}/a.ts`);
    // A keep-alive connection opened before the swap.
    const kept = new Agent({ connect: { ca }, keepAliveTimeout: 60_000, connections: 1 });
    const keptGet = async () => {
      const res = await request(`${p.publicUrl}${path}`, { dispatcher: kept });
      await res.body.dump();
      return res.statusCode;
    };
    expect(await keptGet()).toBe(200);

    // Re-issued in place: same files, a new serial.
    const second = pki.issue('edge-a1').serial;
    expect(second).not.toBe(first);
    const swapped = await p.sighup();
    expect(swapped.msg).toBe('reload applied');
    expect(swapped.applied).toEqual(expect.arrayContaining(['edges[0].tls', 'edges[0].adminTls']));
    for (let i = 0; i < 6 * workers; i++) expect(await serialAt(p.publicUrl, ca)).toBe(second);
    expect(await serialAt(p.adminUrl, ca)).toBe(second);
    expect(await keptGet()).toBe(200);
    await onEveryWorker(p, async () => expect((await get(p.publicUrl, path, ca)).status).toBe(200));

    // A key that is not the certificate's: refused, naming the field and the files.
    const certFile = pki.certs['edge-a1']!.certFile;
    const keyFile = pki.certs['edge-a1']!.keyFile;
    const goodKey = readFileSync(keyFile);
    copyFileSync(pki.issue('stranger').keyFile, keyFile);
    const mismatch = await p.sighup();
    expect(mismatch.level).toBe(50);
    expect(mismatch.msg).toBe(`reload refused: edges[0].tls.keyFile: ${keyFile} does not match ${certFile}; still serving the previous configuration`);
    for (let i = 0; i < 3 * workers; i++) expect(await serialAt(p.publicUrl, ca)).toBe(second);
    writeFileSync(keyFile, goodKey, { mode: 0o600 });

    // An expired certificate (with its own key): refused too.
    const day = 86_400_000;
    pki.issue('edge-a1', { notBefore: Date.now() - 30 * day, notAfter: Date.now() - day });
    const expired = await p.sighup();
    expect(expired.msg).toMatch(new RegExp(`^reload refused: edges\\[0\\]\\.tls\\.certFile: ${certFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} expired on `));
    expect(await admin(p, 'POST', '/reload')).toMatchObject({ status: 422 });
    for (let i = 0; i < 3 * workers; i++) expect(await serialAt(p.publicUrl, ca)).toBe(second);
    expect(await serialAt(p.adminUrl, ca)).toBe(second);
    await onEveryWorker(p, async () => expect((await get(p.publicUrl, path, ca)).status).toBe(200));
    await kept.close();
  });
  /** An edge of `workers` processes on https, its certificate from a fresh test CA. */
  async function startTlsEdge(workers: number) {
    const pki = makeTestPki(tempDir(), ['edge-a1']);
    const ca = readFileSync(pki.caFile);
    const p = await startEdge(clusterRaw({ url: 'https://127.0.0.1:0', adminUrl: 'https://127.0.0.1:0', tls: pki.tls('edge-a1') }), workers, ca);
    return { p, pki, ca };
  }

  /** Every worker's pid (a node's /health). */
  async function workerPids(p: EdgeProc): Promise<number[]> {
    const h = JSON.parse((await admin(p, 'GET', '/health')).body) as { workers: { pid: number }[] };
    return h.workers.map((w) => w.pid);
  }

  /** New connections, enough of them to reach every worker: each is shown this serial. */
  async function everyConnectionShows(p: EdgeProc, serial: string): Promise<void> {
    for (let i = 0; i < 10 * p.workers; i++) expect(await serialAt(p.publicUrl, p.ca!)).toBe(serial);
  }

  it.each([1, 2])('refuses a file whose certificate OpenSSL will not serve, and takes none of it: a key added in the same file does not verify (%i worker(s))', async (workers) => {
    const title = randomTitle();
    writeMedia(root, title, 'a.ts', 3000);
    const { p, pki, ca } = await startTlsEdge(workers);
    const first = pki.certs['edge-a1']!.serial;
    const byK1 = signed(K1, 'k1', `/c/${title}/a.ts`);
    const byK3 = signed(K3, 'k3', `/c/${title}/a.ts`);
    const fillBefore = JSON.parse((await admin(p, 'GET', '/fill')).body) as { window: string };

    // Every check of the cluster file passes (the key is the certificate's, the dates are
    // good, the CA issued it); only OpenSSL refuses a 512-bit RSA key, when it is put to use.
    const weak = pki.issue('weak', { keyType: 'rsa', rsaBits: 512 });
    p.raw.signing = { keys: { ...K1, ...K3 }, activeKey: 'k3', ttlSeconds: 3600 };
    p.raw.edges[0].fill = { window: '01:00-03:00' };
    p.raw.edges[0].tls = { ...pki.tls('edge-a1'), certFile: weak.certFile, keyFile: weak.keyFile };
    write(p);
    const refused = await p.sighup();
    expect(refused.level).toBe(50);
    expect(refused.msg).toMatch(/^reload refused: edges\[0\]\.tls\.(certFile|keyFile): .*weak.*; still serving the previous configuration$/);

    // Nothing of that file, anywhere: not its key, not its fill window, not its certificate.
    await onEveryWorker(p, async () => expect(await get(p.publicUrl, byK3, ca)).toEqual({ status: 403, body: 'forbidden: unknown key\n' }));
    await onEveryWorker(p, async () => expect((await get(p.publicUrl, byK1, ca)).status).toBe(200));
    expect(JSON.parse((await admin(p, 'GET', '/fill')).body)).toMatchObject({ window: fillBefore.window });
    await everyConnectionShows(p, first);
    expect(await serialAt(p.adminUrl, ca)).toBe(first);
    expect(p.child.exitCode).toBe(null);
  });

  it('applies a reload on every worker with the bytes its primary read: a key file broken on disk while a worker is slow to apply changes nothing', async () => {
    const { p, pki, ca } = await startTlsEdge(2);
    const [, second] = [pki.certs['edge-a1']!.serial, pki.issue('edge-a1').serial];
    const { certFile, keyFile } = pki.certs['edge-a1']!;
    const goodKey = readFileSync(keyFile);
    const [slow] = await workerPids(p);
    // Worker 1 reads its channel only once the files on disk have changed again.
    process.kill(slow!, 'SIGSTOP');
    const n = p.reloads++;
    try {
      p.child.kill('SIGHUP');
      // The primary has read and checked the files once its own (admin) listener shows the new certificate.
      await until('the primary took the renewed certificate', async () => ((await serialAt(p.adminUrl, ca)) === second ? true : undefined));
      // A key that is not the certificate's: anyone reading the files now would refuse them.
      copyFileSync(pki.issue('stranger').keyFile, keyFile);
    } finally {
      process.kill(slow!, 'SIGCONT');
    }
    const outcome = await p.reloadOutcome(n);
    expect(outcome.msg).toBe('reload applied');
    expect(outcome.applied).toEqual(expect.arrayContaining(['edges[0].tls', 'edges[0].adminTls']));
    // Both workers serve what the primary read; neither read the broken file.
    await everyConnectionShows(p, second);
    expect(await workerPids(p)).toContain(slow);
    // The broken file on disk is the next reload's to refuse, for the whole node.
    const refused = await p.sighup();
    expect(refused.msg).toBe(`reload refused: edges[0].tls.keyFile: ${keyFile} does not match ${certFile}; still serving the previous configuration`);
    writeFileSync(keyFile, goodKey, { mode: 0o600 });
    await everyConnectionShows(p, second);
  });

  it('starts a worker restarted after a reload with the certificate the node serves, not one renewed on disk since', async () => {
    const { p, pki, ca } = await startTlsEdge(2);
    const { serial: second, certPem: secondPem } = pki.issue('edge-a1', { validDays: 90 });
    expect((await p.sighup()).msg).toBe('reload applied');
    await everyConnectionShows(p, second);
    // Renewed on disk, not reloaded yet: the node goes on serving the certificate it loaded.
    const third = pki.issue('edge-a1').serial;
    const [victim] = await workerPids(p);
    process.kill(victim!, 'SIGKILL');
    await until('the worker restarted', async () => {
      const h = JSON.parse((await admin(p, 'GET', '/health')).body) as { workers: { restarts: number; status: string }[] };
      return h.workers.length === 2 && h.workers.every((w) => w.status === 'ok') && h.workers[0]!.restarts === 1 ? true : undefined;
    });
    await everyConnectionShows(p, second);
    expect(await serialAt(p.adminUrl, ca)).toBe(second);
    // The node reports the certificates it serves (its primary's gauge), not its workers' sum.
    const m = parsePrometheusText((await admin(p, 'GET', '/metrics')).body);
    const notAfter = Math.floor(new X509Certificate(secondPem).validToDate.getTime() / 1000);
    for (const listener of ['public', 'admin']) expect(sumOf(m, 'reelcdn_tls_certificate_expiry_seconds', { listener })).toBe(notAfter);
    // Until a reload takes it, for every worker at once.
    expect((await p.sighup()).msg).toBe('reload applied');
    await everyConnectionShows(p, third);
  });

  it('keeps its TLS listeners as they are on a reload that changes nothing (sessions resume), and reports when each certificate expires', async () => {
    const { p, pki, ca } = await startTlsEdge(1);
    const expiry = async () => {
      const m = parsePrometheusText((await admin(p, 'GET', '/metrics')).body);
      return ['public', 'admin'].map((listener) => sumOf(m, 'reelcdn_tls_certificate_expiry_seconds', { listener }));
    };
    const notAfter = (pem: string) => Math.floor(new X509Certificate(pem).validToDate.getTime() / 1000);
    expect(await expiry()).toEqual([notAfter(pki.certs['edge-a1']!.certPem), notAfter(pki.certs['edge-a1']!.certPem)]);
    const tickets = { public: await sessionTicket(p.publicUrl, ca), admin: await sessionTicket(p.adminUrl, ca) };
    expect(await resumes(p.publicUrl, ca, tickets.public)).toBe(true);

    const same = await p.sighup();
    expect(same.msg).toBe('reload: nothing this role uses changed');
    // The same secure contexts (and session-ticket keys): earlier sessions still resume.
    expect(await resumes(p.publicUrl, ca, tickets.public)).toBe(true);
    expect(await resumes(p.adminUrl, ca, tickets.admin)).toBe(true);

    // A renewed certificate is a new context: full handshakes, the new serial, the new expiry.
    const day = 86_400_000;
    const renewed = pki.issue('edge-a1', { notAfter: Date.now() + 90 * day });
    expect((await p.sighup()).applied).toEqual(expect.arrayContaining(['edges[0].tls', 'edges[0].adminTls']));
    expect(await resumes(p.publicUrl, ca, tickets.public)).toBe(false);
    expect(await serialAt(p.publicUrl, ca)).toBe(renewed.serial);
    expect(await expiry()).toEqual([notAfter(renewed.certPem), notAfter(renewed.certPem)]);
  });
});

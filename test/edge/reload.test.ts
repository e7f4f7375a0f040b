import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signQuery } from '../../src/common/signing.js';
import { makeTestPki } from '../helpers/certs.js';
import { TEST_ADMIN_TOKEN, randomTitle, tempDir, writeMedia } from '../helpers/cluster.js';
import { parsePrometheusText, sumOf } from '../helpers/prom-parse.js';
import { TestOrigin } from '../helpers/test-origin.js';

/**
 * Reload of a running `reelcdn edge` process (SIGHUP, POST /reload): a key rotation is taken
 * without a restart, by one process and by every worker of a node (and by a worker restarted
 * afterwards); certificates re-issued in place reach new connections; a file or a certificate
 * that does not validate is refused with a line naming the field, and the edge keeps serving.
 */

const repo = join(import.meta.dirname, '..', '..');
const cli = join(repo, 'dist/src/cli.js');
const K1 = { k1: 'reload-k1-secret-0123456789abcdef' };
const K3 = { k3: 'reload-k3-secret-0123456789abcdef' };

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

interface EdgeProc {
  child: ChildProcess;
  workers: number;
  publicUrl: string;
  adminUrl: string;
  /** The cluster file and what it holds now (tests edit `raw`, then `write()`). */
  file: string;
  raw: Record<string, any>;
  ca?: Buffer;
  lines(): LogLine[];
  /** Reloads asked for so far (SIGHUP, POST /reload): each logs one outcome line. */
  reloads: number;
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

/** The serial of the certificate a new TLS connection to `url` is shown. */
function serialAt(url: string, ca: Buffer): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.hostname, port: Number(u.port), ca, servername: undefined, ALPNProtocols: ['http/1.1'] }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(serial);
    });
    socket.once('error', reject);
  });
}

function signed(keys: Record<string, string>, keyId: string, path: string): string {
  return `${path}?${signQuery(keys, keyId, path, Date.now() / 1000, 3600)}`;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const RELOAD_LINE = /^reload (applied|refused|failed)|^reload: nothing/;

/** Sends SIGHUP and resolves with the reload's outcome line (log lines are written in batches: counted, not timed). */
async function sighup(p: EdgeProc): Promise<LogLine> {
  const n = p.reloads++;
  p.child.kill('SIGHUP');
  return until('the reload line', async () => p.lines().filter((l) => RELOAD_LINE.test(l.msg))[n]);
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
  const procs: EdgeProc[] = [];

  function clusterRaw(edge: Record<string, unknown> = {}): Record<string, any> {
    return {
      signing: { keys: { ...K1 }, activeKey: 'k1', ttlSeconds: 3600 },
      origin: { url: origin.url, adminUrl: 'http://127.0.0.1:1', dataDir: 'origin' },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/8'] }],
      edges: [
        {
          id: 'edge-a1',
          isp: 'isp-a',
          url: 'http://127.0.0.1:0',
          adminUrl: 'http://127.0.0.1:0',
          dataDir: 'edge',
          diskBytes: 100_000_000,
          memoryBytes: 20_000_000,
          sliceBytes: 65536,
          timezone: 'UTC',
          ...edge,
        },
      ],
      admin: { openHealth: true, openMetrics: false },
      log: { level: 'info' },
    };
  }

  async function startEdge(raw: Record<string, any>, workers: number, ca?: Buffer): Promise<EdgeProc> {
    const file = join(tempDir(), 'cluster.json');
    // Owner-only: a file with inline keys readable by others is warned about on every reload.
    writeFileSync(file, JSON.stringify(raw), { mode: 0o600 });
    const child = spawn(process.execPath, [cli, 'edge', '--config', file, '--id', 'edge-a1', '--workers', String(workers)], {
      env: { ...process.env, REELCDN_ADMIN_TOKEN: TEST_ADMIN_TOKEN },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (c) => (out += c));
    child.stderr!.on('data', (c) => (out += c));
    const lines = () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as LogLine);
    const listening = await new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`edge did not start: ${out}`)), 20_000);
      const look = () => {
        const l = lines().find((x) => x.msg === 'edge listening');
        if (!l) return;
        clearTimeout(timer);
        resolve(l);
      };
      child.stdout!.on('data', look);
      child.once('exit', (code) => reject(new Error(`edge exited ${code}: ${out}`)));
    });
    const p: EdgeProc = { child, workers, publicUrl: String(listening.publicUrl), adminUrl: String(listening.adminUrl), file, raw, ca, lines, reloads: 0 };
    procs.push(p);
    if (workers > 1) {
      await until('every worker up', async () => {
        const h = JSON.parse((await admin(p, 'GET', '/health')).body) as { workers: { status: string }[] };
        return h.workers.length === workers && h.workers.every((w) => w.status === 'ok') ? true : undefined;
      });
    }
    return p;
  }

  function write(p: EdgeProc): void {
    writeFileSync(p.file, JSON.stringify(p.raw), { mode: 0o600 });
  }

  beforeAll(async () => {
    if (!existsSync(cli)) throw new Error('dist/src/cli.js is missing: run npm run build');
    await origin.start();
  });
  afterEach(() => {
    for (const p of procs.splice(0)) if (p.child.exitCode === null) p.child.kill('SIGKILL');
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
    const added = await sighup(p);
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
    expect((await sighup(p)).msg).toBe('reload applied');
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
    const refused = await sighup(p);
    expect(refused.level).toBe(50);
    expect(refused.msg).toBe('reload refused: edges[0].diskBytes: must be a positive integer; still serving the previous configuration');
    // The old keys still hold: nothing of the refused file was taken.
    expect((await get(p.publicUrl, byK1)).status).toBe(200);
    expect((await get(p.publicUrl, signed(K3, 'k3', `/c/${title}/a.ts`))).status).toBe(403);
    expect(await admin(p, 'POST', '/reload')).toEqual({ status: 422, body: JSON.stringify({ error: 'edges[0].diskBytes: must be a positive integer' }) });

    // Not JSON at all.
    writeFileSync(p.file, '{"signing": ', { mode: 0o600 });
    const broken = await sighup(p);
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
    const swapped = await sighup(p);
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
    const mismatch = await sighup(p);
    expect(mismatch.level).toBe(50);
    expect(mismatch.msg).toBe(`reload refused: edges[0].tls.keyFile: ${keyFile} does not match ${certFile}; still serving the previous configuration`);
    for (let i = 0; i < 3 * workers; i++) expect(await serialAt(p.publicUrl, ca)).toBe(second);
    writeFileSync(keyFile, goodKey, { mode: 0o600 });

    // An expired certificate (with its own key): refused too.
    const day = 86_400_000;
    pki.issue('edge-a1', { notBefore: Date.now() - 30 * day, notAfter: Date.now() - day });
    const expired = await sighup(p);
    expect(expired.msg).toMatch(new RegExp(`^reload refused: edges\\[0\\]\\.tls\\.certFile: ${certFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} expired on `));
    expect(await admin(p, 'POST', '/reload')).toMatchObject({ status: 422 });
    for (let i = 0; i < 3 * workers; i++) expect(await serialAt(p.publicUrl, ca)).toBe(second);
    expect(await serialAt(p.adminUrl, ca)).toBe(second);
    await onEveryWorker(p, async () => expect((await get(p.publicUrl, path, ca)).status).toBe(200));
    await kept.close();
  });
});

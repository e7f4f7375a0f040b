import { X509Certificate } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { Registry } from 'prom-client';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { steeringClusterFile } from '../../bench/steering-cluster.js';
import { validateCluster } from '../../src/common/config.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { type OriginServer, createOriginServer } from '../../src/origin/server.js';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { tempDir } from '../helpers/cluster.js';
import { deadPort } from '../helpers/http-tools.js';
import { parsePrometheusText, sumOf } from '../helpers/prom-parse.js';
import { type LogLine, type RoleProc, resumes, sessionTicket, spawnRole, tlsHandshake } from '../helpers/role-proc.js';
import { FIXTURES, FakeEdgeHealth, KEYS, TOKEN, silent } from '../steering-harness.js';

/**
 * Reload on a real `reelcdn steering` process: the cluster file is edited, then SIGHUP (or
 * POST /reload), while clients keep asking. Edges are fake admin ports that answer /health.
 */

const TITLE = 'bbb-hls';
const FILE = 'master.m3u8';
const HEALTH_INTERVAL_MS = 1000;
const AUTH = { authorization: `Bearer ${TOKEN}` };

interface Edit {
  edges: FakeEdgeHealth[];
  /** isp-a's and isp-b's prefixes. */
  prefixes?: { a: string[]; b: string[] };
  keys?: Record<string, string>;
  activeKey?: string;
  steering?: Record<string, unknown>;
}

/** A real origin holding one title, and the cluster file around it. */
async function originAndFile(dir: string) {
  const raw = (originUrl: string, originAdminUrl: string, e: Edit) => {
    const f = steeringClusterFile({
      keys: e.keys ?? KEYS,
      ttlSeconds: 3600,
      originUrl,
      originAdminUrl,
      steering: { healthIntervalMs: HEALTH_INTERVAL_MS, downAfter: 2, upAfter: 1, ...e.steering },
      edges: e.edges,
      log: 'info',
    });
    if (e.prefixes) f.isps = [
      { id: 'isp-a', prefixes: e.prefixes.a },
      { id: 'isp-b', prefixes: e.prefixes.b },
    ];
    if (e.activeKey) f.signing.activeKey = e.activeKey;
    return f;
  };
  const bootstrap = validateCluster(raw('http://127.0.0.1:1', 'http://127.0.0.1:1', { edges: [new FakeEdgeHealth('edge-a1')] }), dir);
  await ingestTitle(bootstrap, TITLE, join(FIXTURES, 'hls-bytes'));
  const origin = createOriginServer({
    config: bootstrap,
    logger: silent,
    registry: new Registry(),
    adminToken: TOKEN,
    listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
  });
  const urls = await origin.start();
  const file = join(dir, 'cluster.json');
  /** Writes the file whole (rename): a signal never finds half of it. */
  const writeRaw = (text: string) => {
    writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  };
  const write = (e: Edit) => writeRaw(JSON.stringify(raw(urls.publicUrl, urls.adminUrl, e), null, 2));
  return { origin, file, write, writeRaw };
}

interface SteeringProc extends RoleProc {
  base: string;
  admin: string;
  hup(): void;
  /** The first log line (after index `from`) that `match` accepts. */
  logLine(match: (l: LogLine) => boolean, from?: number, timeoutMs?: number): Promise<LogLine>;
  /** How many log lines so far: a `from` for logLine. */
  logged(): number;
}

async function startSteering(file: string, scheme: 'http' | 'https'): Promise<SteeringProc> {
  const [p, a] = [await deadPort(), await deadPort()];
  const { proc } = await spawnRole(['steering', '--config', file, '--listen', `127.0.0.1:${p}`, '--admin-listen', `127.0.0.1:${a}`], {
    env: { REELCDN_ADMIN_TOKEN: TOKEN },
    readyMsg: 'steering listening',
  });
  return Object.assign(proc, {
    base: `${scheme}://127.0.0.1:${p}`,
    admin: `${scheme}://127.0.0.1:${a}`,
    hup: () => void proc.child.kill('SIGHUP'),
    logLine: (match: (l: LogLine) => boolean, from = 0, timeoutMs = 10_000) => proc.waitLine(match, from, timeoutMs),
    logged: () => proc.lines().length,
  });
}

interface Located {
  isp: string | null;
  urls: { edge: string; url: string }[];
}

async function locate(base: string, dispatcher?: Agent): Promise<Located> {
  const res = await request(`${base}/v1/locate/${TITLE}/${FILE}`, { dispatcher });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`/v1/locate answered ${res.statusCode}: ${text}`);
  return JSON.parse(text) as Located;
}

/**
 * Clients asking steering without pause until stopped: every answer must be a 200 with at least
 * one edge. Keeps when each edge was first offered, by `clock`.
 */
function clientLoop(base: string, clock: () => number, concurrency = 4) {
  let running = true;
  const stats = { ok: 0, failed: [] as string[], firstSeen: new Map<string, number>() };
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        const l = await locate(base);
        if (l.urls.length === 0) throw new Error('no edge offered');
        const now = clock();
        for (const u of l.urls) if (!stats.firstSeen.has(u.edge)) stats.firstSeen.set(u.edge, now);
        stats.ok++;
      } catch (err) {
        stats.failed.push((err as Error).message);
      }
    }
  });
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(loops);
      return stats;
    },
  };
}

describe('steering reload (a real reelcdn steering process)', () => {
  const dir = tempDir('reelcdn-steering-reload-');
  const a1 = new FakeEdgeHealth('edge-a1');
  const b1 = new FakeEdgeHealth('edge-b1');
  const a2 = new FakeEdgeHealth('edge-a2');
  let origin: OriginServer;
  let write: (e: Edit) => void;
  let writeRaw: (text: string) => void;
  let steering: SteeringProc;

  beforeAll(async () => {
    for (const e of [a1, b1, a2]) await e.start();
    ({ origin, write, writeRaw } = await originAndFile(dir));
    write({ edges: [a1, b1] });
    steering = await startSteering(join(dir, 'cluster.json'), 'http');
    // Both edges polled and offered.
    const deadline = Date.now() + 10_000;
    while ((await locate(steering.base)).urls.length < 2) {
      if (Date.now() > deadline) throw new Error('steering never offered both edges');
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 60_000);

  afterAll(async () => {
    await steering?.stop();
    await origin?.close();
    for (const e of [a1, b1, a2]) await e.stop();
  });

  it('ranksAnEdgeAddedToTheFileWithinOneHealthIntervalOfSighupWithNoFailedRequest', async () => {
    expect((await locate(steering.base)).urls.map((u) => u.edge)).not.toContain('edge-a2');
    // Time as steering counts it: its rounds of health polls (edge-a1 is polled once a round).
    // A wall clock on a loaded machine would measure the machine, not steering.
    const rounds = () => a1.polls;
    const clients = clientLoop(steering.base, rounds);
    await new Promise((r) => setTimeout(r, 300));
    write({ edges: [a1, b1, a2] });
    const from = steering.logged();
    const signalledAt = rounds();
    steering.hup();
    const applied = await steering.logLine((l) => l.msg === 'reload applied', from);
    // Clients keep asking for a while after the swap too.
    await new Promise((r) => setTimeout(r, HEALTH_INTERVAL_MS + 500));
    const stats = await clients.stop();

    expect(applied.applied).toEqual(['edges']);
    expect(stats.failed).toEqual([]);
    expect(stats.ok).toBeGreaterThan(50);
    const seen = stats.firstSeen.get('edge-a2');
    expect(seen, 'edge-a2 never offered').toBeDefined();
    // Offered before a second round began after the signal: within one health interval.
    expect(seen! - signalledAt).toBeLessThanOrEqual(1);
    // Offered as one of isp-a's own edges (the client is 127.0.0.1, isp-a), before isp-b's.
    const l = await locate(steering.base);
    expect(l.urls.map((u) => u.edge).sort()).toEqual(['edge-a1', 'edge-a2', 'edge-b1']);
    expect(l.urls[2]!.edge).toBe('edge-b1');
    const edges = (await (await request(`${steering.admin}/v1/edges`, { headers: AUTH })).body.json()) as { edges: { id: string; eligible: boolean }[] };
    expect(edges.edges.find((e) => e.id === 'edge-a2')?.eligible).toBe(true);
  });

  it('refusesABrokenFileOnSighupNamingTheFieldAndKeepsServing', async () => {
    const before = (await locate(steering.base)).urls.map((u) => u.edge);
    write({ edges: [a1, b1, a2], steering: { thresholds: { maxErrorRatio: 7 } } });
    let from = steering.logged();
    steering.hup();
    const refused = await steering.logLine((l) => l.level === 50, from);
    expect(refused.msg).toBe('reload refused: steering.thresholds.maxErrorRatio: must be a number from 0 to 1; still serving the previous configuration');
    expect(steering.lines().slice(from).filter((l) => l.level === 50)).toHaveLength(1);

    // Not JSON at all: refused just the same.
    writeRaw('{ "signing": { "keys": ');
    from = steering.logged();
    steering.hup();
    expect((await steering.logLine((l) => l.level === 50, from)).msg).toMatch(/^reload refused: \(cluster file\): .* is not valid JSON/);

    // Still alive, still answering from the previous file.
    expect(steering.child.exitCode).toBeNull();
    expect((await locate(steering.base)).urls.map((u) => u.edge)).toEqual(before);

    // POST /reload says the same to the operator: 422 and the field.
    write({ edges: [a1, b1, a2], steering: { downAfter: 0 } });
    const res = await request(`${steering.admin}/reload`, { method: 'POST', headers: AUTH });
    expect(res.statusCode).toBe(422);
    expect(await res.body.json()).toEqual({ error: 'steering.downAfter: must be a positive integer' });
    const anon = await request(`${steering.admin}/reload`, { method: 'POST' });
    await anon.body.dump();
    expect(anon.statusCode).toBe(401);
    expect((await locate(steering.base)).urls.map((u) => u.edge)).toEqual(before);
  });

  it('steersAClientToTheOtherIspsEdgeWhenItsPrefixMoves', async () => {
    const before = await locate(steering.base);
    expect(before.isp).toBe('isp-a');
    expect(['edge-a1', 'edge-a2']).toContain(before.urls[0]!.edge);
    // 127.0.0.0/16 (this client) moves from isp-a to isp-b.
    write({ edges: [a1, b1, a2], prefixes: { a: ['10.0.0.0/8'], b: ['127.2.0.0/16', '127.0.0.0/16'] } });
    const res = await request(`${steering.admin}/reload`, { method: 'POST', headers: AUTH });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ applied: ['isps'], needsRestart: [] });
    const after = await locate(steering.base);
    expect(after.isp).toBe('isp-b');
    expect(after.urls[0]!.edge).toBe('edge-b1');
  });

  it('signsWithTheNewActiveKeyAfterARotationAndReportsWhatNeedsARestart', async () => {
    const prefixes = { a: ['10.0.0.0/8'], b: ['127.2.0.0/16', '127.0.0.0/16'] };
    expect((await locate(steering.base)).urls[0]!.url).toMatch(/[?&]k=k1&/);
    write({ edges: [a1, b1, a2], prefixes, keys: { ...KEYS, k2: 'steering-test-secret-rotated-42' }, activeKey: 'k2', steering: { mpdCacheBytes: 1 << 20 } });
    const res = await request(`${steering.admin}/reload`, { method: 'POST', headers: AUTH });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ applied: ['signing.keys', 'signing.activeKey'], needsRestart: ['steering.mpdCacheBytes'] });
    expect((await locate(steering.base)).urls[0]!.url).toMatch(/[?&]k=k2&/);
    await steering.logLine((l) => l.level === 40 && String(l.msg).includes('steering.mpdCacheBytes changed and takes effect only after a restart'));
  });

  it('forgetsARemovedEdgeAndItsMetricSeries', async () => {
    const prefixes = { a: ['10.0.0.0/8'], b: ['127.2.0.0/16', '127.0.0.0/16'] };
    const metrics = async () => (await (await request(`${steering.admin}/metrics`, { headers: AUTH })).body.text());
    expect(await metrics()).toMatch(/reelcdn_steering_edge_state\{[^}]*edge="edge-a2"/);
    write({ edges: [a1, b1], prefixes, keys: { ...KEYS, k2: 'steering-test-secret-rotated-42' }, activeKey: 'k2', steering: { mpdCacheBytes: 1 << 20 } });
    const res = await request(`${steering.admin}/reload`, { method: 'POST', headers: AUTH });
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as { applied: string[] }).applied).toEqual(['edges']);
    expect((await locate(steering.base)).urls.map((u) => u.edge).sort()).toEqual(['edge-a1', 'edge-b1']);
    const text = await metrics();
    expect(text).not.toMatch(/edge="edge-a2"/);
    expect(text).toMatch(/reelcdn_config_reloads_total\{[^}]*outcome="applied"[^}]*\} [1-9]/);
    expect(text).toMatch(/reelcdn_config_reloads_total\{[^}]*outcome="refused"[^}]*\} [1-9]/);
    const edges = (await (await request(`${steering.admin}/v1/edges`, { headers: AUTH })).body.json()) as { edges: { id: string }[] };
    expect(edges.edges.map((e) => e.id)).toEqual(['edge-a1', 'edge-b1']);
  });
});

/** The serial of the certificate a new TLS connection to `url` gets, and the connection. */
async function handshake(url: string, ca: Buffer): Promise<{ socket: TLSSocket; serial: string }> {
  const socket = await tlsHandshake(url, ca);
  return { socket, serial: socket.getPeerCertificate().serialNumber.toUpperCase() };
}

/** One HTTP/1.1 request on an open socket; resolves with the status line. */
function requestOn(socket: TLSSocket, path: string): Promise<string> {
  return new Promise((res, rej) => {
    let got = '';
    const onData = (b: Buffer) => {
      got += b.toString('latin1');
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(got.slice(0, end))?.[1] ?? 0);
      if (got.length < end + 4 + length) return;
      socket.off('data', onData);
      res(got.slice(0, got.indexOf('\r\n')));
    };
    socket.on('data', onData);
    socket.once('error', rej);
    socket.write(`GET ${path} HTTP/1.1\r\nhost: localhost\r\nconnection: keep-alive\r\n\r\n`);
  });
}

describe('steering reload over HTTPS: certificate swap', () => {
  const dir = tempDir('reelcdn-steering-reload-tls-');
  const a1 = new FakeEdgeHealth('edge-a1');
  const a2 = new FakeEdgeHealth('edge-a2');
  let origin: OriginServer;
  let steering: SteeringProc;
  let pki: TestPki;
  let ca: Buffer;
  let write: (e: Edit) => void;
  let client: Agent;
  const https = (tls: object, e: Omit<Edit, 'steering'> = { edges: [a1] }): Edit => ({ ...e, steering: { url: 'https://127.0.0.1:1', adminUrl: 'https://127.0.0.1:1', tls } });

  beforeAll(async () => {
    for (const e of [a1, a2]) await e.start();
    pki = makeTestPki(dir, ['steering']);
    ca = Buffer.from(pki.ca.certPem);
    client = new Agent({ connect: { ca } });
    const o = await originAndFile(dir);
    origin = o.origin;
    write = o.write;
    write(https(pki.tls('steering')));
    steering = await startSteering(o.file, 'https');
  }, 60_000);

  afterAll(async () => {
    await steering?.stop();
    await origin?.close();
    await client?.close();
    for (const e of [a1, a2]) await e.stop();
  });

  it('givesNewConnectionsTheReissuedCertificateAndKeepsOpenOnesWorking', async () => {
    const first = pki.certs.steering!.serial.toUpperCase();
    const old = await handshake(steering.base, ca);
    expect(old.serial).toBe(first);
    expect(await requestOn(old.socket, `/v1/locate/${TITLE}/${FILE}`)).toBe('HTTP/1.1 200 OK');

    const renewed = pki.issue('steering').serial.toUpperCase();
    expect(renewed).not.toBe(first);
    const from = steering.logged();
    steering.hup();
    const applied = await steering.logLine((l) => l.msg === 'reload applied', from);
    expect(applied.applied).toEqual(['steering.tls', 'steering.adminTls']);

    const fresh = await handshake(steering.base, ca);
    expect(fresh.serial).toBe(renewed);
    const freshAdmin = await handshake(steering.admin, ca);
    expect(freshAdmin.serial).toBe(renewed);
    // The connection opened before the swap still answers, on its old certificate.
    expect(await requestOn(old.socket, `/v1/locate/${TITLE}/${FILE}`)).toBe('HTTP/1.1 200 OK');
    expect(old.socket.getPeerCertificate().serialNumber.toUpperCase()).toBe(first);
    for (const s of [old.socket, fresh.socket, freshAdmin.socket]) s.destroy();

    // A key that does not match the certificate: refused naming the file; the renewed one stays.
    const other = pki.issue('other');
    const broken = { ...pki.tls('steering'), keyFile: other.keyFile };
    const refused = await rewriteSteeringTls(dir, steering, broken);
    expect(refused).toMatch(/^reload refused: steering\.tls\.keyFile: .*other-key\.pem does not match .*steering\.pem; still serving the previous configuration$/);
    const after = await handshake(steering.base, ca);
    expect(after.serial).toBe(renewed);
    after.socket.destroy();
  });
  it('takesNoneOfAFileWhoseCertificateOpenSslRefusesNeitherItsKeyNorItsEdge', async () => {
    const serving = (await handshake(steering.base, ca)).serial;
    // Every check of the cluster file passes; only OpenSSL refuses a 512-bit RSA key, in use.
    const weak = pki.issue('weak', { keyType: 'rsa', rsaBits: 512 });
    write(https({ ...pki.tls('steering'), certFile: weak.certFile, keyFile: weak.keyFile }, { edges: [a1, a2], keys: { ...KEYS, k2: 'steering-test-secret-rotated-42' }, activeKey: 'k2' }));
    const from = steering.logged();
    steering.hup();
    const refused = await steering.logLine((l) => l.level === 50, from);
    expect(refused.msg).toMatch(/^reload refused: steering\.tls\.(certFile|keyFile): .*weak.*; still serving the previous configuration$/);
    // Still the old keys, the old edges, the old certificate.
    const l = await locate(steering.base, client);
    expect(l.urls.map((u) => u.edge)).toEqual(['edge-a1']);
    expect(l.urls[0]!.url).toMatch(/[?&]k=k1&/);
    const after = await handshake(steering.base, ca);
    expect(after.serial).toBe(serving);
    after.socket.destroy();
  });

  it('keepsSessionsResumingAcrossAReloadThatChangesNothingAndReportsWhenItsCertificateExpires', async () => {
    write(https(pki.tls('steering')));
    let from = steering.logged();
    steering.hup();
    await steering.logLine((l) => /^reload (applied|refused|failed)|^reload: nothing/.test(String(l.msg)), from);
    const tickets = { public: await sessionTicket(steering.base, ca), admin: await sessionTicket(steering.admin, ca) };
    from = steering.logged();
    steering.hup();
    expect((await steering.logLine((l) => /^reload/.test(String(l.msg)), from)).msg).toBe('reload: nothing this role uses changed');
    expect(await resumes(steering.base, ca, tickets.public)).toBe(true);
    expect(await resumes(steering.admin, ca, tickets.admin)).toBe(true);

    const res = await request(`${steering.admin}/metrics`, { headers: AUTH, dispatcher: client });
    const m = parsePrometheusText(await res.body.text());
    const notAfter = Math.floor(new X509Certificate(pki.certs.steering!.certPem).validToDate.getTime() / 1000);
    for (const listener of ['public', 'admin']) expect(sumOf(m, 'reelcdn_tls_certificate_expiry_seconds', { listener })).toBe(notAfter);
  });
});

/** Puts another steering tls block in the file, SIGHUPs, and returns the error line that follows. */
async function rewriteSteeringTls(dir: string, steering: SteeringProc, tls: object): Promise<string> {
  const file = join(dir, 'cluster.json');
  const raw = JSON.parse(readFileSync(file, 'utf8')) as { steering: Record<string, unknown> };
  raw.steering.tls = tls;
  writeFileSync(`${file}.tmp`, JSON.stringify(raw), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  const from = steering.logged();
  steering.hup();
  return String((await steering.logLine((l) => l.level === 50, from)).msg);
}

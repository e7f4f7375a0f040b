import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, validateCluster } from '../../src/common/config.js';
import { createCa, issueCert } from '../../src/common/cert-authority.js';
import { clusterClientTls, loadTlsMaterial } from '../../src/common/tls.js';
import { createEdgeServer } from '../../src/edge/server.js';
import { makeTestPki } from '../helpers/certs.js';
import { TEST_KEYS, tempDir } from '../helpers/cluster.js';
import { CLI, ensureBuilt } from '../helpers/cluster-procs.js';

const DAY = 86_400_000;

function problem(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('no ConfigError');
}

describe('loadTlsMaterial: a certificate, its key and its CA, checked', () => {
  const dir = tempDir();
  const pki = makeTestPki(dir, ['svc', 'other']);

  it('loads a good block and reports the serial new connections will see', () => {
    const m = loadTlsMaterial({ ...pki.tls('svc'), requireClientCert: false }, 'edges[0].tls');
    expect(m.serial).toBe(pki.certs.svc!.serial);
    expect(m.ca).toBeDefined();
  });

  it('names the field and the file for a missing file', () => {
    const block = { ...pki.tls('svc'), certFile: join(dir, 'nope.pem'), requireClientCert: false };
    expect(problem(() => loadTlsMaterial(block, 'edges[0].tls'))).toBe(`edges[0].tls.certFile: cannot read ${join(dir, 'nope.pem')}: ENOENT`);
    const noKey = { ...pki.tls('svc'), keyFile: join(dir, 'nokey.pem'), requireClientCert: false };
    expect(problem(() => loadTlsMaterial(noKey, 'origin.tls'))).toBe(`origin.tls.keyFile: cannot read ${join(dir, 'nokey.pem')}: ENOENT`);
  });

  it('refuses a key that is not the certificate’s', () => {
    const block = { ...pki.tls('svc'), keyFile: pki.certs.other!.keyFile, requireClientCert: false };
    expect(problem(() => loadTlsMaterial(block, 'steering.tls'))).toBe(`steering.tls.keyFile: ${pki.certs.other!.keyFile} does not match ${pki.certs.svc!.certFile}`);
  });

  it('refuses an expired certificate, and one not valid yet', () => {
    const now = Date.now();
    const old = pki.issue('old', { notBefore: now - 10 * DAY, notAfter: now - DAY });
    expect(problem(() => loadTlsMaterial({ ...pki.tls('old'), requireClientCert: false }, 'edges[1].tls'))).toMatch(
      new RegExp(`^edges\\[1\\]\\.tls\\.certFile: ${old.certFile} expired on 20`),
    );
    const early = pki.issue('early', { notBefore: now + DAY, notAfter: now + 10 * DAY });
    expect(problem(() => loadTlsMaterial({ ...pki.tls('early'), requireClientCert: false }, 'edges[1].tls'))).toMatch(
      new RegExp(`^edges\\[1\\]\\.tls\\.certFile: ${early.certFile} is not valid before`),
    );
  });

  it('refuses files that hold no certificate or no key, and a CA that did not issue the certificate', () => {
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not a pem\n');
    expect(problem(() => loadTlsMaterial({ ...pki.tls('svc'), certFile: junk, requireClientCert: false }, 'origin.tls'))).toBe(`origin.tls.certFile: ${junk} holds no PEM certificate`);
    expect(problem(() => loadTlsMaterial({ ...pki.tls('svc'), keyFile: junk, requireClientCert: false }, 'origin.tls'))).toMatch(/^origin\.tls\.keyFile: .* holds no PEM private key/);
    const strangerCa = join(dir, 'stranger-ca.pem');
    writeFileSync(strangerCa, createCa({ commonName: 'stranger' }).certPem);
    expect(problem(() => loadTlsMaterial({ ...pki.tls('svc'), caFile: strangerCa, requireClientCert: false }, 'origin.tls'))).toBe(
      `origin.tls.caFile: ${strangerCa} did not issue ${pki.certs.svc!.certFile}`,
    );
  });

  it('accepts a chain whose last certificate the CA issued (a bundle in certFile)', () => {
    const ca = createCa({ commonName: 'root' });
    const leaf = issueCert(ca, { commonName: 'leaf', hosts: ['127.0.0.1'] });
    const chainFile = join(dir, 'chain.pem');
    writeFileSync(chainFile, leaf.certPem + ca.certPem);
    const keyFile = join(dir, 'chain-key.pem');
    writeFileSync(keyFile, leaf.keyPem);
    const caFile = join(dir, 'root.pem');
    writeFileSync(caFile, ca.certPem);
    expect(loadTlsMaterial({ certFile: chainFile, keyFile, caFile, requireClientCert: false }, 'x').serial).toBe(leaf.serial);
  });
});

describe('the cluster file and TLS', () => {
  const base = (over: { origin?: object; steering?: object; edge?: object } = {}) => ({
    signing: { keys: TEST_KEYS, activeKey: 'k1' },
    origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:2', dataDir: 'o', ...over.origin },
    steering: { url: 'http://127.0.0.1:3', adminUrl: 'http://127.0.0.1:4', ...over.steering },
    isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
    edges: [{ id: 'e1', isp: 'isp-a', url: 'http://127.0.0.1:5', adminUrl: 'http://127.0.0.1:6', dataDir: 'e', diskBytes: 1e6, memoryBytes: 1e6, ...over.edge }],
  });
  const tls = { certFile: 'c.pem', keyFile: 'k.pem', caFile: 'ca.pem' };

  it('needs tls for an https:// URL, and adminTls (or tls) for an https:// admin URL', () => {
    expect(problem(() => validateCluster(base({ edge: { url: 'https://127.0.0.1:5' } }), '/d'))).toBe('edges[0].tls: missing: edges[0].url is https://');
    expect(problem(() => validateCluster(base({ steering: { adminUrl: 'https://127.0.0.1:4' } }), '/d'))).toMatch(/^steering\.adminTls: missing/);
    // adminTls defaults to tls; a plain admin port beside a TLS public one is fine (mixed clusters).
    const c = validateCluster(base({ edge: { url: 'https://127.0.0.1:5', adminUrl: 'https://127.0.0.1:6', tls } }), '/d');
    expect(c.edges[0]!.adminTls).toEqual({ certFile: '/d/c.pem', keyFile: '/d/k.pem', caFile: '/d/ca.pem', requireClientCert: false });
    expect(validateCluster(base({ edge: { url: 'https://127.0.0.1:5', tls } }), '/d').edges[0]!.tls!.certFile).toBe('/d/c.pem');
  });

  it('lets only the origin require client certificates, with a CA, and only when its callers have certificates', () => {
    expect(problem(() => validateCluster(base({ edge: { tls: { ...tls, requireClientCert: true } } }), '/d'))).toBe(
      'edges[0].tls.requireClientCert: only the origin can require client certificates',
    );
    expect(problem(() => validateCluster(base({ origin: { tls: { certFile: 'c', keyFile: 'k', requireClientCert: true } } }), '/d'))).toMatch(/^origin\.tls\.caFile: missing/);
    expect(problem(() => validateCluster(base({ origin: { tls: { ...tls, requireClientCert: true } }, steering: { tls } }), '/d'))).toMatch(/^edges\[0\]\.tls: missing/);
    expect(problem(() => validateCluster(base({ origin: { tls: { ...tls, requireClientCert: true } }, edge: { tls } }), '/d'))).toMatch(/^steering\.tls: missing/);
  });

  it('clients trust each service by its own CA: a service without one is checked against the system CAs alone', () => {
    const dir = tempDir();
    const pki = makeTestPki(dir, ['e']);
    const config = validateCluster(base({ edge: { url: 'https://127.0.0.1:5', tls: pki.tls('e') } }), dir);
    expect([...clusterClientTls(config)!.cas.keys()]).toEqual(['https://127.0.0.1:5']);
    expect(clusterClientTls(validateCluster(base(), dir))).toBeUndefined();
    // Steering with a publicly issued certificate (no caFile) adds no trust anywhere else.
    const mixed = validateCluster(base({ edge: { url: 'https://127.0.0.1:5', tls: pki.tls('e') }, steering: { url: 'https://127.0.0.1:3', tls: { certFile: 'c', keyFile: 'k' } } }), dir);
    expect([...clusterClientTls(mixed)!.cas.keys()]).toEqual(['https://127.0.0.1:5']);
  });

  it('refuses a CA file that holds no certificate, naming the service', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'bad-ca.pem'), 'garbage\n');
    const config = validateCluster(base({ edge: { url: 'https://127.0.0.1:5', tls: { certFile: 'c', keyFile: 'k', caFile: 'bad-ca.pem' } } }), dir);
    expect(problem(() => clusterClientTls(config))).toBe(`edges[0].tls.caFile: ${join(dir, 'bad-ca.pem')} holds no PEM certificate`);
  });

  it('accepts 24:00 as the end of a fill window, not 24:30', () => {
    expect(validateCluster(base({ edge: { fill: { window: '22:00-24:00' } } }), '/d').edges[0]!.fill.window).toBe('22:00-24:00');
    expect(problem(() => validateCluster(base({ edge: { fill: { window: '02:00-24:30' } } }), '/d'))).toMatch(/^edges\[0\]\.fill\.window: /);
  });

  it('refuses requireClientCert on an origin served over plain http', () => {
    expect(problem(() => validateCluster(base({ origin: { tls: { ...tls, requireClientCert: true } }, steering: { tls }, edge: { tls } }), '/d'))).toBe(
      'origin.tls.requireClientCert: needs origin.url to be https:// (client certificates come with TLS)',
    );
  });
});

describe('an edge given a copy of its entry (as a worker is) names its own place in the file', () => {
  it('says edges[1], not edges[-1], for its missing certificate', () => {
    const dir = tempDir();
    const edge = (id: string, url: string, extra: object = {}) => ({ id, isp: 'isp-a', url, adminUrl: 'http://127.0.0.1:0', dataDir: id, diskBytes: 1e6, memoryBytes: 1e6, ...extra });
    const config = validateCluster(
      {
        signing: { keys: TEST_KEYS, activeKey: 'k1' },
        origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:2', dataDir: 'o' },
        steering: { url: 'http://127.0.0.1:3', adminUrl: 'http://127.0.0.1:4' },
        isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
        edges: [edge('e0', 'http://127.0.0.1:0'), edge('e1', 'https://127.0.0.1:0', { tls: { certFile: 'gone.pem', keyFile: 'gone-key.pem' } })],
        log: { level: 'silent' },
      },
      dir,
    );
    // What a worker holds: the entry as it came through the IPC channel, not the primary's object.
    const copy = structuredClone(config.edges[1]!);
    expect(problem(() => createEdgeServer({ config, edge: copy }))).toBe(`edges[1].tls.certFile: cannot read ${join(dir, 'gone.pem')}: ENOENT`);
  });
});

describe('reelcdn with a bad certificate: one start error naming the file', () => {
  it('exits 2 with the field and the file for a key that does not match its certificate, and for an expired one', () => {
    ensureBuilt();
    const dir = tempDir();
    const pki = makeTestPki(dir, ['origin', 'stranger']);
    const now = Date.now();
    pki.issue('expired', { notBefore: now - 10 * DAY, notAfter: now - DAY });
    const run = (originTls: object) => {
      const file = join(dir, `cluster-${Math.random().toString(36).slice(2)}.json`);
      writeFileSync(file, JSON.stringify(base({ origin: { url: 'https://127.0.0.1:0', tls: originTls } })), { mode: 0o600 });
      return spawnSync(process.execPath, [CLI, 'origin', '--config', file], { encoding: 'utf8', timeout: 20_000 });
    };
    const mismatch = run({ ...pki.tls('origin'), keyFile: pki.certs.stranger!.keyFile });
    expect(mismatch.status).toBe(2);
    expect(mismatch.stderr.trim()).toBe(`reelcdn: config error: origin.tls.keyFile: ${pki.certs.stranger!.keyFile} does not match ${pki.certs.origin!.certFile}`);
    const expired = run(pki.tls('expired'));
    expect(expired.status).toBe(2);
    expect(expired.stderr.trim()).toMatch(new RegExp(`^reelcdn: config error: origin\\.tls\\.certFile: ${pki.certs.expired!.certFile} expired on `));
    const missing = run({ ...pki.tls('origin'), certFile: join(dir, 'gone.pem') });
    expect(missing.stderr.trim()).toBe(`reelcdn: config error: origin.tls.certFile: cannot read ${join(dir, 'gone.pem')}: ENOENT`);
  });

  function base(over: { origin?: object } = {}) {
    return {
      signing: { keysFile: undefined, keys: TEST_KEYS, activeKey: 'k1' },
      origin: { url: 'http://127.0.0.1:0', adminUrl: 'http://127.0.0.1:0', dataDir: 'o', ...over.origin },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
      edges: [{ id: 'e1', isp: 'isp-a', url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'e', diskBytes: 1e6, memoryBytes: 1e6 }],
      log: { level: 'silent' },
    };
  }
});

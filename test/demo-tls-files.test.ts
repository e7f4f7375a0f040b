import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadClusterFile } from '../src/common/config.js';
import { loadTlsMaterial } from '../src/common/tls.js';
import { DEMO_KEYS_FILE, DEMO_SERVICES, demoClusterFile, writeDemoFiles } from '../src/demo.js';
import { DEMO_TLS_HOSTS, ensureDemoPki } from '../src/demo-pki.js';
import { tempDir } from './helpers/cluster.js';

const DAY = 86_400_000;
const modeOf = (path: string) => statSync(path).mode & 0o777;
const read = (path: string) => readFileSync(path, 'utf8');

describe('reelcdn demo --tls files', () => {
  it('writes a cluster file with https:// everywhere whose certificates load and check out', () => {
    const dir = tempDir();
    const clusterFile = writeDemoFiles(dir, 7000, true);
    expect(clusterFile).toBe(join(dir, 'cluster-tls.json'));
    expect(modeOf(clusterFile)).toBe(0o600);
    const pki = ensureDemoPki(dir, DEMO_SERVICES);
    const c = loadClusterFile(clusterFile);
    const services = [
      { name: 'origin', s: c.origin },
      { name: 'steering', s: c.steering },
      ...c.edges.map((e) => ({ name: e.id, s: e })),
    ];
    expect(services.map((x) => x.name).sort()).toEqual([...DEMO_SERVICES].sort());
    for (const { name, s } of services) {
      expect(s.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(s.adminUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(s.tls).toEqual({ certFile: pki.certs[name]!.certFile, keyFile: pki.certs[name]!.keyFile, caFile: pki.caFile, requireClientCert: false });
      // The same checks a service makes at start: readable, key matches, in date, issued by the CA.
      const m = loadTlsMaterial(s.tls!, name);
      expect(new X509Certificate(m.cert).checkIP('127.0.0.1')).toBe('127.0.0.1');
    }
    expect(c.warnings).toEqual([]);
  });

  it('leaves the plain demo cluster file exactly as it was', () => {
    expect(JSON.stringify(demoClusterFile(7000))).toBe(JSON.stringify(demoClusterFile(7000, false)));
    const text = JSON.stringify(demoClusterFile(7000));
    expect(text).not.toContain('https');
    expect(text).not.toContain('tls');
  });

  it('shares the signing keys with a plain demo in the same directory', () => {
    const dir = tempDir();
    writeDemoFiles(dir, 7000);
    const keys = read(join(dir, DEMO_KEYS_FILE));
    writeDemoFiles(dir, 7000, true);
    expect(read(join(dir, DEMO_KEYS_FILE))).toBe(keys);
    expect(loadClusterFile(join(dir, 'cluster.json')).origin.url).toBe('http://127.0.0.1:7000');
  });

  it('makes the CA and one certificate per service, keys readable by their owner only', () => {
    const dir = tempDir();
    const pki = ensureDemoPki(dir, DEMO_SERVICES);
    expect(pki.issued).toHaveLength(1 + DEMO_SERVICES.length);
    const ca = new X509Certificate(read(pki.caFile));
    expect(ca.ca).toBe(true);
    expect(modeOf(join(dir, 'tls', 'ca-key.pem'))).toBe(0o600);
    const serials = new Set<string>();
    for (const name of DEMO_SERVICES) {
      const cert = new X509Certificate(read(pki.certs[name]!.certFile));
      expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
      for (const h of DEMO_TLS_HOSTS) expect(h === 'localhost' ? cert.checkHost(h) : cert.checkIP(h)).toBe(h);
      expect(modeOf(pki.certs[name]!.keyFile)).toBe(0o600);
      serials.add(cert.serialNumber);
    }
    expect(serials.size).toBe(DEMO_SERVICES.length);
  });

  it('keeps every certificate on a re-run while each stays valid for more than a day', () => {
    const dir = tempDir();
    const now = Date.now();
    const first = ensureDemoPki(dir, DEMO_SERVICES, now);
    const before = read(first.certs['edge-a1']!.certFile);
    const again = ensureDemoPki(dir, DEMO_SERVICES, now + 300 * DAY);
    expect(again.issued).toEqual([]);
    expect(read(again.certs['edge-a1']!.certFile)).toBe(before);
    expect(again.certs['edge-a1']!.spkiSha256).toBe(first.certs['edge-a1']!.spkiSha256);
  });

  it('re-issues the leaves, and keeps the CA, when a day or less is left on them', () => {
    const dir = tempDir();
    const now = Date.now();
    const first = ensureDemoPki(dir, DEMO_SERVICES, now);
    const ca = read(first.caFile);
    const later = now + 365 * DAY - 12 * 3_600_000; // leaves (365 days) have half a day left
    const again = ensureDemoPki(dir, DEMO_SERVICES, later);
    expect(again.issued.sort()).toEqual(Object.values(first.certs).map((c) => c.certFile).sort());
    expect(read(again.caFile)).toBe(ca);
    const leaf = new X509Certificate(read(again.certs.origin!.certFile));
    expect(leaf.validToDate.getTime()).toBeGreaterThan(later + 300 * DAY);
  });

  it('replaces a damaged or mismatched pair alone, and everything under a new CA', () => {
    const dir = tempDir();
    const first = ensureDemoPki(dir, DEMO_SERVICES);
    // edge-a2's key swapped for edge-b1's: the pair no longer matches.
    writeFileSync(first.certs['edge-a2']!.keyFile, read(first.certs['edge-b1']!.keyFile));
    writeFileSync(first.certs.steering!.certFile, 'not a certificate');
    const repaired = ensureDemoPki(dir, DEMO_SERVICES);
    expect(repaired.issued.sort()).toEqual([first.certs['edge-a2']!.certFile, first.certs.steering!.certFile].sort());
    expect(modeOf(first.certs['edge-a2']!.keyFile)).toBe(0o600);
    writeFileSync(first.caFile, 'gone');
    const renewed = ensureDemoPki(dir, DEMO_SERVICES);
    expect(renewed.issued).toHaveLength(1 + DEMO_SERVICES.length);
    const ca = new X509Certificate(read(renewed.caFile));
    expect(new X509Certificate(read(renewed.certs.origin!.certFile)).checkIssued(ca)).toBe(true);
  });
});

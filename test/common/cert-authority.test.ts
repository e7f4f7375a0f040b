import { X509Certificate, createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { createCa, issueCert, spkiSha256Base64, type CertAndKey } from '../../src/common/cert-authority.js';
import { tempDir } from '../helpers/cluster.js';
import { makeTestPki } from '../helpers/certs.js';

const servers: tls.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A real TLS server on 127.0.0.1 that answers "ok" and closes. */
async function serve(cert: CertAndKey, extra: tls.TlsOptions = {}): Promise<number> {
  const server = tls.createServer({ cert: cert.certPem, key: cert.keyPem, ...extra }, (socket) => socket.end('ok'));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** Connects verifying against `ca` (never rejectUnauthorized: false); resolves what the server said, or the handshake's error. */
function connect(port: number, opts: tls.ConnectionOptions): Promise<{ body: string } | { error: Error }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ port, host: '127.0.0.1', ...opts });
    let body = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => (body += d));
    socket.on('end', () => resolve({ body }));
    socket.on('error', (error) => resolve({ error }));
  });
}

describe('cert-authority', () => {
  it('issues a leaf that node tls verifies against the CA over a real handshake', async () => {
    const ca = createCa({ commonName: 'Test CA' });
    const leaf = issueCert(ca, { commonName: 'edge-a1', hosts: ['127.0.0.1', 'localhost'] });
    const port = await serve(leaf);
    expect(await connect(port, { ca: ca.certPem })).toEqual({ body: 'ok' });
    // By DNS name too (servername "localhost" over 127.0.0.1).
    expect(await connect(port, { ca: ca.certPem, servername: 'localhost' })).toEqual({ body: 'ok' });
  });

  it('is refused by a client trusting another CA, and for a host it was not issued for', async () => {
    const ca = createCa({ commonName: 'Test CA' });
    const other = createCa({ commonName: 'Test CA' }); // same name, other key: the signature decides
    const leaf = issueCert(ca, { commonName: 'edge', hosts: ['localhost'] });
    const port = await serve(leaf);
    const wrongCa = await connect(port, { ca: other.certPem, servername: 'localhost' });
    expect('error' in wrongCa && (wrongCa.error as NodeJS.ErrnoException).code).toMatch(/UNABLE_TO_VERIFY|SIGNATURE|ISSUER/);
    const wrongHost = await connect(port, { ca: ca.certPem }); // 127.0.0.1 is not in its SANs
    expect('error' in wrongHost && (wrongHost.error as NodeJS.ErrnoException).code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('makes a CA that X509Certificate sees as one, and leaves it issued', () => {
    const ca = createCa({ commonName: 'Test CA' });
    const caCert = new X509Certificate(ca.certPem);
    expect(caCert.ca).toBe(true);
    expect(caCert.checkIssued(caCert)).toBe(true); // self-signed
    expect(caCert.verify(caCert.publicKey)).toBe(true);
    const leaf = new X509Certificate(issueCert(ca, { commonName: 'origin', hosts: ['127.0.0.1'] }).certPem);
    expect(leaf.ca).toBe(false);
    expect(leaf.checkIssued(caCert)).toBe(true);
    expect(leaf.verify(caCert.publicKey)).toBe(true);
    expect(leaf.issuer).toBe(caCert.subject);
    expect(leaf.subject).toContain('CN=origin');
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']); // serverAuth, clientAuth
    expect(leaf.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  });

  it('puts every host in the subjectAltName: IPv4, IPv6 and DNS names', () => {
    const ca = createCa({ commonName: 'Test CA' });
    const leaf = issueCert(ca, { commonName: 'x', hosts: ['127.0.0.2', '::1', '[fe80::1:2]', 'localhost', 'edge.example.test'] });
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.subjectAltName).toBe(
      'IP Address:127.0.0.2, IP Address:0:0:0:0:0:0:0:1, IP Address:FE80:0:0:0:0:0:1:2, DNS:localhost, DNS:edge.example.test',
    );
    expect(cert.checkIP('127.0.0.2')).toBe('127.0.0.2');
    expect(cert.checkIP('::1')).toBe('::1');
    expect(cert.checkHost('edge.example.test')).toBe('edge.example.test');
    expect(() => issueCert(ca, { commonName: 'x', hosts: ['not a host'] })).toThrow(/neither an IP address nor a DNS name/);
    expect(() => issueCert(ca, { commonName: 'x', hosts: [] })).toThrow(/hosts is empty/);
  });

  it('makes an expired certificate on request, which a client refuses', async () => {
    const now = Date.now();
    const ca = createCa({ commonName: 'Test CA' });
    const expired = issueCert(ca, { commonName: 'old', hosts: ['127.0.0.1'], notBefore: now - 10 * 86_400_000, notAfter: now - 86_400_000 });
    const cert = new X509Certificate(expired.certPem);
    expect(cert.validToDate.getTime()).toBeLessThan(now);
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true); // still the CA's: only the date is wrong
    const port = await serve(expired);
    const result = await connect(port, { ca: ca.certPem });
    expect('error' in result && (result.error as NodeJS.ErrnoException).code).toBe('CERT_HAS_EXPIRED');
  });

  it('takes validity from the clock it is given', () => {
    const now = Date.UTC(2030, 0, 15, 12, 0, 0);
    const ca = createCa({ commonName: 'Test CA', now });
    const leaf = new X509Certificate(issueCert(ca, { commonName: 'x', hosts: ['localhost'], now, validDays: 30 }).certPem);
    expect(leaf.validFromDate.toISOString()).toBe('2030-01-15T11:00:00.000Z'); // an hour of slack for slow clocks
    expect(leaf.validToDate.toISOString()).toBe('2030-02-14T12:00:00.000Z');
    // After 2049, GeneralizedTime.
    const late = new X509Certificate(createCa({ commonName: 'late', now: Date.UTC(2060, 5, 1) }).certPem);
    expect(late.validFromDate.toISOString()).toBe('2060-05-31T23:00:00.000Z');
  });

  it('gives every certificate its own serial, or the one asked for', () => {
    const ca = createCa({ commonName: 'Test CA' });
    const serials = new Set(Array.from({ length: 50 }, () => issueCert(ca, { commonName: 'x', hosts: ['localhost'] }).serial));
    expect(serials.size).toBe(50);
    for (const s of serials) expect(s).toMatch(/^[0-9A-F]{32}$/);
    const chosen = issueCert(ca, { commonName: 'x', hosts: ['localhost'], serial: '00abc1' });
    expect(chosen.serial).toBe('ABC1'); // leading zero bytes dropped, as DER wants
    expect(new X509Certificate(chosen.certPem).serialNumber).toBe(chosen.serial);
  });

  it('issues RSA certificates too (keyEncipherment), verified by a handshake', async () => {
    const ca = createCa({ commonName: 'RSA CA', keyType: 'rsa' });
    const leaf = issueCert(ca, { commonName: 'rsa', hosts: ['127.0.0.1'], keyType: 'rsa' });
    expect(createPrivateKey(leaf.keyPem).asymmetricKeyType).toBe('rsa');
    const port = await serve(leaf);
    expect(await connect(port, { ca: ca.certPem })).toEqual({ body: 'ok' });
  });

  it('works as a client certificate for a server that requires one', async () => {
    const ca = createCa({ commonName: 'Test CA' });
    const server = issueCert(ca, { commonName: 'origin', hosts: ['127.0.0.1'] });
    const client = issueCert(ca, { commonName: 'edge-a1', hosts: ['127.0.0.1'] });
    const port = await serve(server, { ca: ca.certPem, requestCert: true, rejectUnauthorized: true });
    expect(await connect(port, { ca: ca.certPem, cert: client.certPem, key: client.keyPem })).toEqual({ body: 'ok' });
    const without = await connect(port, { ca: ca.certPem });
    expect('error' in without).toBe(true); // refused in the handshake
  });

  it('hashes the SubjectPublicKeyInfo for Chromium’s --ignore-certificate-errors-spki-list', () => {
    const ca = createCa({ commonName: 'Test CA' });
    const leaf = issueCert(ca, { commonName: 'x', hosts: ['localhost'] });
    // The leaf's public key, from its private key: the hash pins the key, whatever the certificate around it.
    const spki = createPublicKey(createPrivateKey(leaf.keyPem)).export({ type: 'spki', format: 'der' });
    expect(spkiSha256Base64(leaf.certPem)).toBe(createHash('sha256').update(spki).digest('base64'));
    expect(spkiSha256Base64(leaf.certPem)).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  });
});

describe('makeTestPki', () => {
  it('writes a CA and a certificate per name, keys readable by their owner only', async () => {
    const dir = tempDir();
    const pki = makeTestPki(dir, { origin: ['127.0.0.1'], 'edge-a1': ['127.0.0.2', 'localhost'] });
    expect(Object.keys(pki.certs).sort()).toEqual(['edge-a1', 'origin']);
    const edge = new X509Certificate(pki.certs['edge-a1']!.certPem);
    expect(edge.checkIssued(new X509Certificate(pki.ca.certPem))).toBe(true);
    expect(edge.checkIP('127.0.0.2')).toBe('127.0.0.2');
    expect(statSync(pki.certs['edge-a1']!.keyFile).mode & 0o777).toBe(0o600);
    expect(pki.tls('origin')).toEqual({ certFile: `${dir}/origin.pem`, keyFile: `${dir}/origin-key.pem`, caFile: `${dir}/ca.pem` });
    const before = pki.certs.origin!.serial;
    expect(pki.issue('origin').serial).not.toBe(before); // re-issue for a swap
  });
});

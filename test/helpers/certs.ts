import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CertAndKey, type LeafOptions, createCa, issueCert } from '../../src/common/cert-authority.js';

/** Where one certificate and its key were written. */
export interface TestCertFiles {
  certFile: string;
  keyFile: string;
  /** As node's X509Certificate.serialNumber reports it (uppercase hex). */
  serial: string;
  certPem: string;
  keyPem: string;
}

/** A throwaway CA in a directory, the certificates it issued there, and a way to issue more. */
export interface TestPki {
  ca: CertAndKey;
  caFile: string;
  certs: Record<string, TestCertFiles>;
  /**
   * Issues (or re-issues, e.g. for a swap: a new serial) `name`'s certificate into the same
   * directory as `<name>.pem` / `<name>-key.pem`; `opts` may make it expired, for other hosts, ….
   */
  issue(name: string, opts?: Partial<LeafOptions>): TestCertFiles;
  /** A cluster file `tls` block for `name`: its certificate, key and this CA. */
  tls(name: string, extra?: { requireClientCert?: boolean }): { certFile: string; keyFile: string; caFile: string; requireClientCert?: boolean };
}

/** Loopback names every test certificate covers unless told otherwise. */
export const TEST_HOSTS = ['127.0.0.1', '::1', 'localhost'];

/**
 * Writes a fresh CA (`ca.pem`) and one certificate per name into `dir`. `names` is a list (each
 * certificate for TEST_HOSTS) or a map from name to the hosts it is for — a service on another
 * loopback address (127.0.0.2, …) needs that address in its certificate.
 */
export function makeTestPki(dir: string, names: string[] | Record<string, string[]> = [], opts: { now?: number; caName?: string } = {}): TestPki {
  const ca = createCa({ commonName: opts.caName ?? 'ReelCDN test CA', ...(opts.now === undefined ? {} : { now: opts.now }) });
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  const certs: Record<string, TestCertFiles> = {};
  const hostsOf: Record<string, string[]> = Array.isArray(names) ? Object.fromEntries(names.map((n) => [n, TEST_HOSTS])) : { ...names };
  const issue = (name: string, leaf: Partial<LeafOptions> = {}): TestCertFiles => {
    const made = issueCert(ca, {
      commonName: name,
      hosts: hostsOf[name] ?? TEST_HOSTS,
      ...(opts.now === undefined ? {} : { now: opts.now }),
      ...leaf,
    });
    const certFile = join(dir, `${name}.pem`);
    const keyFile = join(dir, `${name}-key.pem`);
    writeFileSync(certFile, made.certPem);
    writeFileSync(keyFile, made.keyPem, { mode: 0o600 });
    certs[name] = { certFile, keyFile, serial: made.serial, certPem: made.certPem, keyPem: made.keyPem };
    return certs[name];
  };
  for (const name of Object.keys(hostsOf)) issue(name);
  return {
    ca,
    caFile,
    certs,
    issue,
    tls(name, extra = {}) {
      const c = certs[name] ?? issue(name);
      return { certFile: c.certFile, keyFile: c.keyFile, caFile, ...(extra.requireClientCert ? { requireClientCert: true } : {}) };
    },
  };
}

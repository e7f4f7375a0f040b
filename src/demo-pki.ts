import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { type CertAndKey, createCa, issueCert, spkiSha256Base64 } from './common/cert-authority.js';

/** The demo's certificates live here, beside its cluster file (paths in the file are relative to it). */
export const DEMO_TLS_DIR = 'tls';

/** What every demo certificate is for: the demo listens on loopback only. */
export const DEMO_TLS_HOSTS = ['127.0.0.1', '::1', 'localhost'];

/** A certificate kept across runs must stay valid this long, or it is issued anew. */
const MIN_REMAINING_MS = 86_400_000;

export interface DemoCert {
  certFile: string;
  keyFile: string;
  /** For Chromium's --ignore-certificate-errors-spki-list (it pins the certificates a server presents). */
  spkiSha256: string;
}

export interface DemoPki {
  /** The CA to trust. */
  caFile: string;
  certs: Record<string, DemoCert>;
  /** Files written this run (empty on a re-run that kept everything). */
  issued: string[];
}

/** Relative paths of a service's certificate files, as the demo cluster file names them. */
export function demoCertPaths(name: string): { certFile: string; keyFile: string; caFile: string } {
  return { certFile: `${DEMO_TLS_DIR}/${name}.pem`, keyFile: `${DEMO_TLS_DIR}/${name}-key.pem`, caFile: `${DEMO_TLS_DIR}/ca.pem` };
}

/**
 * Makes the demo's CA and one certificate per service under `dir`/tls, keeping those of an
 * earlier run that are still good for more than a day (so a browser told to trust them keeps
 * trusting them). A new CA means new certificates for everyone. Keys are 0600.
 */
export function ensureDemoPki(dir: string, services: string[], now: number = Date.now()): DemoPki {
  const tlsDir = join(dir, DEMO_TLS_DIR);
  mkdirSync(tlsDir, { recursive: true });
  const issued: string[] = [];
  const caFile = join(tlsDir, 'ca.pem');
  const caKeyFile = join(tlsDir, 'ca-key.pem');
  let ca = readPair(caFile, caKeyFile);
  if (!ca || !usable(ca, { now, isCa: true })) {
    ca = createCa({ commonName: `ReelCDN demo CA (${new Date(now).toISOString().slice(0, 10)})`, now });
    writePair(caFile, caKeyFile, ca);
    issued.push(caFile);
  }
  const caCert = new X509Certificate(ca.certPem);
  const certs: Record<string, DemoCert> = {};
  for (const name of services) {
    const certFile = join(dir, demoCertPaths(name).certFile);
    const keyFile = join(dir, demoCertPaths(name).keyFile);
    let leaf = readPair(certFile, keyFile);
    if (!leaf || !usable(leaf, { now, issuer: caCert, hosts: DEMO_TLS_HOSTS })) {
      leaf = issueCert(ca, { commonName: name, hosts: DEMO_TLS_HOSTS, now });
      writePair(certFile, keyFile, leaf);
      issued.push(certFile);
    }
    certs[name] = { certFile, keyFile, spkiSha256: spkiSha256Base64(leaf.certPem) };
  }
  return { caFile, certs, issued };
}

function readPair(certFile: string, keyFile: string): CertAndKey | undefined {
  if (!existsSync(certFile) || !existsSync(keyFile)) return undefined;
  try {
    return { certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
  } catch {
    return undefined; // unreadable: made anew
  }
}

/** Parses, matches its key, is valid now and for a day more, and (for a leaf) is the CA's and for every host. */
function usable(pair: CertAndKey, want: { now: number; isCa?: boolean; issuer?: X509Certificate; hosts?: string[] }): boolean {
  try {
    const cert = new X509Certificate(pair.certPem);
    if (!cert.checkPrivateKey(createPrivateKey(pair.keyPem))) return false;
    if (cert.validFromDate.getTime() > want.now || cert.validToDate.getTime() - want.now <= MIN_REMAINING_MS) return false;
    if (want.isCa && !cert.ca) return false;
    if (want.issuer && !(cert.checkIssued(want.issuer) && cert.verify(want.issuer.publicKey))) return false;
    return (want.hosts ?? []).every((h) => (isIP(h) ? cert.checkIP(h) : cert.checkHost(h)) !== undefined);
  } catch {
    return false; // a damaged file is replaced, not an error
  }
}

/** Key first, in a fresh 0600 file (never in an older file's looser mode); then the certificate. */
function writePair(certFile: string, keyFile: string, pair: CertAndKey): void {
  rmSync(keyFile, { force: true });
  writeFileSync(keyFile, pair.keyPem, { mode: 0o600, flag: 'wx' });
  writeFileSync(certFile, pair.certPem, { mode: 0o644 });
}

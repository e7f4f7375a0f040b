/**
 * The edge benchmark's HTTPS: one certificate for every server (ECDSA P-256 from a throwaway CA,
 * made with src/common/cert-authority.ts), and TLS 1.3 with TLS_AES_128_GCM_SHA256 forced on each
 * server, so that whatever the client offers, every server does the same cryptography.
 *
 * Node has no cipher option in the edge's config: its own command-line flags set the process's
 * defaults (`--tls-cipher-list`, `--tls-min-v1.3`), which the edge's listener inherits; an
 * operator could give the same in NODE_OPTIONS. nginx says it in its config.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { createCa, issueCert } from '../../src/common/cert-authority.js';

export const TLS_PROTOCOL = 'TLSv1.3';
export const TLS_CIPHER = 'TLS_AES_128_GCM_SHA256';

/** The files of the benchmark's certificate, and the CA a client trusts it by. */
export interface BenchTls {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** The CA certificate (PEM), for the bench's own clients. */
  ca: Buffer;
}

/** Writes a CA and one server certificate for 127.0.0.1 / localhost into `dir`. */
export function makeBenchTls(dir: string): BenchTls {
  mkdirSync(dir, { recursive: true });
  const ca = createCa({ commonName: 'ReelCDN bench CA' });
  const leaf = issueCert(ca, { commonName: 'bench', hosts: ['127.0.0.1', 'localhost'] });
  const files = { caFile: join(dir, 'ca.pem'), certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server-key.pem') };
  writeFileSync(files.caFile, ca.certPem);
  writeFileSync(files.certFile, leaf.certPem);
  writeFileSync(files.keyFile, leaf.keyPem, { mode: 0o600 });
  return { ...files, ca: Buffer.from(ca.certPem) };
}

/** Node flags that make every TLS server of the process TLS 1.3 with TLS_CIPHER alone. */
export const NODE_TLS_FLAGS: readonly string[] = ['--tls-min-v1.3', `--tls-cipher-list=${TLS_CIPHER}`];

/** The nginx `server` block lines for the same certificate, protocol and cipher. */
export function nginxSslLines(t: BenchTls): string {
  return [
    `ssl_certificate ${t.certFile};`,
    `ssl_certificate_key ${t.keyFile};`,
    `ssl_protocols ${TLS_PROTOCOL};`,
    `ssl_conf_command Ciphersuites ${TLS_CIPHER};`,
  ].join('\n    ');
}

/** What a handshake with a server settled on. */
export interface Negotiated {
  protocol: string;
  cipher: string;
}

/**
 * One handshake with `url` (trusting the bench CA), offering every TLS 1.3 suite and TLS 1.2, so
 * that the answer is what the server forces, not what this client asked for.
 */
export async function negotiated(url: string, ca: Buffer, timeoutMs = 5_000): Promise<Negotiated> {
  const u = new URL(url);
  return new Promise((ok, fail) => {
    const socket = connect({ host: u.hostname, port: Number(u.port), ca, minVersion: 'TLSv1.2' });
    const timer = setTimeout(() => socket.destroy(new Error(`no TLS handshake with ${url} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const out = { protocol: socket.getProtocol() ?? '?', cipher: socket.getCipher().standardName ?? socket.getCipher().name };
      socket.end();
      ok(out);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
  });
}

/** Throws unless the server at `url` speaks TLS_PROTOCOL with TLS_CIPHER; returns the line to print. */
export async function checkForced(url: string, ca: Buffer): Promise<string> {
  const n = await negotiated(url, ca);
  if (n.protocol !== TLS_PROTOCOL || n.cipher !== TLS_CIPHER) {
    throw new Error(`${url} negotiated ${n.protocol} ${n.cipher}, not ${TLS_PROTOCOL} ${TLS_CIPHER}`);
  }
  return `${n.protocol} ${n.cipher} (checked by a handshake)`;
}

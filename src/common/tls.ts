import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type SecureContextOptions, createSecureContext } from 'node:tls';
import { buildConnector } from 'undici';
import { type ClusterConfig, ConfigError, type ServiceTls, type TlsConfig } from './config.js';

/** One listener's certificate, key and CA, read from disk and checked. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  requireClientCert: boolean;
  /** Of the leaf certificate, as X509Certificate reports it (hex): what a client sees change on a swap. */
  serial: string;
  notAfter: Date;
  files: TlsConfig;
}

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function readPem(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(field, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** Every certificate of a PEM file (a chain, a CA bundle); none is a ConfigError. */
function certificates(pem: Buffer, path: string, field: string): X509Certificate[] {
  const blocks = pem.toString('latin1').match(PEM_CERT_RE) ?? [];
  if (blocks.length === 0) throw new ConfigError(field, `${path} holds no PEM certificate`);
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch {
      throw new ConfigError(field, `${path} holds a certificate that does not parse`);
    }
  });
}

/**
 * Reads and checks one `tls` block: the files are readable, the key is the certificate's, the
 * certificate is valid now and issued by `caFile` when one is given. Each problem is one line
 * naming the field and the file, so a start or a reload can refuse it plainly.
 */
export function loadTlsMaterial(cfg: TlsConfig, field: string, now: number = Date.now()): TlsMaterial {
  const cert = readPem(cfg.certFile, `${field}.certFile`);
  const key = readPem(cfg.keyFile, `${field}.keyFile`);
  const ca = cfg.caFile === undefined ? undefined : readPem(cfg.caFile, `${field}.caFile`);
  const chain = certificates(cert, cfg.certFile, `${field}.certFile`);
  const leaf = chain[0]!;
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new ConfigError(`${field}.keyFile`, `${cfg.keyFile} holds no PEM private key (or it is encrypted)`);
  }
  if (!leaf.checkPrivateKey(privateKey)) throw new ConfigError(`${field}.keyFile`, `${cfg.keyFile} does not match ${cfg.certFile}`);
  if (leaf.validToDate.getTime() <= now) {
    throw new ConfigError(`${field}.certFile`, `${cfg.certFile} expired on ${leaf.validToDate.toISOString()}`);
  }
  if (leaf.validFromDate.getTime() > now) {
    throw new ConfigError(`${field}.certFile`, `${cfg.certFile} is not valid before ${leaf.validFromDate.toISOString()}`);
  }
  if (ca !== undefined) {
    const authorities = certificates(ca, cfg.caFile!, `${field}.caFile`);
    // The chain in certFile may end at an intermediate the CA file holds, or at the root itself.
    const anchored = chain.some((c) => authorities.some((a) => (c.checkIssued(a) && c.verify(a.publicKey)) || c.fingerprint256 === a.fingerprint256));
    if (!anchored) throw new ConfigError(`${field}.caFile`, `${cfg.caFile} did not issue ${cfg.certFile}`);
  }
  // What OpenSSL itself refuses (a key too small for its security level, say) fails here, at
  // start or on reload, naming the file — not later inside a listener's setSecureContext.
  try {
    createSecureContext({ cert, key, ...(ca === undefined ? {} : { ca }) });
  } catch (err) {
    throw new ConfigError(`${field}.certFile`, `${cfg.certFile} cannot be used: ${(err as Error).message}`);
  }
  return { cert, key, ...(ca === undefined ? {} : { ca }), requireClientCert: cfg.requireClientCert, serial: leaf.serialNumber, notAfter: leaf.validToDate, files: cfg };
}

/**
 * Node's options for a listener. TLS 1.2 at least; with requireClientCert, a client without a
 * certificate issued by the CA is refused in the handshake, before any request.
 */
export function secureContextOptions(m: TlsMaterial): SecureContextOptions & { requestCert?: boolean; rejectUnauthorized?: boolean } {
  return {
    cert: m.cert,
    key: m.key,
    minVersion: 'TLSv1.2',
    ...(m.requireClientCert ? { ca: m.ca, requestCert: true, rejectUnauthorized: true } : {}),
  };
}

/** What a client presents and trusts when it calls another service of the cluster over https. */
export interface ClientTls {
  /**
   * Per destination (`https://host:port`, as the cluster file names it): the CA that service's
   * `caFile` names. A destination not listed is verified against the system's CAs.
   */
  cas: ReadonlyMap<string, Buffer>;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * What every caller in the cluster trusts, and shows: for each https:// URL of the cluster file,
 * the CA its service names (its `caFile`; none: the system's CAs), and the caller's own
 * certificate as its client identity (an origin may require it). Trust is per destination: an
 * edge's public certificate from a public CA never makes the public CAs trusted for the origin's
 * private one. Nothing when no service of the cluster speaks https.
 */
export function clusterClientTls(config: ClusterConfig, identity?: TlsMaterial): ClientTls | undefined {
  const services: { field: string; url: string; adminUrl: string; tls?: TlsConfig; adminTls?: TlsConfig }[] = [
    { field: 'origin', ...config.origin },
    { field: 'steering', ...config.steering },
    ...config.edges.map((e, i) => ({ ...e, field: `edges[${i}]` })),
  ];
  const files = new Map<string, Buffer>();
  const cas = new Map<string, Buffer>();
  let https = false;
  for (const s of services) {
    for (const [url, t, f] of [[s.url, s.tls, 'tls'], [s.adminUrl, s.adminTls, 'adminTls']] as const) {
      if (!url.startsWith('https:')) continue;
      https = true;
      if (t?.caFile === undefined) continue;
      let pem = files.get(t.caFile);
      if (pem === undefined) {
        pem = readPem(t.caFile, `${s.field}.${f}.caFile`);
        certificates(pem, t.caFile, `${s.field}.${f}.caFile`);
        files.set(t.caFile, pem);
      }
      cas.set(destinationOf(new URL(url)), pem);
    }
  }
  if (!https) return undefined;
  return { cas, ...(identity === undefined ? {} : { cert: identity.cert, key: identity.key }) };
}

/** A digest of a ClientTls (what it trusts where, what it shows): equal digests, nothing to swap. */
export function clientTlsKey(tls: ClientTls | undefined): string {
  if (tls === undefined) return '';
  const h = createHash('sha256');
  for (const [dest, ca] of [...tls.cas].sort(([a], [b]) => (a < b ? -1 : 1))) h.update(dest).update('\0').update(ca).update('\0');
  h.update('|');
  if (tls.cert) h.update(tls.cert);
  h.update('|');
  if (tls.key) h.update(tls.key);
  return h.digest('hex');
}

/** `https://host:port` of a URL or of undici's connect options: the key trust is looked up by. */
function destinationOf(u: { protocol: string; hostname: string; port: string | number | null | undefined }): string {
  const port = u.port === '' || u.port === undefined || u.port === null ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port);
  return `${u.protocol}//${u.hostname.toLowerCase()}:${port}`;
}

/**
 * undici's `connect` option for a caller: plain options without TLS, else a connector that
 * verifies each destination against its own CA (ClientTls.cas) and shows our certificate.
 */
export function connectFor(tls: ClientTls | undefined, timeout: number): buildConnector.BuildOptions | buildConnector.connector {
  if (tls === undefined) return { timeout };
  const identity = { timeout, ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}) };
  const system = buildConnector(identity);
  const byDestination = new Map<string, buildConnector.connector>();
  for (const [dest, ca] of tls.cas) byDestination.set(dest, buildConnector({ ...identity, ca }));
  return (opts, callback) => (byDestination.get(destinationOf(opts)) ?? system)(opts, callback);
}

/** A service's TLS as its process uses it: its listeners' certificates, and its client identity. */
export interface ServiceTlsMaterial {
  /** For the public listener, when its URL is https://. */
  public?: TlsMaterial;
  /** For the admin listener, when its URL is https://. */
  admin?: TlsMaterial;
  /** Shown to the services it calls (an origin may require it): its `tls` certificate, if it has one. */
  identity?: TlsMaterial;
}

/** Reads every certificate a service needs; `field` is its place in the cluster file (`edges[2]`). */
export function loadServiceTls(service: ServiceTls & { url: string; adminUrl: string }, field: string, now: number = Date.now()): ServiceTlsMaterial {
  const own = service.tls === undefined ? undefined : loadTlsMaterial(service.tls, `${field}.tls`, now);
  // adminTls is tls (without requireClientCert) unless the file gave one of its own.
  const admin = service.adminUrl.startsWith('https:') && service.adminTls ? loadTlsMaterial(service.adminTls, `${field}.adminTls`, now) : undefined;
  return {
    ...(service.url.startsWith('https:') && own ? { public: own } : {}),
    ...(admin ? { admin } : {}),
    ...(own ? { identity: own } : {}),
  };
}

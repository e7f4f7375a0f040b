import { X509Certificate, createHash, createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';

/**
 * A throwaway certificate authority for the demo and the tests: a CA and the leaf certificates it
 * issues, made with node:crypto alone (no openssl binary). X.509 is written as DER by hand here
 * because the few fields we need are simple and a library for it (e.g. @peculiar/x509) brings a
 * global reflect-metadata polyfill and a dozen packages with it.
 *
 * Keys are ECDSA P-256 by default (fast handshakes), RSA 2048 on request; private keys come out as
 * unencrypted PKCS#8 PEM, which node's tls reads as it is.
 */

/** ECDSA P-256 with SHA-256 (the default), or RSA 2048 with SHA-256 (PKCS#1 v1.5). */
export type KeyType = 'ec' | 'rsa';

/** A CA or leaf certificate with its private key, both PEM. */
export interface CertAndKey {
  certPem: string;
  keyPem: string;
}

export interface IssuedCert extends CertAndKey {
  /** Uppercase hex, as node's X509Certificate.serialNumber reports it. */
  serial: string;
}

interface Validity {
  /** Clock, ms since the epoch (default Date.now()). */
  now?: number;
  /** Start of validity, ms since the epoch. Default: one hour before `now`, for clocks a little behind. */
  notBefore?: number;
  /** End of validity, ms since the epoch. Default: `notBefore`'s day plus `validDays`. */
  notAfter?: number;
  /** Length of validity from now when `notAfter` is not given. */
  validDays?: number;
  keyType?: KeyType;
  /** RSA modulus length (default 2048). Tests make keys OpenSSL refuses to serve with (512). */
  rsaBits?: number;
}

export interface CaOptions extends Validity {
  commonName: string;
}

export interface LeafOptions extends Validity {
  commonName: string;
  /** IP addresses and DNS names the certificate is for (its subjectAltName); at least one. */
  hosts: string[];
  /** Hex serial; default 16 random bytes (unique in practice). */
  serial?: string;
}

const DAY_MS = 86_400_000;
const CA_DEFAULT_DAYS = 3650;
// Apple's TLS stack refuses server certificates valid for more than 825 days even from private CAs.
const LEAF_DEFAULT_DAYS = 365;

/** A self-signed CA certificate (basicConstraints CA, keyCertSign) and its key. */
export function createCa(opts: CaOptions): CertAndKey {
  const { privateKey, spki } = newKey(opts.keyType ?? 'ec');
  const name = distinguishedName(opts.commonName);
  const keyId = keyIdentifier(spki);
  const extensions = [
    extension(OID.basicConstraints, true, seq(boolean(true), integer(Buffer.from([0])))), // pathLen 0: no intermediates
    extension(OID.keyUsage, true, keyUsageBits([KU.digitalSignature, KU.keyCertSign, KU.cRLSign])),
    extension(OID.subjectKeyIdentifier, false, octetString(keyId)),
  ];
  const certPem = signCertificate({ serial: randomSerial(), issuer: name, subject: name, spki, extensions, validity: validity(opts, CA_DEFAULT_DAYS), signer: privateKey });
  return { certPem, keyPem: pkcs8Pem(privateKey) };
}

/**
 * A leaf certificate issued by `ca` for `hosts`, usable as a server and as a client certificate
 * (extendedKeyUsage serverAuth and clientAuth).
 */
export function issueCert(ca: CertAndKey, opts: LeafOptions): IssuedCert {
  if (opts.hosts.length === 0) throw new Error('issueCert: hosts is empty (a certificate for nothing)');
  const caCert = new X509Certificate(ca.certPem);
  const caKey = createPrivateKey(ca.keyPem);
  if (!caCert.checkPrivateKey(caKey)) throw new Error('issueCert: the CA key does not match the CA certificate');
  const keyType = opts.keyType ?? 'ec';
  const { privateKey, spki } = newKey(keyType, opts.rsaBits);
  const caSpki = caCert.publicKey.export({ type: 'spki', format: 'der' });
  const usage = keyType === 'rsa' ? [KU.digitalSignature, KU.keyEncipherment] : [KU.digitalSignature];
  const extensions = [
    extension(OID.basicConstraints, true, seq()),
    extension(OID.keyUsage, true, keyUsageBits(usage)),
    extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth), oid(OID.clientAuth))),
    extension(OID.subjectAltName, false, seq(...opts.hosts.map(generalName))),
    extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(spki))),
    extension(OID.authorityKeyIdentifier, false, seq(tlv(0x80, keyIdentifier(caSpki)))),
  ];
  const serial = opts.serial === undefined ? randomSerial() : serialFromHex(opts.serial);
  const certPem = signCertificate({
    serial,
    issuer: subjectOf(caCert),
    subject: distinguishedName(opts.commonName),
    spki,
    extensions,
    validity: validity(opts, LEAF_DEFAULT_DAYS),
    signer: caKey,
  });
  return { certPem, keyPem: pkcs8Pem(privateKey), serial: new X509Certificate(certPem).serialNumber };
}

/**
 * Base64 of the SHA-256 of the certificate's DER SubjectPublicKeyInfo: what Chromium's
 * `--ignore-certificate-errors-spki-list` takes (and HPKP pins were).
 */
export function spkiSha256Base64(certPem: string | Buffer): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

// ---------------------------------------------------------------------------------------------
// Certificate body

interface TbsParts {
  serial: Buffer;
  issuer: Buffer;
  subject: Buffer;
  spki: Buffer;
  extensions: Buffer[];
  validity: { notBefore: number; notAfter: number };
  signer: KeyObject;
}

function signCertificate(p: TbsParts): string {
  const algorithm = signatureAlgorithm(p.signer);
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))), // version v3
    integer(p.serial),
    algorithm,
    p.issuer,
    seq(time(p.validity.notBefore), time(p.validity.notAfter)),
    p.subject,
    p.spki,
    tlv(0xa3, seq(...p.extensions)),
  );
  // ECDSA: node signs in DER (r, s) by default, which is what X.509 carries.
  const signature = sign('sha256', tbs, p.signer);
  const der = seq(tbs, algorithm, bitString(signature));
  return `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
}

function validity(opts: Validity, defaultDays: number): { notBefore: number; notAfter: number } {
  const now = opts.now ?? Date.now();
  const notBefore = opts.notBefore ?? now - 3_600_000;
  const notAfter = opts.notAfter ?? now + (opts.validDays ?? defaultDays) * DAY_MS;
  if (!(notAfter > notBefore)) throw new Error('certificate validity: notAfter must be after notBefore');
  return { notBefore, notAfter };
}

function newKey(type: KeyType, rsaBits = 2048): { privateKey: KeyObject; spki: Buffer } {
  const { privateKey, publicKey } = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: rsaBits }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, spki: publicKey.export({ type: 'spki', format: 'der' }) };
}

function pkcs8Pem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function signatureAlgorithm(key: KeyObject): Buffer {
  if (key.asymmetricKeyType === 'ec') return seq(oid(OID.ecdsaWithSha256));
  if (key.asymmetricKeyType === 'rsa') return seq(oid(OID.sha256WithRsa), NULL);
  throw new Error(`unsupported CA key type ${key.asymmetricKeyType}`);
}

/** The subject/issuer of a certificate: CN only, plus a fixed O so the demo's certificates say whose they are. */
function distinguishedName(commonName: string): Buffer {
  const rdn = (type: string, value: string) => tlv(0x31, seq(oid(type), tlv(0x0c, Buffer.from(value, 'utf8'))));
  return seq(rdn(OID.organizationName, 'ReelCDN'), rdn(OID.commonName, commonName));
}

/** The CA's subject exactly as encoded in its certificate: a leaf's issuer must match it byte for byte. */
function subjectOf(cert: X509Certificate): Buffer {
  const certificate = readTlv(cert.raw, 0);
  const tbs = readTlv(cert.raw, certificate.start);
  let at = tbs.start;
  // version [0], serialNumber, signature, issuer, validity, then subject
  let field = readTlv(cert.raw, at);
  if (cert.raw[at] !== 0xa0) throw new Error('CA certificate is not X.509 v3');
  for (let i = 0; i < 5; i++) {
    at = field.end;
    field = readTlv(cert.raw, at);
  }
  return cert.raw.subarray(at, field.end);
}

/** RFC 5280 §4.2.1.2 method (1)-like: SHA-1 of the public key, here of the whole SPKI (any stable unique value will do). */
function keyIdentifier(spki: Buffer): Buffer {
  return createHash('sha1').update(spki).digest();
}

function randomSerial(): Buffer {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40; // positive, and no leading zero byte to strip
  return serial;
}

function serialFromHex(hex: string): Buffer {
  if (!/^[0-9a-f]{1,40}$/i.test(hex)) throw new Error(`issueCert: serial must be 1 to 40 hex digits, got "${hex}"`);
  const bytes = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  return bytes.subarray(i);
}

/** A subjectAltName entry: iPAddress [7] for an IP, dNSName [2] otherwise. */
function generalName(host: string): Buffer {
  if (isIPv4(host)) return tlv(0x87, Buffer.from(host.split('.').map(Number)));
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIPv6(bare)) return tlv(0x87, ipv6Bytes(bare));
  if (!/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(host)) throw new Error(`issueCert: "${host}" is neither an IP address nor a DNS name`);
  return tlv(0x82, Buffer.from(host.toLowerCase(), 'ascii'));
}

function ipv6Bytes(address: string): Buffer {
  let text = address.split('%')[0]!;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1]!.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const groups = (s: string | undefined) => (s ? s.split(':') : []);
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

// ---------------------------------------------------------------------------------------------
// DER

const OID = {
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** keyUsage bit numbers (RFC 5280 §4.2.1.3). */
const KU = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

const NULL = Buffer.from([0x05, 0x00]);

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let length: Buffer;
  if (n < 0x80) length = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    length = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

function seq(...items: Buffer[]): Buffer {
  return tlv(0x30, Buffer.concat(items));
}

/** A non-negative INTEGER from big-endian magnitude bytes. */
function integer(magnitude: Buffer): Buffer {
  return tlv(0x02, magnitude[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), magnitude]) : magnitude);
}

function boolean(v: boolean): Buffer {
  return tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
}

function octetString(b: Buffer): Buffer {
  return tlv(0x04, b);
}

function bitString(b: Buffer, unusedBits = 0): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), b]));
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes = [parts[0]! * 40 + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk = [p & 0x7f];
    for (let v = p >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** A named-bit BIT STRING in DER: trailing zero bits are left out. */
function keyUsageBits(bits: number[]): Buffer {
  const max = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(max / 8) + 1);
  for (const b of bits) bytes[b >> 3]! |= 0x80 >> (b & 7);
  return bitString(bytes, 7 - (max & 7));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), boolean(true), octetString(value)) : seq(oid(id), octetString(value));
}

/** UTCTime up to 2049, GeneralizedTime after (RFC 5280 §4.1.2.5), to the second, in UTC. */
function time(ms: number): Buffer {
  const iso = new Date(Math.floor(ms / 1000) * 1000).toISOString(); // 2026-01-02T03:04:05.000Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z';
  const year = Number(iso.slice(0, 4));
  return year >= 1950 && year < 2050 ? tlv(0x17, Buffer.from(digits.slice(2), 'ascii')) : tlv(0x18, Buffer.from(digits, 'ascii'));
}

/** Where the content of the TLV at `at` starts and where the TLV ends. */
function readTlv(buf: Buffer, at: number): { start: number; end: number } {
  const first = buf[at + 1];
  if (first === undefined) throw new Error('certificate DER is truncated');
  if (first < 0x80) return { start: at + 2, end: at + 2 + first };
  const n = first & 0x7f;
  let length = 0;
  for (let i = 0; i < n; i++) length = length * 256 + buf[at + 2 + i]!;
  return { start: at + 2 + n, end: at + 2 + n + length };
}

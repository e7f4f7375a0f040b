import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isIP } from 'node:net';
import { problemsBeyondValidation, refusal } from './config-check.js';
import { ID_RE } from './paths.js';

/**
 * The one cluster file every role reads (docs/contract.md "The cluster file").
 * Validated completely at start; a bad file is a ConfigError naming the field.
 */
export interface ClusterConfig {
  signing: SigningConfig;
  origin: OriginConfig;
  steering: SteeringConfig;
  isps: IspConfig[];
  /** ISP id used for clients no prefix matches; absent → every edge is a candidate. */
  defaultIsp?: string;
  edges: EdgeConfig[];
  admin: AdminConfig;
  log: LogConfig;
  /** Connection limits and overload shedding of every role's ports. All optional. */
  http: HttpConfig;
  /** Directory of the cluster file; relative dataDirs were resolved against it. */
  baseDir: string;
  /**
   * Problems that do not stop a service but an operator should hear about (e.g. signing secrets
   * in a cluster file others can read); each role logs them at start. Set by loadClusterFile.
   */
  warnings?: string[];
}

export interface SigningConfig {
  /**
   * keyId → secret. Every key here is accepted by edges (rotation). Inline in the cluster file
   * (`signing.keys`) or read from `signing.keysFile`.
   */
  keys: Record<string, string>;
  /**
   * Absolute path of the file the keys came from, if they are kept apart from the cluster file
   * (which then holds no secret and can be shared). The file must be readable by its owner only.
   */
  keysFile?: string;
  /** The key steering signs with. */
  activeKey: string;
  /** Lifetime of a signed URL. */
  ttlSeconds: number;
  /**
   * Edges verify tokens, and the origin's /o/ wants an edge's token (or a verified client
   * certificate), unless this is false (lab setups, benchmarks). Default true.
   */
  required: boolean;
}

/**
 * Certificate and key of one listener (`tls` / `adminTls` of a service), used when that URL is
 * https://. The files are read when the service starts and again on reload (src/common/tls.ts).
 */
export interface TlsConfig {
  certFile: string;
  keyFile: string;
  /**
   * The CA that issued this service's certificate. Its clients verify the service against it
   * (the cluster file is shared, so every caller knows it); absent: the system's CAs. With
   * `requireClientCert`, the server checks client certificates against it too.
   */
  caFile?: string;
  /** Origin only: the TLS handshake refuses a client without a certificate issued by `caFile`. */
  requireClientCert: boolean;
}

/** The listeners' TLS of one service: `tls` on its public URL, `adminTls` (default: `tls`) on its admin URL. */
export interface ServiceTls {
  tls?: TlsConfig;
  adminTls?: TlsConfig;
}

export interface OriginConfig extends ServiceTls {
  url: string;
  adminUrl: string;
  dataDir: string;
  /**
   * Where the catalog, the titles' files and the play counts live. Absent: `{ kind: "dir" }`,
   * the folder `dataDir`. With `kind: "s3"` they live in a bucket several origin replicas share,
   * and `dataDir` keeps only this replica's local state. Restart-only.
   */
  storage?: OriginStorageConfig;
  fill: OriginFillConfig;
  /**
   * Media segments one title may list across its manifests; ingest refuses more. Steering
   * writes every segment URL of a DASH SegmentTemplate into the MPD it serves, so this bounds
   * what one play can cost. Default 50000 (6 renditions of 4.6 h in 2 s segments).
   */
  maxSegmentsPerTitle: number;
}

export type OriginStorageConfig = { kind: 'dir' } | S3StorageConfig;

/** An S3-compatible bucket; credentials come from the AWS SDK's default chain (AWS_* variables, ~/.aws, roles). */
export interface S3StorageConfig {
  kind: 's3';
  /** The store's URL (MinIO, Ceph, R2…); absent: AWS S3's own endpoint for `region`. */
  endpoint?: string;
  bucket: string;
  region: string;
  /** Key prefix of everything the origin stores: '' (the bucket's root) or ending in '/'. */
  prefix: string;
  /** Bucket in the path (`endpoint/bucket/key`) rather than the host name; most non-AWS stores need it. Default false. */
  forcePathStyle: boolean;
}

export interface OriginFillConfig {
  /** Share of each edge's disk the plan leaves free for on-demand slices (0-1). Default 0.1. */
  headroomRatio: number;
  /** Half-life, in days, of past plays in the popularity prediction. Default 2. */
  halfLifeDays: number;
  /**
   * Hysteresis, low side: a title placed yesterday keeps its place while its predicted plays are
   * at least this share of the cut (the score of the last title that fits). (0-1], default 0.8.
   */
  stayRatio: number;
  /** Hysteresis, high side: a title not placed yesterday enters only at this share of the cut or above. At least stayRatio, default 1. */
  enterRatio: number;
  /**
   * Bytes an edge may be asked to fetch in one night beyond the room yesterday's plan left free,
   * as a share of its disk (0-1); spent on the biggest gains first. Default 0.02 (docs/fill.md: at 0.05,
   * 1,000 plays a day cost more origin bytes than caching alone).
   */
  maxChurnRatio: number;
  /** Room left once every ranked title is placed once buys extra copies of the most demanded titles. Default true. */
  spareReplicas: boolean;
}

export interface HealthThresholds {
  /** An edge whose error ratio (5xx / requests, last interval) exceeds this is down. */
  maxErrorRatio: number;
  /**
   * The error ratio counts only over at least this many answers in the edge's 10 s window:
   * five failed requests of an idle node say nothing of its health.
   */
  minRequestsForErrorRatio: number;
  /** An edge whose disk tier is fuller than this ratio is down for new clients. */
  maxDiskUsedRatio: number;
  /** An edge with more open connections than this is down for new clients. */
  maxConnections: number;
}

export interface SteeringConfig extends ServiceTls {
  url: string;
  adminUrl: string;
  healthIntervalMs: number;
  /** Consecutive failed polls before an edge is marked down. */
  downAfter: number;
  /** Consecutive good polls before a down edge is up again. */
  upAfter: number;
  /** Addresses or CIDR prefixes whose X-Forwarded-For is believed. */
  trustedProxies: string[];
  thresholds: HealthThresholds;
  /** TTL of the content steering manifest, seconds (players re-poll after it). */
  steeringTtlSeconds: number;
  /**
   * Bytes of rewritten DASH MPDs kept (expanded plans per manifest version, signed copies per
   * token period), so a play of a long title is a string join. Default 128 MiB.
   */
  mpdCacheBytes: number;
  /**
   * A client's plays of one title count once per this many seconds (the client is its IPv4
   * address or IPv6 /64). 0: every play with segment traffic counts. Default 3600.
   */
  playDedupSeconds: number;
  /** How long a play waits for its first segment to reach an edge before it is forgotten, seconds. Default 600. */
  playConfirmSeconds: number;
  /** Plays waiting for a segment, and client/title pairs remembered as counted, each at most this many. Default 100000. */
  maxTrackedPlays: number;
  /**
   * Consistent hashing with bounded loads: an edge whose latest load (connections or bytes/s from
   * its /health) is at or above this × its ISP's mean takes no new sessions while an edge under it
   * can (docs/operations.md "Load balance"). At least 1. Default 1.25.
   */
  balanceFactor: number;
  /** The steering manifest's TTL while any edge of the player's ISP is down, seconds (players re-poll sooner). Default 2. */
  incidentTtlSeconds: number;
  /**
   * Steering manifest reloads answered per second by this process (a token bucket of `burst`, one
   * client 1/16 of it); past it a reload whose pathway is fine is deferred: a longer TTL (HLS) or
   * 429 with Retry-After (DASH). 0: no budget. Default 0.
   */
  decisionBudget: { perSecond: number; burst: number };
}

export interface IspConfig {
  id: string;
  prefixes: string[];
  /** Titles every edge of the ISP holds whatever their popularity (new releases, seasonal titles). */
  pinnedTitles: string[];
}

export interface FillConfig {
  /** "HH:MM-HH:MM" in the edge's timezone; may cross midnight; equal ends mean all day. */
  window: string;
  /** Cap on the node's fill traffic (all sources together). */
  bytesPerSec: number;
  /** How often the node asks the origin for its manifest. Default 600000 (10 min). */
  pollIntervalMs: number;
}

export interface EdgeConfig extends ServiceTls {
  id: string;
  isp: string;
  url: string;
  adminUrl: string;
  dataDir: string;
  diskBytes: number;
  memoryBytes: number;
  /** IANA timezone of the node, for its fill window. */
  timezone: string;
  fill: FillConfig;
  /** Slice size of the disk and memory tiers. Default 2 MiB. */
  sliceBytes: number;
  /** Upstream for misses: another edge's id (a parent) instead of the origin. */
  parent?: string;
  /** When to bypass the parent for the origin (only used with `parent`). */
  parentBreaker: ParentBreakerConfig;
  /**
   * Worker processes on the public port (one disk tier, one upstream fetch per slice across
   * them). Unset: `reelcdn edge --workers`, else the number of CPUs (`reelcdn demo`: 1).
   */
  workers?: number;
  /** Fetching the next object a player announces (CMCD `nor`/`nrr`) before it asks: src/edge/prefetch.ts. */
  prefetch: PrefetchConfig;
}

/**
 * How an edge prefetches what players announce they will ask next (CMCD `nor`/`nrr`). The
 * budgets are the node's: a node of N workers gives each worker 1/N (prefetchShare).
 */
export interface PrefetchConfig {
  /** Default true: a player that sends `nor`/`nrr` finds its next segment in memory. */
  enabled: boolean;
  /**
   * No prefetch for a player whose buffer (CMCD `bl`) holds at least this much, ms: it has time
   * to spare for a miss. Default 30000 — hls.js's default buffer goal (maxBufferLength 30 s), so
   * hls.js still filling or holding its goal (it asks at bl just under 30 s) is prefetched for,
   * and a player configured for a longer buffer is not.
   */
  maxBufferMs: number;
  /** Prefetches running at once on the node (each fetches one slice at a time). Default 16. */
  maxConcurrent: number;
  /**
   * Bytes the node's running prefetches may still bring, in whole slices; also the most one
   * prefetch brings. At least `sliceBytes`. Default 64 MiB.
   */
  maxBytesInFlight: number;
}

export const DEFAULT_PREFETCH: Readonly<PrefetchConfig> = Object.freeze({
  enabled: true,
  maxBufferMs: 30_000,
  maxConcurrent: 16,
  maxBytesInFlight: 64 * 1024 * 1024,
});

export interface ParentBreakerConfig {
  /** Consecutive failed requests to the parent (connect error, timeout, 5xx) that open the breaker. Default 3. */
  failures: number;
  /** How long misses go straight to the origin before one probe tries the parent again, ms. Default 5000. */
  coolDownMs: number;
}

export interface AdminConfig {
  /** /health readable without the admin token (for load balancers and steering). */
  openHealth: boolean;
  /** /metrics readable without the admin token (for Prometheus). */
  openMetrics: boolean;
}

/** `http` in the cluster file: limits each process applies to its public port (timeouts to its admin port too). */
export interface HttpConfig {
  /** Open connections per process on the public port. Default 25000 (above steering's 20000 threshold, so steering moves clients first). */
  maxConnections: number;
  /** Time to receive a request's headers, ms. Default 10000. */
  headersTimeoutMs: number;
  /** Time to receive a whole request, ms (at least headersTimeoutMs). Default 30000. */
  requestTimeoutMs: number;
  /** Idle keep-alive connections are closed after this, ms. Default 30000. */
  keepAliveTimeoutMs: number;
  /** Event-loop delay budget (p99 of a 500 ms sample), ms. Default 250. */
  maxEventLoopDelayMs: number;
  /** Consecutive 500 ms samples over (or back within) the budget before a process is overloaded (or ok again). Default 4. */
  overloadSamples: number;
  /** Retry-After of a 503 for the cap or overload, seconds. Default 2. */
  retryAfterSec: number;
}

export const DEFAULT_HTTP_LIMITS: Readonly<HttpConfig> = Object.freeze({
  maxConnections: 25_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 30_000,
  maxEventLoopDelayMs: 250,
  overloadSamples: 4,
  retryAfterSec: 2,
});

export interface LogConfig {
  level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export const DEFAULT_SLICE_BYTES = 2 * 1024 * 1024;

/** A problem in the cluster file, naming the field, e.g. `edges[1].diskBytes: must be a positive integer`. */
export class ConfigError extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
    this.name = 'ConfigError';
  }
}

type Json = unknown;

function isObject(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: Json, field: string): Record<string, Json> {
  if (!isObject(v)) throw new ConfigError(field, 'must be an object');
  return v;
}

function str(v: Json, field: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new ConfigError(field, 'must be a non-empty string');
  return v;
}

function optStr(v: Json, field: string): string | undefined {
  return v === undefined ? undefined : str(v, field);
}

function posInt(v: Json, field: string, dflt?: number): number {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new ConfigError(field, 'must be a positive integer');
  }
  return v;
}

/** Most worker processes one edge node runs: beyond this a typo, not a machine. */
export const MAX_WORKERS = 256;

/** A worker count: a number in the cluster file; on the command line, text of digits. */
export function workerCount(v: Json, field: string, fromText = false): number {
  const n = fromText && typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw new ConfigError(field, `must be an integer from 1 to ${MAX_WORKERS}`);
  }
  return n;
}

function nonNegInt(v: Json, field: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ConfigError(field, 'must be a non-negative integer');
  return v;
}

function ratio(v: Json, field: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new ConfigError(field, 'must be a number from 0 to 1');
  return v;
}

/** Bounded loads need room above the mean: below 1 no edge could ever take a session. */
function balanceFactor(v: Json, field: string): number {
  if (v === undefined) return 1.25;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 1) throw new ConfigError(field, 'must be a number of at least 1 (1.25: an edge takes new sessions up to 125% of its ISP mean)');
  return v;
}

function decisionBudget(v: Json, field: string): { perSecond: number; burst: number } {
  if (v === undefined) return { perSecond: 0, burst: 0 };
  const o = obj(v, field);
  const perSecond = nonNegInt(o.perSecond, `${field}.perSecond`, 0);
  const burst = o.burst === undefined ? perSecond : posInt(o.burst, `${field}.burst`);
  return { perSecond, burst };
}

function bool(v: Json, field: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new ConfigError(field, 'must be true or false');
  return v;
}

function arr(v: Json, field: string, dflt?: Json[]): Json[] {
  if (v === undefined && dflt !== undefined) return dflt;
  if (!Array.isArray(v)) throw new ConfigError(field, 'must be an array');
  return v;
}

export function httpUrl(v: Json, field: string): string {
  const s = str(v, field);
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new ConfigError(field, `"${s}" is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(field, 'must be an http:// or https:// URL');
  if (!u.port && u.protocol === 'http:') u.port = '80';
  return s.replace(/\/+$/, '');
}

export { ID_RE };

function id(v: Json, field: string): string {
  const s = str(v, field);
  if (!ID_RE.test(s)) throw new ConfigError(field, `"${s}" must be 1-64 characters of letters, digits, '.', '_' or '-'`);
  return s;
}

/** Parses "a.b.c.d/n" or "v6::/n"; returns the normalised form or throws. */
export function checkPrefix(v: Json, field: string): string {
  const s = str(v, field);
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) throw new ConfigError(field, `"${s}" is not an IPv4 or IPv6 prefix`);
  const max = family === 4 ? 32 : 128;
  const lenText = slash < 0 ? String(max) : s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) {
    throw new ConfigError(field, `"${s}" has a prefix length outside 0-${max}`);
  }
  return `${addr}/${lenText}`;
}

// The end may be 24:00 (midnight as the end of the day), never 24:xx.
export const WINDOW_RE = /^([01]\d|2[0-3]):([0-5]\d)-(([01]\d|2[0-3]):([0-5]\d)|24:00)$/;

export function fillWindow(v: Json, field: string): string {
  const s = str(v, field);
  if (!WINDOW_RE.test(s)) throw new ConfigError(field, `"${s}" must look like "02:00-06:00"`);
  return s;
}

export function timezone(v: Json, field: string): string {
  const s = v === undefined ? 'UTC' : str(v, field);
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: s });
  } catch {
    throw new ConfigError(field, `"${s}" is not an IANA timezone`);
  }
  return s;
}

export function dir(v: Json, field: string, baseDir: string): string {
  const s = str(v, field);
  if (s.includes('\0')) throw new ConfigError(field, 'must not contain NUL');
  return isAbsolute(s) ? s : resolve(baseDir, s);
}

const S3_KEYS = new Set(['kind', 'endpoint', 'bucket', 'region', 'prefix', 'forcePathStyle']);
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const REGION_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

function originStorage(v: Json, field: string): OriginStorageConfig {
  const s = obj(v, field);
  const kind = s.kind === undefined ? 'dir' : s.kind;
  if (kind === 'dir') {
    for (const k of Object.keys(s)) if (k !== 'kind') throw new ConfigError(`${field}.${k}`, 'not a setting of kind "dir" (the folder is origin.dataDir)');
    return { kind: 'dir' };
  }
  if (kind !== 's3') throw new ConfigError(`${field}.kind`, 'must be "dir" or "s3"');
  for (const k of Object.keys(s)) if (!S3_KEYS.has(k)) throw new ConfigError(`${field}.${k}`, `unknown setting (kind "s3" has ${[...S3_KEYS].join(', ')})`);
  const bucket = str(s.bucket, `${field}.bucket`);
  if (!BUCKET_RE.test(bucket) || bucket.includes('..')) throw new ConfigError(`${field}.bucket`, `"${bucket}" is not a bucket name (3-63 lowercase letters, digits, '.' and '-')`);
  const region = str(s.region, `${field}.region`);
  if (!REGION_RE.test(region)) throw new ConfigError(`${field}.region`, `"${region}" is not a region name (e.g. us-east-1)`);
  const endpoint = s.endpoint === undefined ? undefined : httpUrl(s.endpoint, `${field}.endpoint`);
  if (s.prefix !== undefined && typeof s.prefix !== 'string') throw new ConfigError(`${field}.prefix`, 'must be a string');
  let prefix = s.prefix ?? '';
  if (prefix !== '') {
    prefix = prefix.replace(/\/+$/, '');
    const segs = prefix.split('/');
    if (prefix.startsWith('/') || segs.some((p) => p === '' || p === '.' || p === '..') || /[\0\\]/.test(prefix)) {
      throw new ConfigError(`${field}.prefix`, `"${String(s.prefix)}" must be a relative key prefix like "reelcdn/prod" (no leading '/', no empty, '.' or '..' parts)`);
    }
    prefix += '/';
  }
  return { kind: 's3', ...(endpoint === undefined ? {} : { endpoint }), bucket, region, prefix, forcePathStyle: bool(s.forcePathStyle, `${field}.forcePathStyle`, false) };
}

/** keyId → secret, each checked; `field` names where a bad key came from. */
function signingKeys(raw: Record<string, Json>, field: (keyId: string) => string): Record<string, string> {
  const keys: Record<string, string> = {};
  for (const [k, secret] of Object.entries(raw)) {
    id(k, field(k));
    const sec = str(secret, field(k));
    if (sec.length < 16) throw new ConfigError(field(k), 'secret must be at least 16 characters');
    keys[k] = sec;
  }
  return keys;
}

/** "0644": a file mode as chmod and ls speak it. */
function octalMode(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

/** Anyone but the owner may read it: no place for secrets. Windows has no such bits. */
function readableByOthers(mode: number): boolean {
  return process.platform !== 'win32' && (mode & 0o044) !== 0;
}

/**
 * Reads `signing.keysFile`. Mode and content come from the same open file, so a file swapped
 * between the check and the read cannot slip through. Problems never quote a secret.
 */
export function readKeysFile(path: string): Record<string, string> {
  const field = 'signing.keysFile';
  let text: string;
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const st = fstatSync(fd);
    if (!st.isFile()) throw new ConfigError(field, `${path} is not a regular file`);
    if (readableByOthers(st.mode)) {
      throw new ConfigError(field, `${path} holds signing secrets and is readable by group or others (mode ${octalMode(st.mode)}): chmod 600 it`);
    }
    text = readFileSync(fd, 'utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(field, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  let raw: Json;
  try {
    raw = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the text around the error: it could be a secret.
    throw new ConfigError(field, `${path} is not valid JSON`);
  }
  if (!isObject(raw)) throw new ConfigError(field, `${path} must hold a JSON object of keyId → secret`);
  let keys: Record<string, string>;
  try {
    keys = signingKeys(raw, (k) => `"${k}"`);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(field, `${path}: key ${err.message}`);
    throw err;
  }
  if (Object.keys(keys).length === 0) throw new ConfigError(field, `${path} must hold at least one key`);
  return keys;
}

/**
 * Refuses parent chains that come back on themselves: each edge has at most one parent, so
 * a walk from an edge either ends at an edge without one or returns to where it started.
 */
function checkParents(edges: EdgeConfig[], edgeIds: Set<string>): void {
  const parentOf = new Map(edges.map((e) => [e.id, e.parent]));
  edges.forEach((e, i) => {
    if (e.parent === undefined) return;
    if (!edgeIds.has(e.parent)) throw new ConfigError(`edges[${i}].parent`, `"${e.parent}" is not an edge id`);
    if (e.parent === e.id) throw new ConfigError(`edges[${i}].parent`, 'an edge cannot be its own parent');
  });
  edges.forEach((e, i) => {
    const chain = [e.id];
    for (let next = e.parent; next !== undefined && chain.length <= edges.length; next = parentOf.get(next)) {
      chain.push(next);
      if (next === e.id) throw new ConfigError(`edges[${i}].parent`, `cycle ${chain.join(' → ')}`);
    }
  });
}

function prefetch(v: Json, field: string, sliceBytes: number): PrefetchConfig {
  const p = v === undefined ? {} : obj(v, field);
  const d = DEFAULT_PREFETCH;
  const maxBytesInFlight = posInt(p.maxBytesInFlight, `${field}.maxBytesInFlight`, d.maxBytesInFlight);
  // Slices are fetched whole: a budget below one could never let a prefetch start.
  if (maxBytesInFlight < sliceBytes) throw new ConfigError(`${field}.maxBytesInFlight`, `must be at least sliceBytes (${sliceBytes})`);
  return {
    enabled: bool(p.enabled, `${field}.enabled`, d.enabled),
    maxBufferMs: posInt(p.maxBufferMs, `${field}.maxBufferMs`, d.maxBufferMs),
    maxConcurrent: posInt(p.maxConcurrent, `${field}.maxConcurrent`, d.maxConcurrent),
    maxBytesInFlight,
  };
}

function parentBreaker(v: Json, field: string): ParentBreakerConfig {
  const b = v === undefined ? {} : obj(v, field);
  return {
    failures: posInt(b.failures, `${field}.failures`, 3),
    coolDownMs: posInt(b.coolDownMs, `${field}.coolDownMs`, 5000),
  };
}

function tlsBlock(v: Json, field: string, baseDir: string, clientCertAllowed: boolean): TlsConfig {
  const t = obj(v, field);
  const requireClientCert = bool(t.requireClientCert, `${field}.requireClientCert`, false);
  if (requireClientCert && !clientCertAllowed) throw new ConfigError(`${field}.requireClientCert`, 'only the origin can require client certificates');
  const caFile = t.caFile === undefined ? undefined : dir(t.caFile, `${field}.caFile`, baseDir);
  if (requireClientCert && caFile === undefined) throw new ConfigError(`${field}.caFile`, 'missing: requireClientCert checks client certificates against it');
  return {
    certFile: dir(t.certFile, `${field}.certFile`, baseDir),
    keyFile: dir(t.keyFile, `${field}.keyFile`, baseDir),
    ...(caFile === undefined ? {} : { caFile }),
    requireClientCert,
  };
}

/**
 * `tls` and `adminTls` of a service. An https:// URL needs its certificate; adminTls defaults to
 * tls (without requireClientCert: admin callers are operators and steering, not edges).
 */
function serviceTls(raw: Record<string, Json>, field: string, urls: { url: string; adminUrl: string }, baseDir: string, clientCertAllowed = false): ServiceTls {
  const tls = raw.tls === undefined ? undefined : tlsBlock(raw.tls, `${field}.tls`, baseDir, clientCertAllowed);
  const ownAdmin = raw.adminTls === undefined ? undefined : tlsBlock(raw.adminTls, `${field}.adminTls`, baseDir, false);
  const adminTls = ownAdmin ?? (tls === undefined ? undefined : { ...tls, requireClientCert: false });
  if (urls.url.startsWith('https:') && tls === undefined) throw new ConfigError(`${field}.tls`, `missing: ${field}.url is https://`);
  if (urls.adminUrl.startsWith('https:') && adminTls === undefined) throw new ConfigError(`${field}.adminTls`, `missing: ${field}.adminUrl is https:// (give adminTls or tls)`);
  return { ...(tls === undefined ? {} : { tls }), ...(adminTls === undefined ? {} : { adminTls }) };
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Validates a parsed cluster file. `baseDir` resolves relative data directories. */
export function validateCluster(raw: Json, baseDir: string): ClusterConfig {
  const root = obj(raw, '(cluster file)');

  const s = obj(root.signing, 'signing');
  let keys: Record<string, string>;
  let keysFile: string | undefined;
  if (s.keysFile !== undefined) {
    if (s.keys !== undefined) throw new ConfigError('signing.keysFile', 'use signing.keys or signing.keysFile, not both');
    keysFile = dir(s.keysFile, 'signing.keysFile', baseDir);
    keys = readKeysFile(keysFile);
  } else {
    if (s.keys === undefined) throw new ConfigError('signing.keys', 'missing: give the keys inline or, better, in signing.keysFile');
    keys = signingKeys(obj(s.keys, 'signing.keys'), (k) => `signing.keys.${k}`);
    if (Object.keys(keys).length === 0) throw new ConfigError('signing.keys', 'must hold at least one key');
  }
  const activeKey = str(s.activeKey, 'signing.activeKey');
  // Own keys only: `in` would also find "constructor" on every object.
  if (!Object.hasOwn(keys, activeKey)) {
    throw new ConfigError('signing.activeKey', `"${activeKey}" is not in ${keysFile === undefined ? 'signing.keys' : keysFile}`);
  }
  const signing: SigningConfig = {
    keys,
    ...(keysFile === undefined ? {} : { keysFile }),
    activeKey,
    ttlSeconds: posInt(s.ttlSeconds, 'signing.ttlSeconds', 6 * 3600),
    required: bool(s.required, 'signing.required', true),
  };

  const o = obj(root.origin, 'origin');
  const of = o.fill === undefined ? {} : obj(o.fill, 'origin.fill');
  const halfLife = of.halfLifeDays === undefined ? 2 : of.halfLifeDays;
  if (typeof halfLife !== 'number' || !(halfLife > 0 && halfLife <= 365)) {
    throw new ConfigError('origin.fill.halfLifeDays', 'must be a number of days above 0 and at most 365');
  }
  const stayRatio = of.stayRatio === undefined ? 0.8 : of.stayRatio;
  if (typeof stayRatio !== 'number' || !(stayRatio > 0 && stayRatio <= 1)) throw new ConfigError('origin.fill.stayRatio', 'must be a number above 0 and at most 1 (0.8: a placed title stays while above 0.8× the cut)');
  const enterRatio = of.enterRatio === undefined ? Math.max(1, stayRatio) : of.enterRatio;
  if (typeof enterRatio !== 'number' || !(enterRatio >= stayRatio && enterRatio <= 4)) throw new ConfigError('origin.fill.enterRatio', `must be a number from stayRatio (${stayRatio}) to 4 (1: a new title enters above the cut)`);
  const originUrls = { url: httpUrl(o.url, 'origin.url'), adminUrl: httpUrl(o.adminUrl, 'origin.adminUrl') };
  const origin: OriginConfig = {
    ...originUrls,
    ...serviceTls(o, 'origin', originUrls, baseDir, true),
    dataDir: dir(o.dataDir, 'origin.dataDir', baseDir),
    fill: {
      headroomRatio: ratio(of.headroomRatio, 'origin.fill.headroomRatio', 0.1),
      halfLifeDays: halfLife,
      stayRatio,
      enterRatio,
      maxChurnRatio: ratio(of.maxChurnRatio, 'origin.fill.maxChurnRatio', 0.02),
      spareReplicas: bool(of.spareReplicas, 'origin.fill.spareReplicas', true),
    },
    maxSegmentsPerTitle: posInt(o.maxSegmentsPerTitle, 'origin.maxSegmentsPerTitle', 50_000),
  };
  if (o.storage !== undefined) origin.storage = originStorage(o.storage, 'origin.storage');

  const st = obj(root.steering, 'steering');
  const th = st.thresholds === undefined ? {} : obj(st.thresholds, 'steering.thresholds');
  const steeringUrls = { url: httpUrl(st.url, 'steering.url'), adminUrl: httpUrl(st.adminUrl, 'steering.adminUrl') };
  const steering: SteeringConfig = {
    ...steeringUrls,
    ...serviceTls(st, 'steering', steeringUrls, baseDir),
    healthIntervalMs: posInt(st.healthIntervalMs, 'steering.healthIntervalMs', 500),
    downAfter: posInt(st.downAfter, 'steering.downAfter', 2),
    upAfter: posInt(st.upAfter, 'steering.upAfter', 2),
    trustedProxies: arr(st.trustedProxies, 'steering.trustedProxies', []).map((p, i) =>
      checkPrefix(p, `steering.trustedProxies[${i}]`),
    ),
    thresholds: {
      maxErrorRatio: ratio(th.maxErrorRatio, 'steering.thresholds.maxErrorRatio', 0.5),
      minRequestsForErrorRatio: posInt(th.minRequestsForErrorRatio, 'steering.thresholds.minRequestsForErrorRatio', 50),
      maxDiskUsedRatio: ratio(th.maxDiskUsedRatio, 'steering.thresholds.maxDiskUsedRatio', 0.99),
      maxConnections: posInt(th.maxConnections, 'steering.thresholds.maxConnections', 20000),
    },
    steeringTtlSeconds: posInt(st.steeringTtlSeconds, 'steering.steeringTtlSeconds', 10),
    mpdCacheBytes: posInt(st.mpdCacheBytes, 'steering.mpdCacheBytes', 128 * 1024 * 1024),
    playDedupSeconds: nonNegInt(st.playDedupSeconds, 'steering.playDedupSeconds', 3600),
    playConfirmSeconds: posInt(st.playConfirmSeconds, 'steering.playConfirmSeconds', 600),
    maxTrackedPlays: posInt(st.maxTrackedPlays, 'steering.maxTrackedPlays', 100_000),
    balanceFactor: balanceFactor(st.balanceFactor, 'steering.balanceFactor'),
    incidentTtlSeconds: posInt(st.incidentTtlSeconds, 'steering.incidentTtlSeconds', 2),
    decisionBudget: decisionBudget(st.decisionBudget, 'steering.decisionBudget'),
  };

  const ispIds = new Set<string>();
  const isps: IspConfig[] = arr(root.isps, 'isps').map((v, i) => {
    const f = `isps[${i}]`;
    const isp = obj(v, f);
    const ispId = id(isp.id, `${f}.id`);
    if (ispIds.has(ispId)) throw new ConfigError(`${f}.id`, `"${ispId}" is used twice`);
    ispIds.add(ispId);
    return {
      id: ispId,
      prefixes: arr(isp.prefixes, `${f}.prefixes`).map((p, j) => checkPrefix(p, `${f}.prefixes[${j}]`)),
      pinnedTitles: arr(isp.pinnedTitles, `${f}.pinnedTitles`, []).map((t, j) => str(t, `${f}.pinnedTitles[${j}]`)),
    };
  });
  const defaultIsp = optStr(root.defaultIsp, 'defaultIsp');
  if (defaultIsp !== undefined && !ispIds.has(defaultIsp)) {
    throw new ConfigError('defaultIsp', `"${defaultIsp}" is not an ISP in isps`);
  }

  const edgeIds = new Set<string>();
  const edgesRaw = arr(root.edges, 'edges');
  if (edgesRaw.length === 0) throw new ConfigError('edges', 'must list at least one edge');
  const edges: EdgeConfig[] = edgesRaw.map((v, i) => {
    const f = `edges[${i}]`;
    const e = obj(v, f);
    const edgeId = id(e.id, `${f}.id`);
    if (edgeIds.has(edgeId)) throw new ConfigError(`${f}.id`, `"${edgeId}" is used twice`);
    edgeIds.add(edgeId);
    const isp = str(e.isp, `${f}.isp`);
    if (!ispIds.has(isp)) throw new ConfigError(`${f}.isp`, `"${isp}" is not an ISP in isps`);
    const fill = e.fill === undefined ? {} : obj(e.fill, `${f}.fill`);
    const sliceBytes = posInt(e.sliceBytes, `${f}.sliceBytes`, DEFAULT_SLICE_BYTES);
    if (sliceBytes < 4096 || sliceBytes > 64 * 1024 * 1024) {
      throw new ConfigError(`${f}.sliceBytes`, 'must be between 4096 and 67108864');
    }
    const urls = { url: httpUrl(e.url, `${f}.url`), adminUrl: httpUrl(e.adminUrl, `${f}.adminUrl`) };
    return {
      id: edgeId,
      isp,
      ...urls,
      ...serviceTls(e, f, urls, baseDir),
      dataDir: dir(e.dataDir, `${f}.dataDir`, baseDir),
      diskBytes: posInt(e.diskBytes, `${f}.diskBytes`),
      memoryBytes: posInt(e.memoryBytes, `${f}.memoryBytes`),
      timezone: timezone(e.timezone, `${f}.timezone`),
      fill: {
        window: fill.window === undefined ? '02:00-06:00' : fillWindow(fill.window, `${f}.fill.window`),
        bytesPerSec: posInt(fill.bytesPerSec, `${f}.fill.bytesPerSec`, 50_000_000),
        pollIntervalMs: posInt(fill.pollIntervalMs, `${f}.fill.pollIntervalMs`, 600_000),
      },
      sliceBytes,
      parent: optStr(e.parent, `${f}.parent`),
      parentBreaker: parentBreaker(e.parentBreaker, `${f}.parentBreaker`),
      ...(e.workers === undefined ? {} : { workers: workerCount(e.workers, `${f}.workers`) }),
      prefetch: prefetch(e.prefetch, `${f}.prefetch`, sliceBytes),
    };
  });
  checkParents(edges, edgeIds);
  // Whoever reads the origin's objects must show it a certificate: edges and steering (manifests).
  if (origin.tls?.requireClientCert) {
    if (steering.tls === undefined) throw new ConfigError('steering.tls', 'missing: origin.tls.requireClientCert is true, and steering shows the origin this certificate');
    edges.forEach((e, i) => {
      if (e.tls === undefined) throw new ConfigError(`edges[${i}].tls`, 'missing: origin.tls.requireClientCert is true, and the edge shows the origin this certificate');
    });
  }
  if (origin.tls?.requireClientCert && !origin.url.startsWith('https:')) {
    throw new ConfigError('origin.tls.requireClientCert', 'needs origin.url to be https:// (client certificates come with TLS)');
  }

  const a = root.admin === undefined ? {} : obj(root.admin, 'admin');
  const admin: AdminConfig = {
    openHealth: bool(a.openHealth, 'admin.openHealth', true),
    openMetrics: bool(a.openMetrics, 'admin.openMetrics', false),
  };

  const l = root.log === undefined ? {} : obj(root.log, 'log');
  const level = l.level === undefined ? 'info' : str(l.level, 'log.level');
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError('log.level', `must be one of ${LOG_LEVELS.join(', ')}`);
  }

  const h = root.http === undefined ? {} : obj(root.http, 'http');
  const d = DEFAULT_HTTP_LIMITS;
  const http: HttpConfig = {
    maxConnections: posInt(h.maxConnections, 'http.maxConnections', d.maxConnections),
    headersTimeoutMs: posInt(h.headersTimeoutMs, 'http.headersTimeoutMs', d.headersTimeoutMs),
    requestTimeoutMs: posInt(h.requestTimeoutMs, 'http.requestTimeoutMs', d.requestTimeoutMs),
    keepAliveTimeoutMs: posInt(h.keepAliveTimeoutMs, 'http.keepAliveTimeoutMs', d.keepAliveTimeoutMs),
    maxEventLoopDelayMs: posInt(h.maxEventLoopDelayMs, 'http.maxEventLoopDelayMs', d.maxEventLoopDelayMs),
    overloadSamples: posInt(h.overloadSamples, 'http.overloadSamples', d.overloadSamples),
    retryAfterSec: posInt(h.retryAfterSec, 'http.retryAfterSec', d.retryAfterSec),
  };
  // Node refuses a server whose headers may take longer than the whole request.
  if (http.headersTimeoutMs > http.requestTimeoutMs) {
    throw new ConfigError('http.headersTimeoutMs', `must not exceed http.requestTimeoutMs (${http.requestTimeoutMs})`);
  }

  return { signing, origin, steering, isps, defaultIsp, edges, admin, log: { level: level as LogConfig['level'] }, http, baseDir };
}

/** Reads and validates a cluster file; every failure is a ConfigError. */
export function loadClusterFile(path: string): ClusterConfig {
  let text: string;
  let mode: number;
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    mode = fstatSync(fd).mode;
    text = readFileSync(fd, 'utf8');
  } catch (err) {
    throw new ConfigError('(cluster file)', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  let raw: Json;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    // V8's message quotes the text around the error, which may be an inline signing secret:
    // only where it is goes into the log (and into POST /reload's answer).
    const where = /at position \d+(?: \(line \d+ column \d+\))?/.exec((err as Error).message)?.[0];
    throw new ConfigError('(cluster file)', `${path} is not valid JSON${where ? ` (${where})` : ''}`);
  }
  const config = validateCluster(raw, dirname(resolve(path)));
  // Then what validateCluster does not check (unknown keys, a prefix two ISPs claim, two services
  // on one port…: config-check.ts); `reelcdn check` lists them all, a role says the first.
  const problems = problemsBeyondValidation(raw, config.baseDir);
  if (problems.length > 0) throw refusal(problems, path);
  const warnings: string[] = [];
  // Existing clusters keep working with inline keys; the operator hears why that is a risk.
  if (config.signing.keysFile === undefined && readableByOthers(mode)) {
    warnings.push(
      `${path} holds signing secrets (signing.keys) and is readable by group or others (mode ${octalMode(mode)}): ` +
        'move the keys to signing.keysFile (mode 0600) or chmod 600 the cluster file',
    );
  }
  return { ...config, warnings };
}

export function findEdge(config: ClusterConfig, edgeId: string): EdgeConfig {
  const edge = config.edges.find((e) => e.id === edgeId);
  if (!edge) throw new ConfigError('--id', `"${edgeId}" is not an edge in the cluster file (${config.edges.map((e) => e.id).join(', ')})`);
  return edge;
}

/** Where an edge is in the cluster file (`edges[2]`), for problems that name its fields; by id, since workers get copies. */
export function edgeField(config: ClusterConfig, edgeId: string): string {
  return `edges[${config.edges.findIndex((e) => e.id === edgeId)}]`;
}

/** host and port a service should listen on, from its configured URL. */
export function listenAddress(url: string): { host: string; port: number } {
  const u = new URL(url);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
  return { host, port };
}

import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parseWindow } from '../edge/fill-window.js';
import { parseIPv4, parseIPv6 } from '../steering/prefix-table.js';
import { clusterSchema } from './config-schema.js';
import { type ClusterConfig, ConfigError, checkPrefix, dir, fillWindow, httpUrl, readKeysFile, timezone, validateCluster } from './config.js';

/**
 * Every problem of a cluster file at once (`reelcdn check`, and each role's start through
 * loadClusterFile): the schema (types, ranges, unknown keys), then what a schema cannot say —
 * names that must exist, ids used twice, a prefix two ISPs claim, parents (unknown, in another
 * ISP, in a cycle), two services on one host:port, an ISP no edge serves, fill windows the fill
 * agent cannot parse, URLs, TLS blocks an https:// URL needs. Last, validateCluster itself: what
 * it refuses is refused here too, so `check` never says ok to a file a role would not start on.
 *
 * One problem per field (the first found), and none under a field already refused: an edge
 * that is not an object is one problem, not one per missing key.
 */

type Raw = Record<string, unknown>;

const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);
const asObject = (v: unknown): Raw => (isObject(v) ? v : {});
const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const nonEmptyString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/** Problems in the order found, one per field. */
class Problems {
  readonly list: ConfigError[] = [];
  /** Those only `reelcdn check` refuses (see CHECK_ONLY). */
  readonly checkOnly = new Set<ConfigError>();
  private readonly fields = new Set<string>();
  /** Fields whose problem hides what is under them: all but CHECK_ONLY's, which a start drops. */
  private readonly refused = new Set<string>();

  add(field: string, problem: string, checkOnly = false): void {
    if (this.covers(field)) return;
    const error = new ConfigError(field, problem);
    this.list.push(error);
    this.fields.add(field);
    if (checkOnly) this.checkOnly.add(error);
    else this.refused.add(field);
  }

  /** Runs one of config.ts's field checks and keeps what it throws. */
  attempt<T>(check: () => T): T | undefined {
    try {
      return check();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.add(err.field, err.problem);
      return undefined;
    }
  }

  /** Whether the field, or one holding it (`edges[1]` holds `edges[1].fill.window`), already has a problem. */
  private covers(field: string): boolean {
    if (this.fields.has(field) || this.refused.has('(cluster file)')) return true;
    for (let k = 0; k < field.length; k++) {
      if ((field[k] === '.' || field[k] === '[') && this.refused.has(field.slice(0, k))) return true;
    }
    return false;
  }
}

/** Every problem of a parsed cluster file; empty when it is good. `baseDir` resolves relative paths (signing.keysFile is read). */
export function checkCluster(raw: unknown, baseDir: string): ConfigError[] {
  const problems = new Problems();
  schemaProblems(raw, problems);
  if (isObject(raw)) crossChecks(raw, baseDir, problems);
  try {
    validateCluster(raw, baseDir);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.add(err.field, err.problem);
  }
  return inFileOrder(problems.list);
}

/**
 * What a role refuses at start beyond validateCluster (the schema's unknown keys, the cross
 * checks), for a file validateCluster accepted: loadClusterFile runs validateCluster first, so a
 * file with a problem it knows keeps being refused with the same one line as before.
 *
 * CHECK_ONLY: two findings only `reelcdn check` refuses. Two services on one host:port — the
 * role that binds it stops at listen with its own line (EADDRINUSE), while the others need not:
 * a steering replica started with --listen binds elsewhere, and a service behind a proxy is
 * reached at its URL but listens on another address. An ISP without edges — its clients are
 * sent to other ISPs' edges, which is where a reload that retires an ISP's last edge leaves it.
 */
export function problemsBeyondValidation(raw: unknown, baseDir: string): ConfigError[] {
  const problems = new Problems();
  schemaProblems(raw, problems);
  if (isObject(raw)) crossChecks(raw, baseDir, problems, true);
  return inFileOrder(problems.list.filter((p) => !problems.checkOnly.has(p)));
}

const CHECK_ONLY = true;

const SECTIONS = ['(cluster file)', '$schema', 'signing', 'origin', 'steering', 'isps', 'defaultIsp', 'edges', 'admin', 'log', 'http'];

/** Problems by section as the file is laid out, then by entry (`edges[2]` before `edges[10]`, `prefixes[3]` before `prefixes[12]`); otherwise as found. */
function inFileOrder(list: ConfigError[]): ConfigError[] {
  const rank = (field: string) => {
    const section = SECTIONS.indexOf(/^[^.[]*/.exec(field)![0]);
    return [section < 0 ? SECTIONS.length : section, ...[...field.matchAll(/\[(\d+)\]/g)].map((m) => Number(m[1]))];
  };
  const compare = (a: number[], b: number[]) => {
    for (let k = 0; k < Math.min(a.length, b.length); k++) if (a[k] !== b[k]) return a[k]! - b[k]!;
    return 0;
  };
  return list
    .map((p, i) => ({ p, i, r: rank(p.field) }))
    .sort((a, b) => compare(a.r, b.r) || a.i - b.i)
    .map((x) => x.p);
}

// ---------------------------------------------------------------- the schema

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (compiled === undefined) {
    const ajv = new Ajv({ allErrors: true, verbose: true, strict: true });
    // VS Code's annotations: the wording of a problem, for editors and for problemOf.
    ajv.addKeyword('errorMessage');
    ajv.addKeyword('patternErrorMessage');
    compiled = ajv.compile(clusterSchema());
  }
  return compiled;
}

function schemaProblems(raw: unknown, problems: Problems): void {
  const validate = validator();
  if (validate(raw)) return;
  for (const err of validate.errors ?? []) {
    const found = problemOf(err, raw);
    if (found) problems.add(found.field, found.problem);
  }
}

interface SchemaNode {
  type?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  enum?: unknown[];
  pattern?: string;
  errorMessage?: string;
  patternErrorMessage?: string;
  properties?: Record<string, SchemaNode>;
}

/** One ajv error in the project's words: `edges[1].diskBytes: must be a positive integer`. */
export function problemOf(err: ErrorObject, raw: unknown): { field: string; problem: string } | undefined {
  const node = (err.parentSchema ?? {}) as SchemaNode;
  const at = fieldOf(err.instancePath, raw);
  const child = (key: string) => (at === '' ? key : `${at}.${key}`);
  const propertyName = (err as ErrorObject & { propertyName?: string }).propertyName;
  switch (err.keyword) {
    // Wrappers: the errors they wrap say what is wrong.
    case 'propertyNames':
    case 'if':
      return undefined;
    case 'additionalProperties': {
      const key = String(err.params.additionalProperty);
      const near = closest(key, Object.keys(node.properties ?? {}));
      return { field: child(key), problem: `unknown key${near ? ` (did you mean "${near}"?)` : ''}` };
    }
    case 'required': {
      const key = String(err.params.missingProperty);
      // Missing reads as the wrong type: validateCluster says `must be a positive integer` for both.
      return { field: child(key), problem: typeProblem(node.properties?.[key] ?? {}) };
    }
    case 'pattern': {
      const value = propertyName ?? err.data;
      const field = propertyName === undefined ? at || '(cluster file)' : child(propertyName);
      return { field, problem: `"${String(value)}" ${node.patternErrorMessage ?? `must match ${node.pattern}`}` };
    }
    case 'type':
      return { field: at || '(cluster file)', problem: node.errorMessage ?? typeProblem(node) };
    case 'enum':
      return { field: at, problem: node.errorMessage ?? `must be one of ${(node.enum ?? []).map(String).join(', ')}` };
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
      return { field: at, problem: node.errorMessage ?? rangeProblem(node) };
    case 'minLength':
      return { field: at, problem: node.errorMessage ?? (node.minLength === 1 ? typeProblem(node) : `must be at least ${node.minLength} characters`) };
    default:
      return { field: at || '(cluster file)', problem: node.errorMessage ?? err.message ?? err.keyword };
  }
}

/** How validateCluster words a value of the wrong type (or a missing one). */
function typeProblem(node: SchemaNode): string {
  if (node.errorMessage !== undefined) return node.errorMessage;
  switch (node.type) {
    case 'string':
      return node.minLength === undefined ? 'must be a string' : 'must be a non-empty string';
    case 'integer':
      return node.minimum === 0 ? 'must be a non-negative integer' : 'must be a positive integer';
    case 'number':
      return node.minimum === 0 && node.maximum === 1 ? 'must be a number from 0 to 1' : 'must be a number';
    case 'boolean':
      return 'must be true or false';
    case 'array':
      return 'must be an array';
    default:
      return 'must be an object';
  }
}

function rangeProblem(node: SchemaNode): string {
  if (node.type === 'integer' && node.minimum !== undefined && node.maximum !== undefined && node.minimum > 0) {
    return `must be between ${node.minimum} and ${node.maximum}`;
  }
  return typeProblem(node);
}

/** `/edges/1/diskBytes` → `edges[1].diskBytes`; indexes only where the file has an array. */
function fieldOf(pointer: string, raw: unknown): string {
  if (pointer === '') return '';
  let field = '';
  let here: unknown = raw;
  for (const part of pointer.slice(1).split('/')) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    field = Array.isArray(here) ? `${field}[${key}]` : field === '' ? key : `${field}.${key}`;
    here = isObject(here) || Array.isArray(here) ? (here as Record<string, unknown>)[key] : undefined;
  }
  return field;
}

/** The known key a typo most likely meant, if one is close (`sliceByte` → `sliceBytes`). */
function closest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return bestDistance <= Math.max(1, Math.floor(key.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

// ---------------------------------------------------------------- what a schema cannot say

function crossChecks(root: Raw, baseDir: string, p: Problems, validated = false): void {
  signingChecks(asObject(root.signing), baseDir, p);

  const origin = asObject(root.origin);
  urlChecks(origin, 'origin', p);
  p.attempt(() => dir(origin.dataDir, 'origin.dataDir', baseDir));
  tlsChecks(origin, 'origin', baseDir, p, true);
  const fill = asObject(origin.fill);
  const stay = typeof fill.stayRatio === 'number' ? fill.stayRatio : 0.8;
  if (typeof fill.enterRatio === 'number' && fill.enterRatio < stay) {
    p.add('origin.fill.enterRatio', `must be a number from stayRatio (${stay}) to 4 (1: a new title enters above the cut)`);
  }
  const storage = asObject(origin.storage);
  if (storage.endpoint !== undefined) p.attempt(() => httpUrl(storage.endpoint, 'origin.storage.endpoint'));

  const steering = asObject(root.steering);
  urlChecks(steering, 'steering', p);
  tlsChecks(steering, 'steering', baseDir, p);
  asArray(steering.trustedProxies).forEach((v, i) => p.attempt(() => checkPrefix(v, `steering.trustedProxies[${i}]`)));

  const isps = asArray(root.isps).map(asObject);
  const ispIds = ids(isps, 'isps', p);
  ispPrefixChecks(isps, p, validated);
  if (nonEmptyString(root.defaultIsp) && !ispIds.has(root.defaultIsp)) p.add('defaultIsp', `"${root.defaultIsp}" is not an ISP in isps`);

  if (Array.isArray(root.edges) && root.edges.length === 0) p.add('edges', 'must list at least one edge');
  const edges = asArray(root.edges).map(asObject);
  const edgeIds = ids(edges, 'edges', p);
  edges.forEach((e, i) => {
    const f = `edges[${i}]`;
    if (nonEmptyString(e.isp) && !ispIds.has(e.isp)) p.add(`${f}.isp`, `"${e.isp}" is not an ISP in isps`);
    urlChecks(e, f, p);
    p.attempt(() => dir(e.dataDir, `${f}.dataDir`, baseDir));
    tlsChecks(e, f, baseDir, p);
    const zone = e.timezone === undefined || nonEmptyString(e.timezone) ? p.attempt(() => timezone(e.timezone, `${f}.timezone`)) : undefined;
    const window = asObject(e.fill).window;
    if (window !== undefined && p.attempt(() => fillWindow(window, `${f}.fill.window`)) !== undefined) {
      // The fill agent's own parser: a window the config accepts but the agent cannot read crashed edges once (24:30).
      try {
        parseWindow(window as string, zone ?? 'UTC');
      } catch (err) {
        p.add(`${f}.fill.window`, (err as Error).message.replace(/^fill window /, ''));
      }
    }
  });
  parentChecks(edges, edgeIds, p);
  isps.forEach((isp, i) => {
    if (edges.length > 0 && nonEmptyString(isp.id) && !edges.some((e) => e.isp === isp.id)) p.add(`isps[${i}]`, `"${isp.id}" has no edges (no edges[].isp names it): its clients would be sent to other ISPs' edges`, CHECK_ONLY);
  });

  // Whoever reads the origin's objects must show it a certificate: edges and steering (manifests).
  const originTls = asObject(origin.tls);
  if (originTls.requireClientCert === true) {
    if (steering.tls === undefined) p.add('steering.tls', 'missing: origin.tls.requireClientCert is true, and steering shows the origin this certificate');
    edges.forEach((e, i) => {
      if (e.tls === undefined) p.add(`edges[${i}].tls`, 'missing: origin.tls.requireClientCert is true, and the edge shows the origin this certificate');
    });
    if (nonEmptyString(origin.url) && !origin.url.startsWith('https:')) p.add('origin.tls.requireClientCert', 'needs origin.url to be https:// (client certificates come with TLS)');
  }

  listenChecks(root, p);

  const http = asObject(root.http);
  const headers = typeof http.headersTimeoutMs === 'number' ? http.headersTimeoutMs : 10_000;
  const request = typeof http.requestTimeoutMs === 'number' ? http.requestTimeoutMs : 30_000;
  if (headers > request) p.add('http.headersTimeoutMs', `must not exceed http.requestTimeoutMs (${request})`);
}

function signingChecks(s: Raw, baseDir: string, p: Problems): void {
  let keys: Record<string, unknown> | undefined;
  let from = 'signing.keys';
  if (s.keysFile !== undefined) {
    if (s.keys !== undefined) p.add('signing.keysFile', 'use signing.keys or signing.keysFile, not both');
    const file = p.attempt(() => dir(s.keysFile, 'signing.keysFile', baseDir));
    if (file !== undefined) {
      keys = p.attempt(() => readKeysFile(file));
      from = file;
    }
  } else if (s.keys === undefined) {
    p.add('signing.keys', 'missing: give the keys inline or, better, in signing.keysFile');
  } else if (isObject(s.keys)) {
    keys = s.keys;
    if (Object.keys(keys).length === 0) p.add('signing.keys', 'must hold at least one key');
  }
  // No keys at all is the problem then, not the active one.
  if (keys !== undefined && Object.keys(keys).length > 0 && nonEmptyString(s.activeKey) && !Object.hasOwn(keys, s.activeKey)) {
    p.add('signing.activeKey', `"${s.activeKey}" is not in ${from}`);
  }
}

function urlChecks(service: Raw, field: string, p: Problems): void {
  p.attempt(() => httpUrl(service.url, `${field}.url`));
  p.attempt(() => httpUrl(service.adminUrl, `${field}.adminUrl`));
}

/** As config.ts serviceTls: an https:// URL needs its block; client certificates are the origin's. */
function tlsChecks(service: Raw, field: string, baseDir: string, p: Problems, clientCertAllowed = false): void {
  for (const [key, allowed] of [['tls', clientCertAllowed], ['adminTls', false]] as const) {
    if (!isObject(service[key])) continue;
    const t = service[key];
    const f = `${field}.${key}`;
    if (t.requireClientCert === true && !allowed) p.add(`${f}.requireClientCert`, 'only the origin can require client certificates');
    if (t.requireClientCert === true && t.caFile === undefined) p.add(`${f}.caFile`, 'missing: requireClientCert checks client certificates against it');
    for (const file of ['caFile', 'certFile', 'keyFile']) if (t[file] !== undefined) p.attempt(() => dir(t[file], `${f}.${file}`, baseDir));
  }
  const https = (v: unknown) => typeof v === 'string' && v.startsWith('https:');
  if (https(service.url) && service.tls === undefined) p.add(`${field}.tls`, `missing: ${field}.url is https://`);
  if (https(service.adminUrl) && service.adminTls === undefined && service.tls === undefined) {
    p.add(`${field}.adminTls`, `missing: ${field}.adminUrl is https:// (give adminTls or tls)`);
  }
}

/** The ids of `isps` or `edges`; one used twice is a problem where it comes again. */
function ids(entries: Raw[], field: string, p: Problems): Set<string> {
  const seen = new Set<string>();
  entries.forEach((e, i) => {
    if (!nonEmptyString(e.id)) return;
    if (seen.has(e.id)) p.add(`${field}[${i}].id`, `"${e.id}" is used twice`);
    seen.add(e.id);
  });
  return seen;
}

/**
 * A prefix two ISPs list (after normalising: 10.0.0.1/8 is 10.0.0.0/8): steering could not say
 * whose clients those are. Nested prefixes are fine (the longest match wins), and so is one ISP
 * listing a prefix twice. `validated`: validateCluster has checked every prefix already.
 *
 * ISPs may list a million prefixes and a start waits for this: IPv4 networks are numbers, found
 * twice by sorting them (a Map of a million number keys costs ten times as much); only the
 * networks found twice are walked again, in file order, to name where each comes again.
 */
function ispPrefixChecks(isps: Raw[], p: Problems, validated: boolean): void {
  const v4 = { key: [] as number[], isp: [] as number[], index: [] as number[] };
  const v6Owner = new Map<string, number>();
  const again = (i: number, j: number, first: number) =>
    p.add(`isps[${i}].prefixes[${j}]`, `"${String(asArray(isps[i]!.prefixes)[j])}" is also listed by isps[${first}] ("${String(isps[first]!.id)}"): a prefix belongs to one ISP`);
  for (let i = 0; i < isps.length; i++) {
    const prefixes = asArray(isps[i]!.prefixes);
    for (let j = 0; j < prefixes.length; j++) {
      let prefix = prefixes[j];
      if (!validated) {
        try {
          prefix = checkPrefix(prefix, `isps[${i}].prefixes[${j}]`);
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          p.add(err.field, err.problem);
          continue;
        }
      }
      const key = networkKey(prefix as string);
      if (key === MAPPED_TOO_SHORT) {
        p.add(`isps[${i}].prefixes[${j}]`, `"${String(prefixes[j])}" is IPv4-mapped: its length must be 96-128 (steering reads ::ffff:a.b.c.d/n as a.b.c.d/(n-96))`);
      } else if (typeof key === 'number') {
        v4.key.push(key);
        v4.isp.push(i);
        v4.index.push(j);
      } else if (key !== undefined) {
        const first = v6Owner.get(key);
        if (first === undefined) v6Owner.set(key, i);
        else if (first !== i) again(i, j, first);
      }
    }
  }
  // key × slots + isp stays exact below 2^53 (keys are under 2^38) for up to 2^15 ISPs; past that, every key is walked.
  const slots = 2 ** Math.ceil(Math.log2(isps.length + 1));
  let twice: Set<number> | undefined;
  if (slots <= 2 ** 15) {
    twice = new Set();
    const sorted = Float64Array.from(v4.key, (k, n) => k * slots + v4.isp[n]!).sort();
    for (let n = 1; n < sorted.length; n++) {
      const key = Math.floor(sorted[n]! / slots);
      if (key === Math.floor(sorted[n - 1]! / slots) && sorted[n] !== sorted[n - 1]) twice.add(key);
    }
    if (twice.size === 0) return;
  }
  const owner = new Map<number, number>();
  for (let n = 0; n < v4.key.length; n++) {
    const key = v4.key[n]!;
    if (twice !== undefined && !twice.has(key)) continue;
    const first = owner.get(key);
    if (first === undefined) owner.set(key, v4.isp[n]!);
    else if (first !== v4.isp[n]) again(v4.isp[n]!, v4.index[n]!, first);
  }
}

/** An IPv4-mapped IPv6 prefix shorter than /96, which steering's table refuses. */
const MAPPED_TOO_SHORT = Symbol('mapped prefix shorter than /96');

/**
 * The network of a prefix ("a.b.c.d/n", "v6::/n", or a bare address) with its host bits
 * cleared: a number for IPv4 (network × 64 + length, under 2^38), text for IPv6. An IPv4-mapped
 * prefix (::ffff:a.b.c.d/n, in any IPv6 spelling) is the IPv4 prefix a.b.c.d/(n-96), as
 * steering's table reads it (prefix-table.ts). Undefined for what is no prefix.
 */
function networkKey(prefix: string): number | string | typeof MAPPED_TOO_SHORT | undefined {
  const slash = prefix.indexOf('/');
  const addr = slash < 0 ? prefix : prefix.slice(0, slash);
  const v6 = addr.includes(':');
  const len = slash < 0 ? (v6 ? 128 : 32) : Number(prefix.slice(slash + 1));
  const v4Key = (n: number, bits: number) => (bits === 0 ? 0 : (n & ((0xffffffff << (32 - bits)) >>> 0)) >>> 0) * 64 + bits;
  if (!v6) {
    const n = parseIPv4(addr);
    if (n < 0 || !(len >= 0 && len <= 32)) return undefined;
    return v4Key(n, len);
  }
  const w = [0, 0, 0, 0];
  if (!parseIPv6(addr, w) || !(len >= 0 && len <= 128)) return undefined;
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return len < 96 ? MAPPED_TOO_SHORT : v4Key(w[3]!, len - 96);
  const masked = w.map((word, k) => {
    const bits = Math.min(32, Math.max(0, len - 32 * k));
    return bits === 0 ? 0 : (word & ((0xffffffff << (32 - bits)) >>> 0)) >>> 0;
  });
  return `${masked.join('.')}/${len}`;
}

/** Parents: an edge of the same ISP, not the edge itself, no cycle (each cycle named once). */
function parentChecks(edges: Raw[], edgeIds: Set<string>, p: Problems): void {
  const byId = new Map<string, { index: number; edge: Raw }>();
  edges.forEach((edge, index) => {
    if (nonEmptyString(edge.id) && !byId.has(edge.id)) byId.set(edge.id, { index, edge });
  });
  const good = new Set<number>();
  edges.forEach((e, i) => {
    const parent = e.parent;
    if (!nonEmptyString(parent)) return;
    const f = `edges[${i}].parent`;
    if (!edgeIds.has(parent)) return p.add(f, `"${parent}" is not an edge id`);
    if (parent === e.id) return p.add(f, 'an edge cannot be its own parent');
    const theirs = byId.get(parent)!.edge.isp;
    if (nonEmptyString(e.isp) && nonEmptyString(theirs) && theirs !== e.isp) {
      return p.add(f, `"${parent}" is an edge of ${theirs}, not of ${e.isp}: a parent serves the edges of its own ISP`);
    }
    good.add(i);
  });
  const inReportedCycle = new Set<number>();
  edges.forEach((e, i) => {
    if (!good.has(i) || inReportedCycle.has(i)) return;
    const chain = [String(e.id)];
    const members = [i];
    for (let next = e.parent; nonEmptyString(next) && chain.length <= edges.length; ) {
      const hop = byId.get(next);
      chain.push(next);
      if (next === e.id) {
        members.forEach((m) => inReportedCycle.add(m));
        p.add(`edges[${i}].parent`, `cycle ${chain.join(' → ')}`);
        return;
      }
      if (hop === undefined) return;
      members.push(hop.index);
      next = hop.edge.parent;
    }
  });
}

/** Two listeners on one host:port cannot both start (port 0: the system picks, never a clash). */
function listenChecks(root: Raw, p: Problems): void {
  const listeners: [string, unknown][] = [];
  for (const name of ['origin', 'steering']) {
    const s = asObject(root[name]);
    listeners.push([`${name}.url`, s.url], [`${name}.adminUrl`, s.adminUrl]);
  }
  asArray(root.edges).forEach((v, i) => {
    const e = asObject(v);
    listeners.push([`edges[${i}].url`, e.url], [`edges[${i}].adminUrl`, e.adminUrl]);
  });
  const taken = new Map<string, string>();
  for (const [field, url] of listeners) {
    const address = hostPort(url);
    if (address === undefined || address.endsWith(':0')) continue;
    const first = taken.get(address);
    if (first === undefined) taken.set(address, field);
    else p.add(field, `${address} is also ${first}: two services cannot listen on one address`, CHECK_ONLY);
  }
}

function hostPort(url: unknown): string | undefined {
  if (typeof url !== 'string') return undefined;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  return `${u.hostname.toLowerCase()}:${port}`;
}

/** What a role says of a file with problems: the first, in one line, and how many more `reelcdn check` lists. */
export function refusal(problems: ConfigError[], path: string): ConfigError {
  const first = problems[0]!;
  if (problems.length === 1) return first;
  const more = problems.length - 1;
  return new ConfigError(first.field, `${first.problem} (and ${more} more problem${more === 1 ? '' : 's'}: reelcdn check --config ${path})`);
}

/** One line about a good file: what it holds. */
export function summary(config: ClusterConfig): string {
  const services = [config.origin, config.steering, ...config.edges];
  const https = services.filter((s) => s.url.startsWith('https:') || s.adminUrl.startsWith('https:')).length;
  const prefixes = config.isps.reduce((n, i) => n + i.prefixes.length, 0);
  const count = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
  return [
    `${count(config.edges.length, 'edge', 'edges')} in ${count(config.isps.length, 'ISP', 'ISPs')} (${count(prefixes, 'prefix', 'prefixes')})`,
    `origin ${config.origin.url}`,
    `steering ${config.steering.url}`,
    `${count(Object.keys(config.signing.keys).length, 'signing key', 'signing keys')} (active ${config.signing.activeKey})`,
    `HTTPS on ${https} of ${services.length} services`,
  ].join(', ');
}

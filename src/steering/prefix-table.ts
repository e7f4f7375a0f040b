/**
 * Longest-prefix match over IPv4 and IPv6 prefixes (docs/contract.md "Client → ISP → node").
 *
 * Prefixes are either nested or disjoint, so a set of them cuts the address space into
 * disjoint intervals, each owned by its innermost (longest) prefix. The table stores the
 * start of every interval in a sorted typed array and answers with one binary search:
 * O(log n) per lookup, no BigInt, no per-node objects, ~13 bytes per prefix (IPv4).
 * IPv6 addresses are four 32-bit words compared word by word.
 *
 * Build is "load, verify, then swap": `buildPrefixTable` throws a PrefixTableError on any
 * bad or conflicting entry and the caller keeps the old table.
 */

/** A problem with one entry of a prefix list. */
export class PrefixTableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PrefixTableError';
  }
}

/** One input entry: `prefix` like "10.1.0.0/16" or "2001:db8::/32", owned by `value`. */
export interface PrefixEntry<T> {
  prefix: string;
  value: T;
}

/** Parses dotted-quad IPv4 to an unsigned 32-bit number, or -1. */
export function parseIPv4(s: string): number {
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1; // leading zero: ambiguous (octal in some parsers)
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return n * 256 + part;
}

/**
 * Parses an IPv6 address into `out` (4 words, most significant first). Accepts "::",
 * an embedded dotted IPv4 tail and a zone id ("%eth0", ignored). Returns false when malformed.
 */
export function parseIPv6(s: string, out: Uint32Array | number[]): boolean {
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  if (s.length < 2 || s.length > 45) return false;
  const groups: number[] = [];
  let doubleAt = -1;
  let i = 0;
  if (s.startsWith('::')) {
    doubleAt = 0;
    i = 2;
    if (s.length === 2) {
      out[0] = out[1] = out[2] = out[3] = 0;
      return true;
    }
  } else if (s.charCodeAt(0) === 58) {
    return false;
  }
  while (i < s.length) {
    let j = i;
    let v = 0;
    while (j < s.length && j - i < 5) {
      const c = s.charCodeAt(j);
      let d: number;
      if (c >= 48 && c <= 57) d = c - 48;
      else if (c >= 97 && c <= 102) d = c - 87;
      else if (c >= 65 && c <= 70) d = c - 55;
      else break;
      v = v * 16 + d;
      j++;
    }
    if (j < s.length && s.charCodeAt(j) === 46) {
      // dotted IPv4 tail
      const v4 = parseIPv4(s.slice(i));
      if (v4 < 0) return false;
      groups.push(v4 >>> 16, v4 & 0xffff);
      i = s.length;
      break;
    }
    if (j === i || j - i > 4) return false;
    groups.push(v);
    i = j;
    if (i === s.length) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i < s.length && s.charCodeAt(i) === 58) {
      if (doubleAt >= 0) return false;
      doubleAt = groups.length;
      i++;
      if (i === s.length) break;
    } else if (i === s.length) {
      return false; // trailing single colon
    }
  }
  if (doubleAt >= 0) {
    if (groups.length > 7) return false;
    const fill = 8 - groups.length;
    groups.splice(doubleAt, 0, ...new Array<number>(fill).fill(0));
  } else if (groups.length !== 8) {
    return false;
  }
  for (let w = 0; w < 4; w++) out[w] = ((groups[2 * w]! << 16) | groups[2 * w + 1]!) >>> 0;
  return true;
}

/** A parsed address: IPv4 as one number, IPv6 as four words. IPv4-mapped IPv6 is IPv4. */
export type ParsedAddress = { v: 4; n: number } | { v: 6; w: Uint32Array };

/** Parses an IPv4 or IPv6 address, normalising `::ffff:a.b.c.d` to IPv4. Undefined if malformed. */
export function parseAddress(s: string): ParsedAddress | undefined {
  if (s.indexOf(':') < 0) {
    const n = parseIPv4(s);
    return n < 0 ? undefined : { v: 4, n };
  }
  const w = new Uint32Array(4);
  if (!parseIPv6(s, w)) return undefined;
  if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return { v: 4, n: w[3]! };
  return { v: 6, w };
}

interface ParsedPrefix {
  first: number[];
  last: number[];
  len: number;
  value: number;
}

function parsePrefix(p: string, valueIndex: number): { v: 4 | 6; prefix: ParsedPrefix } {
  const slash = p.indexOf('/');
  const addrText = slash < 0 ? p : p.slice(0, slash);
  const addr = parseAddress(addrText);
  if (!addr) throw new PrefixTableError(`"${p}" is not an IPv4 or IPv6 prefix`);
  const mapped = addr.v === 4 && addrText.includes(':');
  const max = addr.v === 4 ? 32 : 128;
  const lenText = slash < 0 ? String(mapped ? 128 : max) : p.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText)) throw new PrefixTableError(`"${p}" has a bad prefix length`);
  let len = Number(lenText);
  if (mapped) {
    // ::ffff:a.b.c.d/n names the IPv4 prefix a.b.c.d/(n-96)
    if (len < 96 || len > 128) throw new PrefixTableError(`"${p}": an IPv4-mapped prefix needs a length of 96-128`);
    len -= 96;
  }
  if (len > max) throw new PrefixTableError(`"${p}" has a prefix length above ${max}`);
  const words = addr.v === 4 ? [addr.n] : Array.from(addr.w);
  const first: number[] = [];
  const last: number[] = [];
  for (let w = 0; w < words.length; w++) {
    const bits = Math.max(0, Math.min(32, len - 32 * w));
    const mask = bits === 0 ? 0 : bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    first.push((words[w]! & mask) >>> 0);
    last.push(((words[w]! & mask) | ~mask) >>> 0);
  }
  // Host bits below the prefix length are ignored ("10.1.2.3/16" is 10.1.0.0/16), as routers do.
  return { v: addr.v, prefix: { first, last, len, value: valueIndex } };
}

function formatFirst(v: 4 | 6, w: number[]): string {
  if (v === 4) return [w[0]! >>> 24, (w[0]! >>> 16) & 255, (w[0]! >>> 8) & 255, w[0]! & 255].join('.');
  const g: string[] = [];
  for (const x of w) g.push((x >>> 16).toString(16), (x & 0xffff).toString(16));
  return g.join(':');
}

function cmp(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return 0;
}

/** a + 1, or undefined on overflow past the top of the address space. */
function inc(a: number[]): number[] | undefined {
  const r = a.slice();
  for (let i = r.length - 1; i >= 0; i--) {
    if (r[i] !== 0xffffffff) {
      r[i] = r[i]! + 1;
      return r;
    }
    r[i] = 0;
  }
  return undefined;
}

/** Disjoint intervals of one family: `starts[k*width..]` begins interval k, owned by `owners[k]` (-1: none). */
interface FamilyIndex {
  width: number;
  starts: Uint32Array;
  owners: Int32Array;
  count: number;
}

function buildFamily(prefixes: ParsedPrefix[], width: number, describe: (p: ParsedPrefix) => string): FamilyIndex {
  // Sort by first address, enclosing (shorter) prefixes before the ones they contain.
  prefixes.sort((a, b) => cmp(a.first, b.first) || a.len - b.len);
  const outStarts: number[] = [];
  const outOwners: number[] = [];
  const emit = (pos: number[], owner: number) => {
    const k = outOwners.length;
    if (k > 0) {
      let same = true;
      for (let i = 0; i < width; i++) if (outStarts[(k - 1) * width + i] !== pos[i]) same = false;
      if (same) {
        outOwners[k - 1] = owner;
        return;
      }
      if (outOwners[k - 1] === owner) return;
    }
    for (let i = 0; i < width; i++) outStarts.push(pos[i]!);
    outOwners.push(owner);
  };
  const stack: ParsedPrefix[] = [];
  const close = (until: number[] | undefined) => {
    while (stack.length > 0 && (until === undefined || cmp(stack[stack.length - 1]!.last, until) < 0)) {
      const t = stack.pop()!;
      const after = inc(t.last);
      if (after) emit(after, stack.length > 0 ? stack[stack.length - 1]!.value : -1);
    }
  };
  let prev: ParsedPrefix | undefined;
  for (const p of prefixes) {
    if (prev && prev.len === p.len && cmp(prev.first, p.first) === 0) {
      if (prev.value !== p.value) throw new PrefixTableError(`${describe(p)} is listed for two different owners`);
      continue; // an exact duplicate for the same owner is harmless
    }
    prev = p;
    close(p.first);
    emit(p.first, p.value);
    stack.push(p);
  }
  close(undefined);
  const count = outOwners.length;
  return { width, starts: Uint32Array.from(outStarts), owners: Int32Array.from(outOwners), count };
}

/**
 * An immutable longest-prefix-match table from addresses to values of type T.
 * Build it with `buildPrefixTable`; swap the reference to replace it.
 */
export class PrefixTable<T> {
  private readonly scratch = new Uint32Array(4);

  /** @internal use buildPrefixTable */
  constructor(
    private readonly values: T[],
    private readonly v4: FamilyIndex,
    private readonly v6: FamilyIndex,
    /** Number of distinct prefixes the table was built from. */
    readonly size: number,
  ) {}

  /** The value of the longest prefix holding `address`, or undefined (also for a malformed address). */
  lookup(address: string): T | undefined {
    if (address.indexOf(':') < 0) {
      const n = parseIPv4(address);
      return n < 0 ? undefined : this.lookupV4(n);
    }
    const w = this.scratch;
    if (!parseIPv6(address, w)) return undefined;
    if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return this.lookupV4(w[3]!);
    return this.lookupV6(w);
  }

  /** Whether any prefix holds `address`. */
  has(address: string): boolean {
    return this.lookup(address) !== undefined;
  }

  /** Lookup of an already-parsed IPv4 address (unsigned 32-bit). */
  lookupV4(n: number): T | undefined {
    const { starts, owners, count } = this.v4;
    let lo = 0;
    let hi = count - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid]! <= n) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (found < 0) return undefined;
    const o = owners[found]!;
    return o < 0 ? undefined : this.values[o];
  }

  /** Lookup of an already-parsed IPv6 address (four words). */
  lookupV6(w: Uint32Array | number[]): T | undefined {
    const { starts, owners, count } = this.v6;
    let lo = 0;
    let hi = count - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const b = mid * 4;
      let c = 0;
      for (let i = 0; i < 4; i++) {
        const s = starts[b + i]!;
        const x = w[i]!;
        if (s !== x) {
          c = s < x ? -1 : 1;
          break;
        }
      }
      if (c <= 0) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (found < 0) return undefined;
    const o = owners[found]!;
    return o < 0 ? undefined : this.values[o];
  }
}

/**
 * Builds and verifies a table. Values are compared by identity (===) to tell owners apart:
 * the same prefix listed for two different owners is an error; for the same owner, a no-op.
 */
export function buildPrefixTable<T>(entries: Iterable<PrefixEntry<T>>): PrefixTable<T> {
  const values: T[] = [];
  const valueIndex = new Map<T, number>();
  const v4: ParsedPrefix[] = [];
  const v6: ParsedPrefix[] = [];
  for (const e of entries) {
    let idx = valueIndex.get(e.value);
    if (idx === undefined) {
      idx = values.length;
      values.push(e.value);
      valueIndex.set(e.value, idx);
    }
    const { v, prefix } = parsePrefix(e.prefix, idx);
    (v === 4 ? v4 : v6).push(prefix);
  }
  const describe = (v: 4 | 6) => (p: ParsedPrefix) => `${formatFirst(v, p.first)}/${p.len}`;
  const i4 = buildFamily(v4, 1, describe(4));
  const i6 = buildFamily(v6, 4, describe(6));
  return new PrefixTable(values, i4, i6, v4.length + v6.length);
}

/**
 * The longest of `prefixes` that holds `address`, as written (the first so written when two name
 * one network), or null; a prefix that does not parse is passed over. A scan, for explain: the
 * lookup table keeps no prefix text.
 */
export function longestMatchingPrefix(prefixes: readonly string[], address: string): string | null {
  const a = parseAddress(address);
  if (!a) return null;
  const words = a.v === 4 ? [a.n] : Array.from(a.w);
  let best: string | null = null;
  let bestLen = -1;
  for (const text of prefixes) {
    let p: ReturnType<typeof parsePrefix>;
    try {
      p = parsePrefix(text, 0);
    } catch {
      continue;
    }
    if (p.v !== a.v || p.prefix.len <= bestLen) continue;
    if (cmp(p.prefix.first, words) <= 0 && cmp(words, p.prefix.last) <= 0) {
      best = text;
      bestLen = p.prefix.len;
    }
  }
  return best;
}

/** The ISP table of a cluster: prefix → ISP id. */
export function buildIspTable(isps: ReadonlyArray<{ id: string; prefixes: readonly string[] }>): PrefixTable<string> {
  const entries: PrefixEntry<string>[] = [];
  for (const isp of isps) for (const prefix of isp.prefixes) entries.push({ prefix, value: isp.id });
  return buildPrefixTable(entries);
}

/** A membership table (e.g. trusted proxies): every listed prefix maps to true. */
export function buildPrefixSet(prefixes: readonly string[]): PrefixTable<true> {
  return buildPrefixTable(prefixes.map((prefix) => ({ prefix, value: true as const })));
}

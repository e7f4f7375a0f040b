import type { IncomingHttpHeaders } from 'node:http';

/**
 * Common Media Client Data (CTA-5004): what a player says about itself with each request, as a
 * `CMCD=` query parameter or in four headers. The text is a Structured Field dictionary
 * (RFC 8941); this reader follows that grammar (byte sequences aside: CMCD has none) but is lenient where players are sloppy: a
 * member it cannot read is skipped up to the next top-level comma and the rest still counts,
 * so a malformed value never fails the request it rides on.
 */

/** A token value (ot=v, sf=h, st=v): kept apart from strings, as the spec types them. */
export interface CmcdToken {
  readonly token: string;
}
export type CmcdItem = string | number | boolean | CmcdToken;
/** Inner lists (CMCD v2) are arrays. */
export type CmcdValue = CmcdItem | readonly CmcdItem[];

/** What one request said. Typed fields are set only when the key was present and well-formed for its type. */
export interface Cmcd {
  /** Every well-formed key, known or custom; a repeated key: the last one (as RFC 8941 dictionaries do). */
  readonly keys: Map<string, CmcdValue>;
  br?: number;
  bl?: number;
  bs?: boolean;
  cid?: string;
  d?: number;
  dl?: number;
  mtp?: number;
  /** Relative URL of the next object, its percent-encoding undone. */
  nor?: string;
  /** Next range request, "<start>-<end>" as sent (end may be empty). */
  nrr?: string;
  ot?: string;
  pr?: number;
  rtp?: number;
  sf?: string;
  sid?: string;
  st?: string;
  su?: boolean;
  tb?: number;
  v?: number;
}

type TypedKey = Exclude<keyof Cmcd, 'keys'>;
type KeyType = 'int' | 'dec' | 'bool' | 'string' | 'token';

/** The spec's type of each version-1 key; a known key with a value of another type is ignored. */
const KEY_TYPES: Record<TypedKey, KeyType> = {
  br: 'int',
  bl: 'int',
  bs: 'bool',
  cid: 'string',
  d: 'int',
  dl: 'int',
  mtp: 'int',
  nor: 'string',
  nrr: 'string',
  ot: 'token',
  pr: 'dec',
  rtp: 'int',
  sf: 'token',
  sid: 'string',
  st: 'token',
  su: 'bool',
  tb: 'int',
  v: 'int',
};

/** Which header shard carries each key when a client sends headers (CTA-5004 §3). */
const SHARD_OF: Record<TypedKey, 'CMCD-Object' | 'CMCD-Request' | 'CMCD-Session' | 'CMCD-Status'> = {
  br: 'CMCD-Object',
  d: 'CMCD-Object',
  ot: 'CMCD-Object',
  tb: 'CMCD-Object',
  bl: 'CMCD-Request',
  dl: 'CMCD-Request',
  mtp: 'CMCD-Request',
  nor: 'CMCD-Request',
  nrr: 'CMCD-Request',
  su: 'CMCD-Request',
  cid: 'CMCD-Session',
  pr: 'CMCD-Session',
  sf: 'CMCD-Session',
  sid: 'CMCD-Session',
  st: 'CMCD-Session',
  v: 'CMCD-Session',
  bs: 'CMCD-Status',
  rtp: 'CMCD-Status',
};

/** Client data bounds: a value or a dictionary past them is not worth the memory it would take. */
export const CMCD_LIMITS = { maxStringLength: 1024, maxKeys: 64, maxInnerListItems: 32, maxKeyLength: 64 } as const;

const HEADER_NAMES = ['cmcd-object', 'cmcd-request', 'cmcd-session', 'cmcd-status'] as const;

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isLcAlpha(c: number): boolean {
  return c >= 97 && c <= 122;
}
function isAlpha(c: number): boolean {
  return isLcAlpha(c) || (c >= 65 && c <= 90);
}
/** RFC 9110 tchar, plus ':' and '/' which SF tokens allow. */
function isTokenChar(c: number): boolean {
  return isAlpha(c) || isDigit(c) || c === 58 || c === 47 || '!#$%&\'*+-.^_`|~'.includes(String.fromCharCode(c));
}
/**
 * SF keys are lower-case; CTA-5004's own example of a custom key (`com.example-myNumericKey`)
 * is not, so upper-case letters are accepted after the first character.
 */
function isKeyChar(c: number): boolean {
  return isAlpha(c) || isDigit(c) || c === 95 || c === 45 || c === 46 || c === 42;
}

/** Thrown inside the reader only, caught per member; one instance, so junk input costs no stack traces. */
class Malformed {}
const MALFORMED = new Malformed();

/** A cursor over one dictionary text. */
class Reader {
  i = 0;
  constructor(readonly s: string) {}

  get done(): boolean {
    return this.i >= this.s.length;
  }
  peek(): number {
    return this.s.charCodeAt(this.i);
  }
  skipSpaces(): void {
    while (this.s.charCodeAt(this.i) === 32) this.i++;
  }
  skipOws(): void {
    for (let c = this.peek(); c === 32 || c === 9; c = this.peek()) this.i++;
  }

  key(): string {
    const start = this.i;
    const first = this.peek();
    if (!(isLcAlpha(first) || first === 42)) throw MALFORMED;
    this.i++;
    while (!this.done && isKeyChar(this.peek())) this.i++;
    if (this.i - start > CMCD_LIMITS.maxKeyLength) throw MALFORMED;
    return this.s.slice(start, this.i);
  }

  bareItem(): CmcdItem {
    const c = this.peek();
    if (c === 34 /* " */) return this.string();
    if (c === 45 /* - */ || isDigit(c)) return this.number();
    if (c === 63 /* ? */) return this.boolean();
    if (isAlpha(c) || c === 42) return this.token();
    throw MALFORMED;
  }

  string(): string {
    this.i++; // opening quote
    let out = '';
    let from = this.i;
    for (;;) {
      if (this.done) throw MALFORMED;
      const c = this.peek();
      if (c === 34) {
        out += this.s.slice(from, this.i);
        this.i++;
        break;
      }
      if (c === 92 /* \ */) {
        out += this.s.slice(from, this.i);
        const next = this.s.charCodeAt(this.i + 1);
        if (next !== 34 && next !== 92) throw MALFORMED;
        out += String.fromCharCode(next);
        this.i += 2;
        from = this.i;
        continue;
      }
      if (c < 0x20 || c > 0x7e) throw MALFORMED;
      this.i++;
      if (this.i - from + out.length > CMCD_LIMITS.maxStringLength) throw MALFORMED;
    }
    if (out.length > CMCD_LIMITS.maxStringLength) throw MALFORMED;
    return out;
  }

  number(): number {
    const start = this.i;
    if (this.peek() === 45) this.i++;
    const intStart = this.i;
    while (isDigit(this.peek())) this.i++;
    const intDigits = this.i - intStart;
    if (intDigits === 0) throw MALFORMED;
    if (this.peek() === 46 /* . */) {
      if (intDigits > 12) throw MALFORMED;
      this.i++;
      const fracStart = this.i;
      while (isDigit(this.peek())) this.i++;
      const frac = this.i - fracStart;
      if (frac < 1 || frac > 3) throw MALFORMED;
    } else if (intDigits > 15) {
      throw MALFORMED;
    }
    return Number(this.s.slice(start, this.i));
  }

  boolean(): boolean {
    const v = this.s.charCodeAt(this.i + 1);
    if (v !== 48 && v !== 49) throw MALFORMED;
    this.i += 2;
    return v === 49;
  }

  token(): CmcdToken {
    const start = this.i;
    this.i++;
    while (!this.done && isTokenChar(this.peek())) this.i++;
    if (this.i - start > CMCD_LIMITS.maxStringLength) throw MALFORMED;
    return { token: this.s.slice(start, this.i) };
  }

  innerList(): CmcdItem[] {
    this.i++; // '('
    const items: CmcdItem[] = [];
    for (;;) {
      this.skipSpaces();
      if (this.done) throw MALFORMED;
      if (this.peek() === 41 /* ) */) {
        this.i++;
        this.parameters();
        return items;
      }
      if (items.length >= CMCD_LIMITS.maxInnerListItems) throw MALFORMED;
      items.push(this.bareItem());
      this.parameters();
      const c = this.peek();
      if (c !== 32 && c !== 41) throw MALFORMED;
    }
  }

  /** Parameters carry nothing CMCD defines: read to stay in step, then dropped. */
  parameters(): void {
    while (this.peek() === 59 /* ; */) {
      this.i++;
      this.skipSpaces();
      this.key();
      if (this.peek() === 61 /* = */) {
        this.i++;
        this.bareItem();
      }
    }
  }

  /** Skips past the next comma that is outside quotes and parentheses (recovery after a bad member). */
  skipMember(): void {
    let depth = 0;
    while (!this.done) {
      const c = this.peek();
      if (c === 34) {
        this.i++;
        while (!this.done && this.peek() !== 34) this.i += this.peek() === 92 ? 2 : 1;
      } else if (c === 40) depth++;
      else if (c === 41) depth = Math.max(0, depth - 1);
      else if (c === 44 && depth === 0) return;
      this.i++;
    }
  }
}

export function emptyCmcd(): Cmcd {
  return { keys: new Map() };
}

/** Parses one CMCD dictionary text (a query value after decoding, or one header's value) into `into`. Never throws. */
export function parseCmcdText(text: string, into: Cmcd = emptyCmcd()): Cmcd {
  const r = new Reader(text);
  r.skipOws();
  while (!r.done) {
    const start = r.i;
    try {
      const key = r.key();
      let value: CmcdValue = true;
      if (r.peek() === 61 /* = */) {
        r.i++;
        value = r.peek() === 40 /* ( */ ? r.innerList() : r.bareItem();
      }
      r.parameters();
      r.skipOws();
      if (!r.done && r.peek() !== 44) throw MALFORMED;
      if (into.keys.size < CMCD_LIMITS.maxKeys || into.keys.has(key)) {
        into.keys.set(key, value);
        setTyped(into, key, value);
      }
    } catch (err) {
      if (!(err instanceof Malformed)) throw err;
      r.i = start;
      r.skipMember();
    }
    if (r.done) break;
    r.i++; // the comma
    r.skipOws();
  }
  return into;
}

/** Sets (or, for a repeated key with a now ill-typed value, clears) the typed field of a known key. */
function setTyped(c: Cmcd, key: string, value: CmcdValue): void {
  const type = (KEY_TYPES as Record<string, KeyType | undefined>)[key];
  if (type === undefined) return;
  const k = key as TypedKey;
  // CMCD v2 sends some keys as inner lists (one value per track): the first stands for the object.
  const item = Array.isArray(value) ? (value as CmcdItem[])[0] : (value as CmcdItem);
  let typed = typedValue(type, item);
  if (k === 'nor' && typed !== undefined) typed = decodeNor(typed as string);
  if (typed === undefined) delete (c as Partial<Record<TypedKey, unknown>>)[k];
  else (c as Partial<Record<TypedKey, unknown>>)[k] = typed;
}

function typedValue(type: KeyType, item: CmcdItem | undefined): CmcdItem | undefined {
  switch (type) {
    case 'int':
    case 'dec':
      return typeof item === 'number' && item >= 0 && (type === 'dec' || Number.isInteger(item)) ? item : undefined;
    case 'bool':
      return typeof item === 'boolean' ? item : undefined;
    case 'string':
      return typeof item === 'string' ? item : undefined;
    case 'token':
      return typeof item === 'object' && item !== null ? item.token : undefined;
  }
}

/** `nor` is URL-encoded inside its quotes; an undecodable one is dropped (there is nothing safe to fetch by it). */
function decodeNor(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** Index of the value of the first `CMCD=` query parameter in `url`, or -1. */
function cmcdParamAt(url: string): number {
  const q = url.indexOf('?');
  if (q < 0) return -1;
  for (let i = url.indexOf('CMCD=', q); i >= 0; i = url.indexOf('CMCD=', i + 5)) {
    const before = url.charCodeAt(i - 1);
    if (before === 63 /* ? */ || before === 38 /* & */) return i + 5;
  }
  return -1;
}

/** True when `url`'s query has a CMCD parameter. */
export function hasCmcdQuery(url: string): boolean {
  return url.indexOf('CMCD=') >= 0 && cmcdParamAt(url) >= 0;
}

/** `url` without its CMCD query parameters: the form to key anything by URL (CMCD differs every request). */
export function withoutCmcdQuery(url: string): string {
  if (!hasCmcdQuery(url)) return url;
  const q = url.indexOf('?');
  const kept = url
    .slice(q + 1)
    .split('&')
    .filter((p) => !p.startsWith('CMCD='));
  return kept.length === 0 ? url.slice(0, q) : `${url.slice(0, q)}?${kept.join('&')}`;
}

function queryValue(url: string): string | undefined {
  const at = cmcdParamAt(url);
  if (at < 0) return undefined;
  let end = url.indexOf('&', at);
  if (end < 0) end = url.length;
  const hash = url.indexOf('#', at);
  if (hash >= 0 && hash < end) end = hash;
  try {
    // As URLSearchParams reads a query: '+' is a space.
    return decodeURIComponent(url.slice(at, end).replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/**
 * The CMCD a request carries: the `CMCD` query parameter and the four CMCD-* headers merged (a
 * key in two places: the header's). Undefined when the request carries none — for those, the
 * cost is one indexOf and four property reads.
 */
export function readCmcd(url: string, headers: IncomingHttpHeaders): Cmcd | undefined {
  let c: Cmcd | undefined;
  if (url.indexOf('CMCD=') >= 0) {
    const text = queryValue(url);
    if (text !== undefined) c = parseCmcdText(text);
  }
  for (const name of HEADER_NAMES) {
    const h = headers[name];
    if (h === undefined) continue;
    c = parseCmcdText(Array.isArray(h) ? h.join(',') : h, c);
  }
  // `?CMCD=` or a header of nothing but junk says nothing: counted as no CMCD at all.
  return c !== undefined && c.keys.size > 0 ? c : undefined;
}

type CmcdFields = Partial<Omit<Cmcd, 'keys'>>;

/** The spec asks for these rounded to the nearest 100 (ms, kbps) to limit fingerprinting. */
const ROUNDED_TO_100 = new Set<string>(['bl', 'dl', 'mtp', 'rtp']);

function quote(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** An item as SF writes it after `key=` (booleans `?1`/`?0`); undefined for a number SF cannot carry. */
function bareItem(key: string, value: CmcdItem): string | undefined {
  const type = (KEY_TYPES as Record<string, KeyType | undefined>)[key];
  if (typeof value === 'boolean') return value ? '?1' : '?0';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return undefined;
    if (ROUNDED_TO_100.has(key)) return String(Math.round(value / 100) * 100);
    // SF integers have no fraction; SF decimals at most three digits of one.
    return String(type === 'int' || Number.isInteger(value) ? Math.round(value) : Math.round(value * 1000) / 1000);
  }
  if (typeof value === 'object') return value.token;
  if (type === 'token') return value;
  return quote(key === 'nor' ? encodeURIComponent(value) : value);
}

function formatMember(key: string, value: CmcdValue): string | undefined {
  if (Array.isArray(value)) {
    const items = (value as CmcdItem[]).map((v) => bareItem(key, v));
    return items.includes(undefined) ? undefined : `${key}=(${items.join(' ')})`;
  }
  // A true boolean is the bare key; CMCD leaves a false one of its own keys out.
  if (value === true) return key;
  if (value === false) return (KEY_TYPES as Record<string, KeyType | undefined>)[key] === 'bool' ? undefined : `${key}=?0`;
  const item = bareItem(key, value as CmcdItem);
  return item === undefined ? undefined : `${key}=${item}`;
}

/**
 * Serializes CMCD as a client sends it (the bench's player): keys sorted, strings quoted and
 * escaped, a false boolean left out, `nor` URL-encoded. The query form is `CMCD=` + encodeURIComponent(this).
 */
export function formatCmcd(c: CmcdFields & { custom?: Record<string, CmcdValue> }): string {
  const members = new Map<string, CmcdValue>();
  for (const [k, v] of Object.entries(c)) if (k !== 'custom' && v !== undefined) members.set(k, v as CmcdValue);
  for (const [k, v] of Object.entries(c.custom ?? {})) members.set(k, v);
  return [...members.keys()]
    .sort()
    .map((k) => formatMember(k, members.get(k)!))
    .filter((m): m is string => m !== undefined)
    .join(',');
}

/** The same data as the four headers (only shards with something in them). */
export function cmcdHeaders(c: CmcdFields): Record<string, string> {
  const shards: Record<string, CmcdFields> = {};
  for (const [k, v] of Object.entries(c)) {
    const shard = (SHARD_OF as Record<string, string | undefined>)[k];
    if (shard === undefined || v === undefined) continue;
    (shards[shard] ??= {})[k as TypedKey] = v as never;
  }
  const out: Record<string, string> = {};
  for (const [name, fields] of Object.entries(shards)) {
    const text = formatCmcd(fields);
    if (text !== '') out[name] = text;
  }
  return out;
}

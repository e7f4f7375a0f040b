import { write as fsWrite, writeSync } from 'node:fs';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** Longest a log line waits before it is written, ms (operators and tests tail the logs). */
export const LOG_FLUSH_MS = 25;
/** Bytes of lines that are written at once, without waiting for LOG_FLUSH_MS. */
export const LOG_BATCH_BYTES = 64 * 1024;
/** Bytes of lines held for a reader that does not keep up; lines past it are dropped, not queued. */
export const LOG_MAX_PENDING_BYTES = 32 * 1024 * 1024;
/** Lines are encoded into buffers of this size, one after another. */
const LOG_CHUNK_BYTES = 256 * 1024;

/**
 * Log lines to a file descriptor, written asynchronously in batches: a line is encoded at once
 * into a buffer that gathers the batch, and the lines of up to LOG_FLUSH_MS (or LOG_BATCH_BYTES)
 * go out in one write(2) — a write costs about the same for one line as for a hundred, and a busy
 * edge logs every request. (Kept as strings until the batch, the lines outlived the young
 * generation: the garbage collector copied every one of them, and joining them walked each
 * line's pieces again long after they left the cache — about a tenth of a hot answer's cost.)
 * It never blocks on its reader: while a write is in flight the next batch gathers. (pino's own
 * asynchronous destination, sonic-boom, measured dearer per line than a synchronous write here;
 * this keeps pino's lines and does only what we need.) `flush()` resolves once every line given
 * is written; at exit, the lines not yet handed to write(2) are written synchronously, so only
 * a SIGKILL can lose lines (the last LOG_FLUSH_MS of them).
 */
export class LogLines implements DestinationStream {
  /** Filled chunks not yet written, then `chunk`'s bytes from `start` to `used`. */
  private sealed: Buffer[] = [];
  private chunk = Buffer.allocUnsafeSlow(LOG_CHUNK_BYTES);
  private start = 0;
  private used = 0;
  private pendingBytes = 0;
  private writing = false;
  private timer: NodeJS.Timeout | undefined;
  private broken = false;
  private waiters: (() => void)[] = [];

  constructor(private readonly fd: number) {}

  write(line: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    const buf = this.reserve(3 * line.length);
    if (buf !== undefined) this.commit(this.used + buf.write(line, this.used));
  }

  /**
   * Room for a line of at most `bytes` bytes, which the caller writes into the returned buffer
   * from `end` on and gives with `commit` — a line written piece by piece, without a string.
   * Undefined: the line is dropped (logging broke, or a reader fell LOG_MAX_PENDING_BYTES behind).
   */
  reserve(bytes: number): Buffer | undefined {
    if (this.broken || this.pendingBytes > LOG_MAX_PENDING_BYTES) return undefined;
    if (this.used + bytes > this.chunk.length) this.seal(bytes);
    return this.chunk;
  }

  /** Where a reserved line starts in the buffer `reserve` gave. */
  get end(): number {
    return this.used;
  }

  /** The reserved line ends at `end` (exclusive). */
  commit(end: number): void {
    this.pendingBytes += end - this.used;
    this.used = end;
    if (this.writing) return;
    if (this.pendingBytes >= LOG_BATCH_BYTES) this.writeBatch();
    else if (!this.timer) {
      this.timer = setTimeout(this.kick, LOG_FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Starts a new chunk of at least `room` bytes; the lines of the last go with the next batch. */
  private seal(room: number): void {
    if (this.used > this.start) this.sealed.push(this.chunk.subarray(this.start, this.used));
    this.chunk = Buffer.allocUnsafeSlow(Math.max(LOG_CHUNK_BYTES, room));
    this.start = this.used = 0;
  }

  /** The bytes of every line not yet handed to write(2), as one buffer; the chunk fills on after them. */
  private take(): Buffer {
    const parts = this.sealed;
    if (this.used > this.start) parts.push(this.chunk.subarray(this.start, this.used));
    this.sealed = [];
    this.start = this.used;
    this.pendingBytes = 0;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Resolves when every line written so far has reached the descriptor. */
  flush(): Promise<void> {
    if (!this.writing && this.pendingBytes === 0) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.waiters.push(resolve));
    this.writeBatch();
    return done;
  }

  /** Writes what is not yet in flight, synchronously: for `exit`, when no callback will run. */
  flushSync(): void {
    if (this.broken || this.pendingBytes === 0) return;
    const data = this.take();
    let off = 0;
    for (let tries = 0; off < data.length && tries < 1000; tries++) {
      try {
        off += writeSync(this.fd, data, off, data.length - off);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      }
    }
  }

  private readonly kick = (): void => {
    this.timer = undefined;
    this.writeBatch();
  };

  private writeBatch(): void {
    if (this.writing) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pendingBytes === 0 || this.broken) {
      for (const w of this.waiters.splice(0)) w();
      return;
    }
    const data = this.take();
    this.writing = true;
    this.writeFrom(data, 0);
  }

  private writeFrom(data: Buffer, off: number): void {
    fsWrite(this.fd, data, off, data.length - off, null, (err, n) => {
      if (err) {
        // A full non-blocking pipe: try again shortly. A reader gone (EPIPE) or another failure:
        // logging stops rather than failing the service.
        if (err.code === 'EAGAIN') {
          setTimeout(() => this.writeFrom(data, off), 1);
          return;
        }
        this.broken = true;
        this.sealed = [];
        this.start = this.used;
        this.pendingBytes = 0;
      } else if (off + n < data.length) {
        this.writeFrom(data, off + n);
        return;
      }
      this.writing = false;
      // What gathered meanwhile waits its turn (a full batch, the timer, or a flush).
      if (this.pendingBytes >= LOG_BATCH_BYTES || this.waiters.length > 0) this.writeBatch();
      else if (this.pendingBytes > 0 && !this.timer) {
        this.timer = setTimeout(this.kick, LOG_FLUSH_MS);
        this.timer.unref();
      }
    });
  }
}

let stdout: LogLines | undefined;

/** The process's stdout for log lines: one LogLines per process (fd 1 is the process's), flushed at exit. */
export function stdoutLines(): LogLines {
  if (!stdout) {
    const lines = new LogLines(1);
    process.once('exit', () => lines.flushSync());
    stdout = lines;
  }
  return stdout;
}

/** Resolves once every log line of this process so far is on stdout (before a planned exit). */
export function flushLogs(): Promise<void> {
  return stdout ? stdout.flush() : Promise.resolve();
}

/**
 * pino's ISO time, formatted once per millisecond: a busy edge logs many lines in each, and
 * formatting a date per line was a measurable share of a hit's cost. With it, the start of the
 * access line that only changes with the time (level, time, bindings).
 */
class LineTime {
  private ms = -1;
  field = '';
  private head = '';
  private headOf = '';
  private headLevel = -1;

  readonly now = (): string => {
    const now = Date.now();
    if (now !== this.ms) {
      this.ms = now;
      this.field = `,"time":"${new Date(now).toISOString()}"`;
      this.headLevel = -1;
    }
    return this.field;
  };

  /** `{"level":L,"time":…` and the bindings, as pino starts every line. */
  lineHead(level: number, chindings: string): string {
    const field = this.now();
    if (chindings !== this.headOf || level !== this.headLevel) {
      this.head = `{"level":${level}${field}${chindings}`;
      this.headBytes = undefined;
      this.headOf = chindings;
      this.headLevel = level;
    }
    return this.head;
  }

  /** lineHead's bytes. */
  lineHeadBytes(level: number, chindings: string): Buffer {
    const head = this.lineHead(level, chindings);
    return (this.headBytes ??= Buffer.from(head));
  }

  private headBytes: Buffer | undefined = undefined;
}

/** Loggers made by createLogger, with their time field: the access line is written for them directly. */
const plainLoggers = new WeakMap<Logger, LineTime>();

/**
 * One JSON line per event; `service` and `node` on every line so logs of a cluster can be merged.
 * `destination`: stdout (default), or where a test reads the lines.
 */
export function createLogger(service: string, level: LoggerOptions['level'], node?: string, destination: DestinationStream = stdoutLines()): Logger {
  const time = new LineTime();
  const logger = pino(
    {
      level: level ?? 'info',
      base: { service, ...(node ? { node } : {}), pid: process.pid },
      timestamp: time.now,
      redact: { paths: ['req.headers.authorization', 'authorization'], censor: '[redacted]' },
    },
    destination,
  );
  plainLoggers.set(logger, time);
  return logger;
}

/** Printable ASCII but `"` and `\`: a JSON string as it is. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function jsonString(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s);
}

/** A number as JSON (and pino) writes it: NaN and the infinities are null. */
function jsonNumber(n: number): string {
  return Number.isFinite(n) ? `${n}` : 'null';
}

/** The X-Cache values, as JSON strings. */
const TIER_JSON = new Map(['HIT-MEM', 'HIT-DISK', 'HIT-FILL', 'MISS'].map((t) => [t, `"${t}"`]));


// The remote address of the last line: the requests of one connection come one after another.
let lastRemote = '';
let lastRemoteJson = '""';

let lastRemoteBytes = Buffer.from(',"remote":""');

function remoteJson(remote: string): string {
  if (remote !== lastRemote) {
    lastRemoteJson = jsonString(remote);
    lastRemoteBytes = Buffer.from(`,"remote":${lastRemoteJson}`);
    lastRemote = remote;
  }
  return lastRemoteJson;
}

const REQ_ID_KEY = Buffer.from(',"reqId":');
const METHOD_KEY = Buffer.from(',"method":');
const METHOD_GET = Buffer.from(',"method":"GET"');
const PATH_KEY = Buffer.from(',"path":');
const RANGE_KEY = Buffer.from(',"range":');
const TRACEPARENT_KEY = Buffer.from(',"traceparent":');
const STATUS_KEY = Buffer.from(',"status":');
const TIER_KEY = Buffer.from(',"tier":');
const BYTES_KEY = Buffer.from(',"bytes":');
const MS_KEY = Buffer.from(',"ms":');
const SID_KEY = Buffer.from(',"sid":');
const BR_KEY = Buffer.from(',"br":');
const BL_KEY = Buffer.from(',"bl":');
const LINE_END = Buffer.from(',"msg":"request"}\n');
/** `,"tier":"…"` of each X-Cache value. */
const TIER_FIELD = new Map(['HIT-MEM', 'HIT-DISK', 'HIT-FILL', 'MISS'].map((t) => [t, Buffer.from(`,"tier":"${t}"`)]));

/** Writes `b` into `buf` at `at`; returns where it ends. */
function put(buf: Buffer, at: number, b: Buffer): number {
  buf.set(b, at);
  return at + b.length;
}

/**
 * `s` as a JSON string into `buf` at `at`; returns where it ends. Printable ASCII but `"` and
 * `\` goes byte by byte; anything else as JSON.stringify writes it, in UTF-8.
 */
function putJson(buf: Buffer, at: number, s: string): number {
  let o = at + 1;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return at + buf.write(JSON.stringify(s), at);
    buf[o++] = c;
  }
  buf[at] = 0x22;
  buf[o++] = 0x22;
  return o;
}

/** A number as pino writes it (jsonNumber): digits for a non-negative safe integer, else its text. */
function putNumber(buf: Buffer, at: number, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) return at + buf.write(jsonNumber(n), at, 'latin1');
  let digits = 1;
  for (let m = n; m >= 10; m = Math.floor(m / 10)) digits++;
  for (let i = at + digits - 1; i >= at; i--) {
    buf[i] = 48 + (n % 10);
    n = Math.floor(n / 10);
  }
  return at + digits;
}

/**
 * The access line straight into the batch's bytes: the parts
 * that repeat (the head of the millisecond, the connection's address, the keys) kept as bytes,
 * the rest written from the request's own strings, byte by byte — no string is made for the
 * line, and nothing per URL is kept (what a hot URL would keep is further from the cache than
 * the request it came with).
 */
function putAccessLine(
  dest: LogLines,
  head: Buffer,
  reqId: string,
  method: string,
  path: string,
  range: string | undefined,
  status: number,
  tier: string | undefined,
  bytes: number,
  ms: number,
  remote: string | undefined,
  traceparent: string | undefined,
  cmcd: LoggedCmcd | undefined,
): void {
  if (remote !== undefined) remoteJson(remote);
  const sid = cmcd === undefined ? undefined : loggedSid(cmcd.sid);
  const remoteBytes = remote === undefined ? undefined : lastRemoteBytes;
  const tierField = tier === undefined ? undefined : TIER_FIELD.get(tier);
  // 6 bytes at most per UTF-16 unit of a string (a \uXXXX escape), 32 per number.
  const strings =
    reqId.length + method.length + path.length + (range?.length ?? 0) + (tier !== undefined && tierField === undefined ? tier.length : 0) + (traceparent?.length ?? 0) + (sid?.length ?? 0);
  const max = head.length + 6 * strings + (cmcd === undefined ? 200 : 300) + (remoteBytes?.length ?? 0);
  const buf = dest.reserve(max);
  if (buf === undefined) return;
  let o = put(buf, dest.end, head);
  o = putJson(buf, put(buf, o, REQ_ID_KEY), reqId);
  o = method === 'GET' ? put(buf, o, METHOD_GET) : putJson(buf, put(buf, o, METHOD_KEY), method);
  o = putJson(buf, put(buf, o, PATH_KEY), path);
  if (range !== undefined) o = putJson(buf, put(buf, o, RANGE_KEY), range);
  o = putNumber(buf, put(buf, o, STATUS_KEY), status);
  if (tierField !== undefined) o = put(buf, o, tierField);
  else if (tier !== undefined) o = putJson(buf, put(buf, o, TIER_KEY), tier);
  o = putNumber(buf, put(buf, o, BYTES_KEY), bytes);
  o = putNumber(buf, put(buf, o, MS_KEY), ms);
  if (remoteBytes !== undefined) o = put(buf, o, remoteBytes);
  if (traceparent !== undefined) o = putJson(buf, put(buf, o, TRACEPARENT_KEY), traceparent);
  if (cmcd !== undefined) {
    if (sid !== undefined) o = putJson(buf, put(buf, o, SID_KEY), sid);
    if (cmcd.br !== undefined) o = putNumber(buf, put(buf, o, BR_KEY), cmcd.br);
    if (cmcd.bl !== undefined) o = putNumber(buf, put(buf, o, BL_KEY), cmcd.bl);
  }
  dest.commit(put(buf, o, LINE_END));
}

/** What the access line tells of a request's CMCD (CTA-5004): the player's session, bitrate and buffer. */
export interface LoggedCmcd {
  sid?: string;
  br?: number;
  bl?: number;
}

/** Longest sid logged: the spec caps it at 64 characters, and it is client data. */
export const LOGGED_SID_MAX = 64;

function loggedSid(sid: string | undefined): string | undefined {
  return sid === undefined || sid.length <= LOGGED_SID_MAX ? sid : sid.slice(0, LOGGED_SID_MAX);
}

/** The CMCD of requests answered by fastify's routes, until their access line is written (by http-app's hook). */
const cmcdOfRequest = new WeakMap<object, LoggedCmcd>();

/** `req` (a node request) carries this CMCD: its access line will say so (loggedCmcdOf). */
export function noteLoggedCmcd(req: object, cmcd: LoggedCmcd): void {
  cmcdOfRequest.set(req, cmcd);
}

/** The CMCD noted for `req`, if any. */
export function loggedCmcdOf(req: object): LoggedCmcd | undefined {
  return cmcdOfRequest.get(req);
}

/**
 * The access-log line of one request (`msg: "request"`): exactly the line pino writes for
 * `log[level]({reqId, method, path, range, status, tier, bytes, ms, remote, traceparent, sid, br, bl}, 'request')`
 * — fields in that order, the undefined ones left out — but, for a logger of createLogger,
 * written by hand to its destination: a busy edge writes one per request, and pino's generic
 * serialisation was the larger part of its cost. Other loggers (tests') get it through pino.
 */
export function logRequestLine(
  log: Logger,
  level: 'info' | 'debug',
  reqId: string,
  method: string,
  path: string,
  range: string | undefined,
  status: number,
  tier: string | undefined,
  bytes: number,
  ms: number,
  remote: string | undefined,
  traceparent: string | undefined,
  /** The caller has just checked `log.isLevelEnabled(level)`. */
  levelChecked = false,
  /** The request's CMCD, if it carried any (sid cut to LOGGED_SID_MAX). */
  cmcd?: LoggedCmcd,
): void {
  if (!levelChecked && !log.isLevelEnabled(level)) return;
  const time = plainLoggers.get(log);
  if (time === undefined) {
    if (cmcd === undefined) log[level]({ reqId, method, path, range, status, tier, bytes, ms, remote, traceparent }, 'request');
    else log[level]({ reqId, method, path, range, status, tier, bytes, ms, remote, traceparent, sid: loggedSid(cmcd.sid), br: cmcd.br, bl: cmcd.bl }, 'request');
    return;
  }
  const levelValue = log.levels.values[level]!;
  const chindings = (log as unknown as Record<symbol, string>)[pino.symbols.chindingsSym]!;
  const dest = (log as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym]!;
  if (dest instanceof LogLines) {
    return putAccessLine(dest, time.lineHeadBytes(levelValue, chindings), reqId, method, path, range, status, tier, bytes, ms, remote, traceparent, cmcd);
  }
  let line = `${time.lineHead(levelValue, chindings)},"reqId":${jsonString(reqId)},"method":${method === 'GET' ? '"GET"' : jsonString(method)},"path":${jsonString(path)}`;
  if (range !== undefined) line += `,"range":${jsonString(range)}`;
  line += `,"status":${jsonNumber(status)}`;
  if (tier !== undefined) line += `,"tier":${TIER_JSON.get(tier) ?? jsonString(tier)}`;
  line += `,"bytes":${jsonNumber(bytes)},"ms":${jsonNumber(ms)}`;
  if (remote !== undefined) line += `,"remote":${remoteJson(remote)}`;
  if (traceparent !== undefined) line += `,"traceparent":${jsonString(traceparent)}`;
  if (cmcd !== undefined) {
    const sid = loggedSid(cmcd.sid);
    if (sid !== undefined) line += `,"sid":${jsonString(sid)}`;
    if (cmcd.br !== undefined) line += `,"br":${jsonNumber(cmcd.br)}`;
    if (cmcd.bl !== undefined) line += `,"bl":${jsonNumber(cmcd.bl)}`;
  }
  dest.write(`${line},"msg":"request"}\n`);
}

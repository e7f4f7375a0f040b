import { write as fsWrite, writeSync } from 'node:fs';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** Longest a log line waits before it is written, ms (operators and tests tail the logs). */
export const LOG_FLUSH_MS = 25;
/** Bytes of lines that are written at once, without waiting for LOG_FLUSH_MS. */
export const LOG_BATCH_BYTES = 64 * 1024;
/** Bytes of lines held for a reader that does not keep up; lines past it are dropped, not queued. */
export const LOG_MAX_PENDING_BYTES = 32 * 1024 * 1024;

/**
 * Log lines to a file descriptor, written asynchronously in batches: a line costs an array
 * push, and the lines of up to LOG_FLUSH_MS (or LOG_BATCH_BYTES) go out in one write(2) — a
 * write costs about the same for one line as for a hundred, and a busy edge logs every request.
 * It never blocks on its reader: while a write is in flight the next batch gathers. (pino's own
 * asynchronous destination, sonic-boom, measured dearer per line than a synchronous write here;
 * this keeps pino's lines and does only what we need.) `flush()` resolves once every line given
 * is written; at exit, the lines not yet handed to write(2) are written synchronously, so only
 * a SIGKILL can lose lines (the last LOG_FLUSH_MS of them).
 */
export class LogLines implements DestinationStream {
  private pending: string[] = [];
  private pendingBytes = 0;
  private writing = false;
  private timer: NodeJS.Timeout | undefined;
  private broken = false;
  private waiters: (() => void)[] = [];

  constructor(private readonly fd: number) {}

  write(line: string): void {
    if (this.broken || this.pendingBytes > LOG_MAX_PENDING_BYTES) return;
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (this.writing) return;
    if (this.pendingBytes >= LOG_BATCH_BYTES) this.writeBatch();
    else if (!this.timer) {
      this.timer = setTimeout(this.kick, LOG_FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Resolves when every line written so far has reached the descriptor. */
  flush(): Promise<void> {
    if (!this.writing && this.pending.length === 0) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.waiters.push(resolve));
    this.writeBatch();
    return done;
  }

  /** Writes what is not yet in flight, synchronously: for `exit`, when no callback will run. */
  flushSync(): void {
    if (this.broken || this.pending.length === 0) return;
    const data = Buffer.from(this.pending.join(''));
    this.pending = [];
    this.pendingBytes = 0;
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
    if (this.pending.length === 0 || this.broken) {
      for (const w of this.waiters.splice(0)) w();
      return;
    }
    const data = Buffer.from(this.pending.join(''));
    this.pending = [];
    this.pendingBytes = 0;
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
        this.pending = [];
      } else if (off + n < data.length) {
        this.writeFrom(data, off + n);
        return;
      }
      this.writing = false;
      // What gathered meanwhile waits its turn (a full batch, the timer, or a flush).
      if (this.pendingBytes >= LOG_BATCH_BYTES || this.waiters.length > 0) this.writeBatch();
      else if (this.pending.length > 0 && !this.timer) {
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
 * formatting a date per line was a measurable share of a hit's cost.
 */
function isoTimeCached(): () => string {
  let ms = -1;
  let field = '';
  return () => {
    const now = Date.now();
    if (now !== ms) {
      ms = now;
      field = `,"time":"${new Date(now).toISOString()}"`;
    }
    return field;
  };
}

/** Loggers made by createLogger, with their time field: the access line is written for them directly. */
const plainLoggers = new WeakMap<Logger, () => string>();

/**
 * One JSON line per event; `service` and `node` on every line so logs of a cluster can be merged.
 * `destination`: stdout (default), or where a test reads the lines.
 */
export function createLogger(service: string, level: LoggerOptions['level'], node?: string, destination: DestinationStream = stdoutLines()): Logger {
  const time = isoTimeCached();
  const logger = pino(
    {
      level: level ?? 'info',
      base: { service, ...(node ? { node } : {}), pid: process.pid },
      timestamp: time,
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

/** A path as the access line writes it, for a caller that logs the same path many times (a hot URL). */
export interface LoggedPath {
  readonly path: string;
  /** `path` as a JSON string. */
  readonly json: string;
}

export function loggedPath(path: string): LoggedPath {
  return { path, json: jsonString(path) };
}

/** The X-Cache values, as JSON strings. */
const TIER_JSON = new Map(['HIT-MEM', 'HIT-DISK', 'HIT-FILL', 'MISS'].map((t) => [t, `"${t}"`]));

// The remote address of the last line: the requests of one connection come one after another.
let lastRemote = '';
let lastRemoteJson = '""';

function remoteJson(remote: string): string {
  if (remote !== lastRemote) {
    lastRemoteJson = jsonString(remote);
    lastRemote = remote;
  }
  return lastRemoteJson;
}

/**
 * The access-log line of one request (`msg: "request"`): exactly the line pino writes for
 * `log[level]({reqId, method, path, range, status, tier, bytes, ms, remote, traceparent}, 'request')`
 * — fields in that order, the undefined ones left out — but, for a logger of createLogger,
 * written by hand to its destination: a busy edge writes one per request, and pino's generic
 * serialisation was the larger part of its cost. Other loggers (tests') get it through pino.
 */
export function logRequestLine(
  log: Logger,
  level: 'info' | 'debug',
  reqId: string,
  method: string,
  path: string | LoggedPath,
  range: string | undefined,
  status: number,
  tier: string | undefined,
  bytes: number,
  ms: number,
  remote: string | undefined,
  traceparent: string | undefined,
  /** The caller has just checked `log.isLevelEnabled(level)`. */
  levelChecked = false,
): void {
  if (!levelChecked && !log.isLevelEnabled(level)) return;
  const time = plainLoggers.get(log);
  if (time === undefined) {
    log[level]({ reqId, method, path: typeof path === 'string' ? path : path.path, range, status, tier, bytes, ms, remote, traceparent }, 'request');
    return;
  }
  let line = `{"level":${log.levels.values[level]}${time()}${(log as unknown as Record<symbol, string>)[pino.symbols.chindingsSym]},"reqId":${jsonString(reqId)},"method":${method === 'GET' ? '"GET"' : jsonString(method)},"path":${typeof path === 'string' ? jsonString(path) : path.json}`;
  if (range !== undefined) line += `,"range":${jsonString(range)}`;
  line += `,"status":${status}`;
  if (tier !== undefined) line += `,"tier":${TIER_JSON.get(tier) ?? jsonString(tier)}`;
  line += `,"bytes":${bytes},"ms":${ms}`;
  if (remote !== undefined) line += `,"remote":${remoteJson(remote)}`;
  if (traceparent !== undefined) line += `,"traceparent":${jsonString(traceparent)}`;
  (log as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym]!.write(`${line},"msg":"request"}\n`);
}

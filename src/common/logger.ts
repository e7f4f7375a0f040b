import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** Bytes of log lines gathered before one write to stdout: a busy edge writes a line per request. */
export const LOG_BUFFER_BYTES = 4096;
/** Longest a line waits in that buffer on a quiet process, ms (tests and operators tail the logs). */
export const LOG_FLUSH_MS = 100;

let stdout: (DestinationStream & { flushSync(): void }) | undefined;

/**
 * The process's stdout for log lines: asynchronous and buffered, so logging a request costs a
 * string append rather than a write(2). One per process (fd 1 is the process's), flushed every
 * LOG_FLUSH_MS and synchronously at exit — `process.exit` after a SIGTERM drain, a crash — so no
 * line is lost there; only a SIGKILL can lose the last LOG_FLUSH_MS of lines.
 */
export function stdoutDestination(): DestinationStream & { flushSync(): void } {
  stdout ??= pino.destination({ dest: 1, sync: false, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_MS } as Parameters<typeof pino.destination>[0]);
  return stdout;
}

/** One JSON line per event; `service` and `node` on every line so logs of a cluster can be merged. */
export function createLogger(service: string, level: LoggerOptions['level'], node?: string): Logger {
  return pino(
    {
      level: level ?? 'info',
      base: { service, ...(node ? { node } : {}), pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['req.headers.authorization', 'authorization'], censor: '[redacted]' },
    },
    stdoutDestination(),
  );
}

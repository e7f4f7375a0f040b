import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** One JSON line per event; `service` and `node` on every line so logs of a cluster can be merged. */
export function createLogger(service: string, level: LoggerOptions['level'], node?: string): Logger {
  return pino({
    level: level ?? 'info',
    base: { service, ...(node ? { node } : {}), pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: ['req.headers.authorization', 'authorization'], censor: '[redacted]' },
  });
}

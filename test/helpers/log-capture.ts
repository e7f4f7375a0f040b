import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LogLines, createLogger } from '../../src/common/logger.js';
import { tempDir } from './cluster.js';

/**
 * For tests of the access line as bytes: `log`, an edge logger writing into a LogLines batch over
 * a new temporary file, and `ref`, the same logger (service, level, node) writing pino's own
 * lines into `want`. `written()` flushes the batch, closes the file and returns what it holds.
 */
export function batchBesidePino() {
  const file = join(tempDir(), 'log');
  const fd = openSync(file, 'w');
  const out = new LogLines(fd);
  const log = createLogger('edge', 'info', 'edge-a1', out);
  const want: string[] = [];
  const ref = createLogger('edge', 'info', 'edge-a1', { write: (l: string) => void want.push(l) });
  return {
    file,
    log,
    ref,
    want,
    async written(): Promise<string> {
      await out.flush();
      closeSync(fd);
      return readFileSync(file, 'utf8');
    },
  };
}

/** A log line with its time replaced by "T", to compare lines written at different moments. */
export const untimed = (l: string) => l.replace(/"time":"[^"]+"/, '"time":"T"');

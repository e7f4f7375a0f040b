import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LogLines, createLogger, logRequestLine } from '../../src/common/logger.js';
import { tempDir } from '../helpers/cluster.js';

describe('logRequestLine', () => {
  it('itWritesTheLinePinoWouldWrite, fields in order and undefined ones left out', () => {
    const lines: string[] = [];
    const log = createLogger('edge', 'info', 'edge-a1', { write: (l: string) => void lines.push(l) });
    const rows: [string, string, string, string | undefined, number, string | undefined, number, number, string | undefined, string | undefined][] = [
      ['abc-1', 'GET', '/c/t/f.m4s', undefined, 200, 'HIT-MEM', 16384, 0.3, '127.0.0.1', undefined],
      ['abc-2', 'HEAD', '/c/t/a"b\\c', 'bytes=0-9', 206, 'MISS', 10, 12.5, '::1', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
      ['x\ny', 'GET', '/c/t/é', undefined, 403, undefined, 0, 0, undefined, undefined],
    ];
    for (const r of rows) {
      lines.length = 0;
      const [reqId, method, path, range, status, tier, bytes, ms, remote, traceparent] = r;
      log.info({ reqId, method, path, range, status, tier, bytes, ms, remote, traceparent }, 'request');
      logRequestLine(log, 'info', ...r);
      const [viaPino, byHand] = lines.map((l) => l.replace(/"time":"[^"]+"/, '"time":"T"'));
      expect(byHand).toBe(viaPino);
      expect(JSON.parse(byHand!)).toMatchObject({ level: 30, service: 'edge', node: 'edge-a1', msg: 'request', reqId, status });
    }
    lines.length = 0;
    logRequestLine(createLogger('edge', 'warn', 'e', { write: (l: string) => void lines.push(l) }), 'info', 'a', 'GET', '/c/t/f', undefined, 200, undefined, 0, 0, undefined, undefined);
    expect(lines).toHaveLength(0);
  });
});

describe('LogLines', () => {
  it('itWritesEveryLineInOrderByFlush and the rest at exit', async () => {
    const file = join(tempDir(), 'log');
    const fd = openSync(file, 'w');
    const out = new LogLines(fd);
    for (let i = 0; i < 5000; i++) out.write(`line ${i}\n`);
    await out.flush();
    out.write('last\n');
    out.flushSync();
    closeSync(fd);
    const text = readFileSync(file, 'utf8').split('\n');
    expect(text.slice(0, 5000)).toEqual(Array.from({ length: 5000 }, (_, i) => `line ${i}`));
    expect(text[5000]).toBe('last');
  });
});

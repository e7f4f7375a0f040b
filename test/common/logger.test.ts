import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LogLines, createLogger, logRequestLine } from '../../src/common/logger.js';
import { tempDir } from '../helpers/cluster.js';
import { batchBesidePino, untimed } from '../helpers/log-capture.js';

describe('logRequestLine', () => {
  it('itWritesTheLinePinoWouldWrite, fields in order and undefined ones left out', () => {
    const lines: string[] = [];
    const log = createLogger('edge', 'info', 'edge-a1', { write: (l: string) => void lines.push(l) });
    const rows: [string, string, string, string | undefined, number, string | undefined, number, number, string | undefined, string | undefined][] = [
      ['abc-1', 'GET', '/c/t/f.m4s', undefined, 200, 'HIT-MEM', 16384, 0.3, '127.0.0.1', undefined],
      ['abc-2', 'HEAD', '/c/t/a"b\\c', 'bytes=0-9', 206, 'MISS', 10, 12.5, '::1', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
      ['x\ny', 'GET', '/c/t/é', undefined, 403, undefined, 0, 0, undefined, undefined],
      ['n', 'GET', '/c/t/f', 'bytes=1-', 206, 'MISS', NaN, Infinity, '::1', undefined],
    ];
    for (const r of rows) {
      lines.length = 0;
      const [reqId, method, path, range, status, tier, bytes, ms, remote, traceparent] = r;
      log.info({ reqId, method, path, range, status, tier, bytes, ms, remote, traceparent }, 'request');
      logRequestLine(log, 'info', ...r);
      const [viaPino, byHand] = lines.map(untimed);
      expect(byHand).toBe(viaPino);
      expect(JSON.parse(byHand!)).toMatchObject({ level: 30, service: 'edge', node: 'edge-a1', msg: 'request', reqId, status });
    }
    lines.length = 0;
    logRequestLine(createLogger('edge', 'warn', 'e', { write: (l: string) => void lines.push(l) }), 'info', 'a', 'GET', '/c/t/f', undefined, 200, undefined, 0, 0, undefined, undefined);
    expect(lines).toHaveLength(0);
  });
});

describe('the access line as bytes', () => {
  it('itWritesTheLineIntoTheBatchExactlyAsPinoWould: ids, ranges, numbers, addresses, traceparents, paths of every kind', async () => {
    const { file, log, ref, want, written } = batchBesidePino();
    const rows: [string, string, string, string | undefined, number, string | undefined, number, number, string | undefined, string | undefined][] = [
      ['c0decab1-4og', 'GET', '/c/small/o0441.m4s', undefined, 200, 'HIT-MEM', 16384, 0.1, '127.0.0.1', undefined],
      ['c0decab1-4oh', 'GET', '/c/small/o0441.m4s', undefined, 200, 'HIT-MEM', 16384, 0, '127.0.0.1', undefined],
      ['c0decab1-4oi', 'HEAD', '/c/small/o0441.m4s', undefined, 200, 'HIT-DISK', 16384, 12.5, '::ffff:10.1.2.3', undefined],
      ['given "by" client\\', 'GET', '/c/t/é ü', undefined, 404, undefined, 0, 1234567.8, undefined, undefined],
      ['ctl\u0001\u007f-ä-😀', 'GET', '/c/t/a"b\\c', undefined, 200, 'MISS', 9007199254740991, 1e21, '127.0.0.1', undefined],
      ['x', 'GET', '/c/t/f', undefined, 200, 'HIT-FILL', 3, -1, '127.0.0.1', undefined],
      ['y', 'GET', '/c/t/f', undefined, 200, 'HIT-MEM', 2.5, NaN, '127.0.0.2', undefined],
      ['z', 'GET', '/c/t/f', 'bytes=0-1', 206, 'HIT-MEM', 2, 0.3, '127.0.0.2', undefined],
      ['w', 'GET', '/c/t/f', undefined, 200, 'HIT-MEM', 2, 0.3, '127.0.0.2', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
      ['v', 'GET', '/c/t/f', undefined, 200, 'HIT-MEM', 3, 0.2, '127.0.0.2', undefined],
      ['', 'GET', '/c/t/\u00ff', undefined, 200, 'weird"tier', 0, 99.9, 'a\nb', undefined],
      ['u', 'GET', '/c/t/f', undefined, 200, 'HIT-MEM', Infinity, -Infinity, '127.0.0.2', undefined],
      ['r', 'GET', '/c/t/f', 'bytes="0"-\\1, ü', 206, 'HIT-DISK', 2, 0.3, '127.0.0.2', 'tp "x" \\ \u0002'],
      ['s', 'HEAD', '/c/t/f', 'bytes=-500', 416, undefined, 0, 0.5, undefined, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
    ];
    for (const r of rows) {
      const [reqId, method, path, range, status, tier, bytes, ms, remote, traceparent] = r;
      ref.info({ reqId, method, path, range, status, tier, bytes, ms, remote, traceparent }, 'request');
      logRequestLine(log, 'info', reqId, method, path, range, status, tier, bytes, ms, remote, traceparent);
    }
    const got = (await written()).split('\n').slice(0, -1).map(untimed);
    expect(got).toEqual(want.map((l) => untimed(l).slice(0, -1)));
    expect(readFileSync(file).equals(Buffer.from(want.map((l, i) => l.replace(/"time":"[^"]+"/, /"time":"[^"]+"/.exec(readFileSync(file, 'utf8').split('\n')[i]!)![0])).join('')))).toBe(true);
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

import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOGGED_SID_MAX, LogLines, createLogger, logRequestLine, type LoggedCmcd } from '../../src/common/logger.js';
import { tempDir } from '../helpers/cluster.js';

/**
 * The access line of a request with CMCD carries its sid, br and bl after the usual fields, as
 * pino would write them — through the batch's bytes and through a plain destination alike; the
 * sid (client data) cut to LOGGED_SID_MAX and escaped; a line without CMCD unchanged.
 */
describe('the access line with CMCD', () => {
  const rows: (LoggedCmcd | undefined)[] = [
    undefined,
    { sid: '6e2fb550-c457-11e9-bb97-0800200c9a66', br: 3200, bl: 21300 },
    { sid: 'a"b\\c\u0001é😀'.repeat(20) },
    { br: 0 },
    { bl: 1e21 },
    { sid: '' },
    {},
  ];
  const cut = (c: LoggedCmcd | undefined) => (c === undefined ? undefined : { sid: c.sid?.slice(0, LOGGED_SID_MAX), br: c.br, bl: c.bl });

  it('itWritesSidBrAndBlAsPinoWould, into the batch bytes', async () => {
    const file = join(tempDir(), 'log');
    const fd = openSync(file, 'w');
    const out = new LogLines(fd);
    const log = createLogger('edge', 'info', 'edge-a1', out);
    const want: string[] = [];
    const ref = createLogger('edge', 'info', 'edge-a1', { write: (l: string) => void want.push(l) });
    for (const c of rows) {
      ref.info({ reqId: 'r', method: 'GET', path: '/c/t/f', range: undefined, status: 200, tier: 'HIT-MEM', bytes: 10, ms: 0.2, remote: '127.0.0.1', traceparent: undefined, ...cut(c) }, 'request');
      logRequestLine(log, 'info', 'r', 'GET', '/c/t/f', undefined, 200, 'HIT-MEM', 10, 0.2, '127.0.0.1', undefined, false, c);
    }
    await out.flush();
    closeSync(fd);
    const untimed = (l: string) => l.replace(/"time":"[^"]+"/, '"time":"T"');
    const got = readFileSync(file, 'utf8').split('\n').slice(0, -1).map(untimed);
    expect(got).toEqual(want.map((l) => untimed(l).slice(0, -1)));
    const second = JSON.parse(got[1]!) as Record<string, unknown>;
    expect(second).toMatchObject({ sid: '6e2fb550-c457-11e9-bb97-0800200c9a66', br: 3200, bl: 21300 });
    expect((JSON.parse(got[2]!) as { sid: string }).sid).toHaveLength(LOGGED_SID_MAX);
    expect(got[0]).not.toMatch(/"sid"|"br"|"bl"/);
  });

  it('itWritesTheSameLineToAPlainDestination', () => {
    const lines: string[] = [];
    const log = createLogger('edge', 'info', 'edge-a1', { write: (l: string) => void lines.push(l) });
    for (const c of rows) {
      lines.length = 0;
      log.info({ reqId: 'r', method: 'HEAD', path: '/c/t/f', range: 'bytes=0-1', status: 206, tier: 'MISS', bytes: 2, ms: 1, remote: '::1', traceparent: undefined, ...cut(c) }, 'request');
      logRequestLine(log, 'info', 'r', 'HEAD', '/c/t/f', 'bytes=0-1', 206, 'MISS', 2, 1, '::1', undefined, false, c);
      const [viaPino, byHand] = lines.map((l) => l.replace(/"time":"[^"]+"/, '"time":"T"'));
      expect(byHand).toBe(viaPino);
    }
  });
});

import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { formatCmcd } from '../../src/common/cmcd.js';
import { LOGGED_SID_MAX, createLogger, logRequestLine, type LoggedCmcd } from '../../src/common/logger.js';
import { randomTitle, tempDir, testCluster, writeMedia } from '../helpers/cluster.js';
import { startEdge } from '../helpers/edge-harness.js';
import { batchBesidePino, untimed } from '../helpers/log-capture.js';
import { TestOrigin } from '../helpers/test-origin.js';

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
    const { log, ref, want, written } = batchBesidePino();
    for (const c of rows) {
      ref.info({ reqId: 'r', method: 'GET', path: '/c/t/f', range: undefined, status: 200, tier: 'HIT-MEM', bytes: 10, ms: 0.2, remote: '127.0.0.1', traceparent: undefined, ...cut(c) }, 'request');
      logRequestLine(log, 'info', 'r', 'GET', '/c/t/f', undefined, 200, 'HIT-MEM', 10, 0.2, '127.0.0.1', undefined, false, c);
    }
    const got = (await written()).split('\n').slice(0, -1).map(untimed);
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
      const [viaPino, byHand] = lines.map(untimed);
      expect(byHand).toBe(viaPino);
    }
  });
});

describe('the access lines of a running edge with CMCD', () => {
  it('itLogsSidBrAndBlWhicheverPathAnswers: the hit path, and the object routes (a multipart range it leaves to them)', async () => {
    const root = tempDir();
    const origin = new TestOrigin(root);
    await origin.start();
    const lines: { msg: string; path?: string; status?: number; range?: string; sid?: string; br?: number; bl?: number }[] = [];
    const logger = createLogger('edge', 'info', 'edge-a1', { write: (l: string) => void lines.push(JSON.parse(l)) });
    const edge = await startEdge(testCluster(), origin.url, { logger });
    try {
      const title = randomTitle();
      writeMedia(root, title, 'seg.m4s', 5000);
      const cmcd = `&CMCD=${encodeURIComponent(formatCmcd({ sid: 'log-sid', br: 2500, bl: 7000, ot: 'v' }))}`;
      for (const range of [undefined, 'bytes=0-1,5-6']) {
        const res = await request(`${edge.url}${edge.signed(title, 'seg.m4s')}${cmcd}`, { headers: range ? { range } : {} });
        await res.body.arrayBuffer();
        expect(res.statusCode).toBe(range ? 206 : 200);
      }
      // And as headers, through the routes again.
      const res = await request(`${edge.url}${edge.signed(title, 'seg.m4s')}`, { headers: { range: 'bytes=0-1,5-6', 'cmcd-session': 'sid="hdr-sid"', 'cmcd-request': 'bl=300' } });
      await res.body.arrayBuffer();
      for (let i = 0; i < 100 && lines.filter((l) => l.msg === 'request').length < 3; i++) await new Promise((r) => setTimeout(r, 10));
      const mine = lines.filter((l) => l.msg === 'request' && l.path === `/c/${title}/seg.m4s`);
      expect(mine.map(({ status, range, sid, br, bl }) => ({ status, range, sid, br, bl }))).toEqual([
        { status: 200, range: undefined, sid: 'log-sid', br: 2500, bl: 7000 },
        { status: 206, range: 'bytes=0-1,5-6', sid: 'log-sid', br: 2500, bl: 7000 },
        { status: 206, range: 'bytes=0-1,5-6', sid: 'hdr-sid', br: undefined, bl: 300 },
      ]);
    } finally {
      await edge.close();
      await origin.close();
    }
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { DEFAULT_HTTP_LIMITS } from '../../src/common/config.js';
import type { ConnectionLimits } from '../../src/common/connection-guard.js';
import { createApp } from '../../src/common/http-app.js';
import { type RawClient, rawClient, until } from '../helpers/raw-socket.js';

const silent = pino({ level: 'silent' });
const GET = 'GET /hello HTTP/1.1\r\nHost: x\r\n\r\n';

describe('createApp: connection limits', () => {
  let app: FastifyInstance | undefined;
  const clients: RawClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await app?.close();
    app = undefined;
  });

  async function start(limits: Partial<ConnectionLimits>, overloaded?: () => boolean, routes?: (app: FastifyInstance) => void): Promise<string> {
    app = createApp({ logger: silent, limits: { ...DEFAULT_HTTP_LIMITS, ...limits }, overloaded });
    app.get('/hello', async () => 'hi\n');
    routes?.(app);
    return app.listen({ host: '127.0.0.1', port: 0 });
  }
  const open = async (url: string) => {
    const c = await rawClient(url);
    clients.push(c);
    return c;
  };
  const serverConnections = () => new Promise<number>((res, rej) => app!.server.getConnections((err, n) => (err ? rej(err) : res(n))));

  it('itCutsAClientTricklingItsHeadersAfterTheHeadersTimeout', async () => {
    const url = await start({ headersTimeoutMs: 1000, requestTimeoutMs: 5000 });
    const c = await open(url);
    const t0 = performance.now();
    c.send('GET /hello HTTP/1.1\r\nHost: x\r\n');
    // One header line every 200 ms, for up to 8 s: the headers never end.
    for (let i = 0; i < 40 && !c.isClosed(); i++) {
      await new Promise((r) => setTimeout(r, 200));
      if (!c.isClosed()) c.send(`X-Slow-${i}: y\r\n`);
    }
    expect(c.isClosed()).toBe(true);
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(c.text()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('itClosesAConnectionThatNeverSendsARequestAfterTheHeadersTimeout', async () => {
    const url = await start({ headersTimeoutMs: 1000, requestTimeoutMs: 5000 });
    const c = await open(url);
    await c.closedWithin(4000);
  });

  it('itAnswers503WithRetryAfterToConnectionsPastTheCapWhileTheFirstOnesWork', async () => {
    const url = await start({ maxConnections: 3, retryAfterSec: 7 });
    const first = [await open(url), await open(url), await open(url)];
    await until(async () => (await serverConnections()) === 3, 'three accepted connections');
    const extra = [await open(url), await open(url)];
    for (const c of extra) {
      await c.closedWithin();
      expect(c.text()).toMatch(/^HTTP\/1\.1 503 /);
      expect(c.text()).toMatch(/\r\nRetry-After: 7\r\n/i);
    }
    for (const c of first) {
      c.send(GET);
      await c.waitFor(/\r\n\r\nhi\n$/);
      expect(c.text()).toMatch(/^HTTP\/1\.1 200 /);
    }
  });

  it('itShedsTheLongestIdleKeepAliveConnectionToAdmitANewcomer', async () => {
    const url = await start({ maxConnections: 2 });
    const a = await open(url);
    a.send(GET);
    await a.waitFor(/hi\n$/);
    const b = await open(url);
    b.send(GET);
    await b.waitFor(/hi\n$/);
    // Both idle between requests now, a the longest.
    const c = await open(url);
    await a.closedWithin();
    c.send(GET);
    await c.waitFor(/hi\n$/);
    expect(c.text()).toMatch(/^HTTP\/1\.1 200 /);
    expect(b.isClosed()).toBe(false);
  });

  it('itNeverShedsAConnectionWhoseAnswerIsInFlight', async () => {
    let release: (() => void) | undefined;
    const url = await start({ maxConnections: 1 }, undefined, (a) => a.get('/slow', () => new Promise<string>((r) => (release = () => r('done\n')))));
    const a = await open(url);
    a.send('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => release !== undefined, 'the slow request to arrive');
    const b = await open(url);
    await b.closedWithin();
    expect(b.text()).toMatch(/^HTTP\/1\.1 503 /);
    release!();
    await a.waitFor(/done\n$/);
  });

  it('itAnswers503WithRetryAfterWhileOverloaded', async () => {
    let overloaded = true;
    const url = await start({ retryAfterSec: 3 }, () => overloaded);
    const a = await open(url);
    a.send(GET);
    await a.waitFor(/overloaded\n$/);
    expect(a.text()).toMatch(/^HTTP\/1\.1 503 /);
    expect(a.text()).toMatch(/\r\nretry-after: 3\r\n/i);
    overloaded = false;
    const b = await open(url);
    b.send(GET);
    await b.waitFor(/hi\n$/);
  });
});

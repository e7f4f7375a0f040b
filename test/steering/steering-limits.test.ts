import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { type RawClient, rawClient, until } from '../helpers/raw-socket.js';
import type { SteeringServer } from '../../src/steering/server.js';
import { TOKEN, type SteeringWorld, steeringWorld } from '../steering-harness.js';

describe('steering and origin: connection limits', () => {
  let world: SteeringWorld;
  let publicUrl: string;
  let adminUrl: string;
  let server: SteeringServer;
  const clients: RawClient[] = [];

  beforeAll(async () => {
    world = await steeringWorld();
    const config = { ...world.config, http: { ...world.config.http, maxConnections: 3, headersTimeoutMs: 1000, requestTimeoutMs: 5000, retryAfterSec: 4 } };
    ({ server, publicUrl, adminUrl } = await world.start({ config }));
  });
  afterAll(async () => {
    for (const c of clients) c.destroy();
    await world.close();
  });
  const open = async (url: string) => {
    const c = await rawClient(url);
    clients.push(c);
    return c;
  };

  it('itCutsATrickledHeaderOnSteeringsPublicPort', async () => {
    const c = await open(publicUrl);
    c.send('GET /v1/titles HTTP/1.1\r\nHost: x\r\n');
    for (let i = 0; i < 40 && !c.isClosed(); i++) {
      await new Promise((r) => setTimeout(r, 200));
      if (!c.isClosed()) c.send(`X-Slow-${i}: y\r\n`);
    }
    expect(c.isClosed()).toBe(true);
    expect(c.text()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('itRefusesConnectionsPastTheCapAndTheAdminPortStillAnswers', async () => {
    await until(() => clients.every((c) => c.isClosed()), 'earlier connections to close');
    const first = [await open(publicUrl), await open(publicUrl), await open(publicUrl)];
    const accepted = () => new Promise<number>((res, rej) => server.publicApp.server.getConnections((err, n) => (err ? rej(err) : res(n))));
    await until(async () => (await accepted()) === 3, 'three accepted connections');
    const extra = await open(publicUrl);
    await extra.waitFor(/too many connections\n$/);
    expect(extra.text()).toMatch(/\r\nRetry-After: 4\r\n/i);
    const health = await request(`${adminUrl}/health`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(health.statusCode).toBe(200);
    await health.body.dump();
    for (const c of first) {
      c.send('GET /v1/titles HTTP/1.1\r\nHost: x\r\n\r\n');
      await c.waitFor(/"titles"/);
      expect(c.text()).toMatch(/^HTTP\/1\.1 200 /);
    }
  });

  it('itGivesTheOriginShortHeaderAndIdleTimeoutsByDefault', () => {
    const s = world.origin.publicApp.server;
    expect(s.headersTimeout).toBe(10_000);
    expect(s.requestTimeout).toBe(30_000);
    expect(s.keepAliveTimeout).toBe(30_000);
    expect(world.origin.adminApp.server.headersTimeout).toBe(10_000);
  });
});

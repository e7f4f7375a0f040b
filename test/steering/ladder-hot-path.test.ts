import { type Server, type Socket, createServer } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SteeringWorld, steeringWorld } from '../steering-harness.js';

/**
 * The title's ladder (for the low-throughput rule) is never read on a steering reload's path:
 * with the origin's public port accepting connections and never answering, reloads that report
 * a throughput are answered at once, and the origin is asked once, not per reload.
 */
describe('steering: the ladder read is off the reload path', () => {
  let world: SteeringWorld;
  let publicUrl: string;
  let blackhole: Server;
  const sockets: Socket[] = [];
  let manifestAsks = 0;

  beforeAll(async () => {
    world = await steeringWorld();
    blackhole = createServer((s) => {
      sockets.push(s);
      s.on('data', (d) => {
        manifestAsks += (d.toString('latin1').match(/GET \/o\/bbb-hls\//g) ?? []).length;
      });
    });
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
    const port = (blackhole.address() as { port: number }).port;
    // The catalog comes from the origin's admin port; manifests from a public port that hangs.
    const config = { ...world.config, origin: { ...world.config.origin, url: `http://127.0.0.1:${port}` } };
    ({ publicUrl } = await world.start({ config }));
  }, 30_000);

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await world?.close();
    await new Promise((r) => blackhole?.close(r));
  });

  it('answersReloadsAtOnceAndAsksTheOriginOnceWhileItHangs', async () => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const res = await request(`${publicUrl}/v1/steer/bbb-hls.json?_HLS_pathway=edge-a1&_HLS_throughput=40000`);
      await res.body.dump();
      times.push(performance.now() - t0);
      expect(res.statusCode).toBe(200);
    }
    // The origin's request timeout is 3 s: none of them waited for it.
    expect(Math.max(...times)).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 200));
    expect(manifestAsks).toBe(1);
  });
});

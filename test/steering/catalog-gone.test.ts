import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/common/clock.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { CatalogSource } from '../../src/steering/catalog.js';
import { FIXTURES, KEYS, type SteeringWorld, silent, steeringWorld } from '../steering-harness.js';

/**
 * 410 on a steering manifest is permanent for players (hls.js disables steering, dash.js drops
 * it): steering answers it only from a catalog fetched after the request arrived. A catalog it
 * cannot refresh now (a refresh ran moments ago, or the origin is down) gets 503 + Retry-After,
 * which players retry.
 */
describe('steering: 410 only from a catalog newer than the request', () => {
  let world: SteeringWorld;
  let slowRefresh: string;
  let quickRefresh: string;

  beforeAll(async () => {
    world = await steeringWorld();
    // One steering that refreshes on a miss at most once a minute, one that may at once.
    slowRefresh = (await world.start({ catalogRefreshMs: 600_000, missRefreshMs: 60_000 })).publicUrl;
    quickRefresh = (await world.start({ catalogRefreshMs: 600_000, missRefreshMs: 1 })).publicUrl;
  }, 30_000);

  afterAll(async () => {
    await world?.close();
  });

  const steer = async (base: string, title: string) => {
    const res = await request(`${base}/v1/steer/${title}.json?_HLS_pathway=edge-a1&_HLS_throughput=5000000`);
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };

  it('aTitleAddedAtTheOriginJustBeforeTheRequestIsNeverGone', async () => {
    await ingestTitle(world.config, 'bbb-late', join(FIXTURES, 'hls-bytes'));
    await world.origin.reloadCatalog();
    // The catalog steering holds predates the title, and it may not refresh for a minute.
    const r = await steer(slowRefresh, 'bbb-late');
    expect(r.status).toBe(503);
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // One that may refresh reads the new catalog and steers the title.
    expect((await steer(quickRefresh, 'bbb-late')).status).toBe(200);
  });

  it('answers410FromACatalogFetchedAfterTheRequest', async () => {
    await new Promise((r) => setTimeout(r, 5));
    const r = await steer(quickRefresh, 'never-ingested');
    expect(r.status).toBe(410);
    expect(r.text).toContain('no longer in the catalog');
  });
});

describe('catalog source: a view newer than a moment', () => {
  let origin: FastifyInstance;
  let url: string;
  let titles: string[] = ['a'];
  let delayMs = 0;
  let fetches = 0;

  beforeAll(async () => {
    origin = Fastify();
    origin.get('/v1/catalog', async () => {
      fetches++;
      const now = [...titles];
      await new Promise((r) => setTimeout(r, delayMs));
      return { titles: now.map((title) => ({ title, kind: 'hls', manifests: [], files: [], bytes: 0, ingestedAt: '' })) };
    });
    await origin.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(origin.server.address() as { port: number }).port}`;
  });

  afterAll(async () => {
    await origin?.close();
  });

  const source = (clock: FakeClock, missRefreshMs: number) =>
    new CatalogSource({ originUrl: url, originAdminUrl: url, signing: { keys: KEYS, activeKey: 'k1' }, clock, logger: silent, refreshMs: 3_600_000, missRefreshMs });

  it('waitsForTheRefreshUnderWayWhenItStartedAfterTheMoment', async () => {
    const clock = new FakeClock(1000);
    const c = source(clock, 3000);
    await c.refresh();
    titles = ['a', 'b'];
    clock.advance(5000);
    delayMs = 100;
    const before = fetches;
    const under = c.refresh(); // started now
    const asked = clock.monotonic();
    const [x, y] = await Promise.all([c.viewAfter(asked), c.viewAfter(asked)]);
    await under;
    expect(fetches - before).toBe(1); // both waited for it, none fetched again
    expect(x.fresh && y.fresh).toBe(true);
    expect(x.view!.titles.has('b')).toBe(true);
    delayMs = 0;
    await c.close();
  });

  it('isNotFreshWhileRateLimitedOrWhenTheOriginFails', async () => {
    const clock = new FakeClock(1000);
    const c = source(clock, 3000);
    await c.refresh();
    clock.advance(1000);
    const v = await c.viewAfter(clock.monotonic());
    expect(v.fresh).toBe(false); // a refresh ran 1 s ago: not again yet
    expect(v.view!.titles.has('a')).toBe(true);
    clock.advance(5000);
    expect((await c.viewAfter(clock.monotonic())).fresh).toBe(true);
    await origin.close();
    clock.advance(5000);
    const down = await c.viewAfter(clock.monotonic());
    expect(down.fresh).toBe(false); // the origin did not answer: the old view, not a fresh one
    expect(down.view).toBeDefined();
    await c.close();
  });
});

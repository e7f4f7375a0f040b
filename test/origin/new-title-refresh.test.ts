import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/common/clock.js';
import type { ClusterConfig } from '../../src/common/config.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { FIXTURES, type RunningOrigin, originTestConfig, startTestOrigin } from '../helpers/origin-harness.js';
import { rawRequest } from '../helpers/origin-http.js';
import { STORAGE_KINDS, useStorage } from '../helpers/origin-storages.js';

/**
 * A title another replica (or an ingest) just added is not a 404 here until the next catalog
 * poll (issue 14, P2): edges remember a 404 for 10 s, so a title not in this replica's catalog
 * looks at the stored catalog once before the 404 — a stat (a HEAD on S3) when nothing changed,
 * and at most one look per UNKNOWN_REFRESH_MS whatever the number of such requests.
 */
const FILE = 'stream_360p.mp4';

describe.each(STORAGE_KINDS)('an origin on %s storage asked for a title newer than its catalog', (kind) => {
  const st = useStorage(kind);
  const started: RunningOrigin[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((o) => o.close()));
  });
  const start = async (config: ClusterConfig, clock: FakeClock) => {
    // No catalog poll: only a request may make it look.
    const o = await startTestOrigin(config, { clock, catalogPollMs: 0 });
    started.push(o);
    return o;
  };

  it('servesATitleIngestedAfterItLoadedItsCatalog', async () => {
    const config = st.on(originTestConfig());
    await ingestTitle(config, 'first', join(FIXTURES, 'hls-bytes'));
    const o = await start(config, new FakeClock(Date.parse('2025-03-01T12:00:00Z')));
    expect((await rawRequest(o.publicUrl, o.signed(`/o/first/${FILE}`), { method: 'HEAD' })).status).toBe(200);

    // Another replica (here: an ingest from elsewhere) adds a title; this one's catalog lacks it.
    await ingestTitle(config, 'brand-new', join(FIXTURES, 'hls-bytes'));
    expect(o.server.catalog().get('brand-new')).toBeUndefined();
    expect((await rawRequest(o.publicUrl, o.signed(`/o/brand-new/${FILE}`), { method: 'HEAD' })).status).toBe(200);
    // A file the title does not have is still a 404, and so is a title no catalog has.
    expect((await rawRequest(o.publicUrl, o.signed(`/o/brand-new/nope.mp4`), { method: 'HEAD' })).status).toBe(404);
    expect((await rawRequest(o.publicUrl, o.signed(`/o/never/${FILE}`), { method: 'HEAD' })).status).toBe(404);
  });

  it.runIf(kind === 's3')('looksAtTheStoredCatalogAtMostOncePerIntervalForUnknownTitles', async () => {
    const config = st.on(originTestConfig());
    await ingestTitle(config, 'first', join(FIXTURES, 'hls-bytes'));
    const clock = new FakeClock(Date.parse('2025-03-01T12:00:00Z'));
    const o = await start(config, clock);
    const catalogLooks = (from: number) => st.s3().requests.slice(from).filter((r) => r.path.includes('catalog.json')).length;
    const ask = () => Promise.all(Array.from({ length: 20 }, (_, n) => rawRequest(o.publicUrl, o.signed(`/o/missing-${n}/${FILE}`), { method: 'HEAD' })));

    let mark = st.s3().requests.length;
    expect((await ask()).map((r) => r.status)).toEqual(Array(20).fill(404));
    expect(catalogLooks(mark)).toBe(1); // one HEAD, shared by all 20
    mark = st.s3().requests.length;
    expect((await ask()).every((r) => r.status === 404)).toBe(true);
    expect(catalogLooks(mark)).toBe(0); // within the interval: none
    clock.advance(1000);
    mark = st.s3().requests.length;
    await ask();
    expect(catalogLooks(mark)).toBe(1);
  });
});

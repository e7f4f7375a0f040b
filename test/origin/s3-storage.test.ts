import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/common/clock.js';
import type { ClusterConfig } from '../../src/common/config.js';
import { loadCatalog } from '../../src/origin/catalog.js';
import { utcDay } from '../../src/origin/plays.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { SliceDigests, sliceDigestsOf } from '../../src/origin/slice-digests.js';
import { originStorage } from '../../src/origin/storage/open-storage.js';
import { S3Storage } from '../../src/origin/storage/s3-storage.js';
import { type OriginStorage, entryFileKey, rangeSource } from '../../src/origin/storage/storage.js';
import { FIXTURES, type RunningOrigin, authHeader, originTestConfig, refusal, startTestOrigin } from '../helpers/origin-harness.js';
import { deadPort } from '../helpers/http-tools.js';
import { rawRequest } from '../helpers/origin-http.js';
import { useStorage } from '../helpers/origin-storages.js';

// What only an origin on S3 has to show: the tests it shares with a local folder run on both
// storages (origin-server, origin-ingest, origin-plays, versioned-layout).

const FILE = 'stream_360p.mp4';
const source = readFileSync(join(FIXTURES, 'hls-bytes', FILE));

const st = useStorage('s3');
const started: RunningOrigin[] = [];
const start = async (config: ClusterConfig, opts: Parameters<typeof startTestOrigin>[1] = {}) => {
  const o = await startTestOrigin(config, opts);
  started.push(o);
  return o;
};
afterEach(async () => {
  await Promise.all(started.splice(0).map((o) => o.close()));
});

/** The S3 requests made for the objects of titles (not the catalog or plays). */
const titleRequests = (from: number) => st.s3().requests.slice(from).filter((r) => r.path.includes('/titles/'));

describe('an origin on S3', () => {
  it('itReadsObjectsByRangedGetsOnlyAndNotAtAllWhenNoBodyIsSent', async () => {
    const config = st.on(originTestConfig());
    const entry = await ingestTitle(config, 'movie', join(FIXTURES, 'hls-bytes'));
    const etag = `"${entry.files.find((f) => f.path === FILE)!.sha256.slice(0, 32)}"`;
    const o = await start(config);
    const get = (headers: Record<string, string> = {}, method = 'GET') => rawRequest(o.publicUrl, o.signed(`/o/movie/${FILE}`), { method, headers });

    let mark = st.s3().requests.length;
    const whole = await get();
    expect([whole.status, whole.body.equals(source)]).toEqual([200, true]);
    const part = await get({ range: 'bytes=1000-1999' });
    expect([part.status, part.body.equals(source.subarray(1000, 2000))]).toEqual([206, true]);
    const multi = await get({ range: 'bytes=0-9,500-509' });
    expect(multi.status).toBe(206);
    const reads = titleRequests(mark);
    expect(reads.map((r) => [r.method, r.range])).toEqual([
      ['GET', `bytes=0-${source.length - 1}`],
      ['GET', 'bytes=1000-1999'],
      ['GET', 'bytes=0-9'],
      ['GET', 'bytes=500-509'],
    ]);

    // HEAD, 304 and 416 send no bytes: the store is not asked.
    mark = st.s3().requests.length;
    expect((await get({}, 'HEAD')).status).toBe(200);
    expect((await get({ 'if-none-match': etag })).status).toBe(304);
    expect((await get({ range: `bytes=${source.length}-` })).status).toBe(416);
    expect(titleRequests(mark)).toEqual([]);
  });

  it('itAnswers503NotACutBodyWhenTheListedObjectIsGone', async () => {
    const config = st.on(originTestConfig());
    const entry = await ingestTitle(config, 'movie', join(FIXTURES, 'hls-bytes'));
    const o = await start(config);
    await st.view(config).remove(entryFileKey(entry, FILE));
    const r = await rawRequest(o.publicUrl, o.signed(`/o/movie/${FILE}`), { headers: { range: 'bytes=0-99' } });
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('1');
  });

  it('itServesOneCatalogAndCountsOnePlaysDocumentFromTwoReplicas', async () => {
    const config = st.on(originTestConfig());
    const clock = new FakeClock(Date.parse('2025-03-02T12:00:00Z'));
    const a = await start(config, { catalogPollMs: 50 });
    const b = await start(config, { catalogPollMs: 50 });
    // Each replica polls the catalog's ETag, so an ingest from anywhere reaches both.
    await ingestTitle(config, 'movie', join(FIXTURES, 'hls-bytes'), { clock });
    for (const o of [a, b]) {
      await expect.poll(() => o.server.catalog().get('movie')?.version, { timeout: 5000 }).toBeDefined();
      const r = await rawRequest(o.publicUrl, o.signed(`/o/movie/${FILE}`), { headers: { range: 'bytes=0-99' } });
      expect([r.status, r.body.equals(source.subarray(0, 100))]).toEqual([206, true]);
    }

    // Steering's plays reach whichever replica its POST lands on; the document holds them all.
    const now = Date.now(); // the origins run on the system clock, which prunes old days
    const day = utcDay(now);
    const post = (o: RunningOrigin, n: number) =>
      rawRequest(o.adminUrl, '/v1/plays', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...authHeader },
        body: JSON.stringify({ plays: Array.from({ length: n }, () => ({ title: 'movie', isp: 'isp-a', at: now })) }),
      });
    expect((await post(a, 3)).status).toBe(204);
    expect((await post(b, 4)).status).toBe(204);
    await Promise.all([a.server.plays().flush(), b.server.plays().flush()]);
    // And each replica takes in the other's on its next poll.
    for (const o of [a, b]) await expect.poll(() => o.server.plays().countsFor(day), { timeout: 5000 }).toEqual({ 'isp-a': { movie: 7 } });
    const doc = JSON.parse((await st.view(config).read('plays.json'))!.toString());
    expect(doc.days[day]).toEqual({ 'isp-a': { movie: 7 } });
  });

  it('itMergesTheCatalogWhenAnotherWriterSavedItFirst', async () => {
    // A writer that got past the lock (a store ignoring it, an operator's script) saves between this
    // ingest's read and its save: the conditional save fails, and the ingest merges instead of
    // dropping the other title.
    const config = st.on(originTestConfig());
    const storage = originStorage(config.origin);
    let interfered = false;
    const racing: OriginStorage = Object.create(storage, {
      writeDocument: {
        value: async (key: string, data: string, ifTag?: string | null) => {
          if (key === 'catalog.json' && !interfered) {
            interfered = true;
            await ingestTitle(config, 'other', join(FIXTURES, 'dash'), { storage: Object.create(storage, { lock: { value: async () => async () => {} } }) });
          }
          return storage.writeDocument(key, data, ifTag);
        },
      },
    });
    await ingestTitle(config, 'movie', join(FIXTURES, 'hls-bytes'), { storage: racing });
    expect(interfered).toBe(true);
    expect((await loadCatalog(storage)).titles().map((t) => t.title)).toEqual(['movie', 'other']);
  });
});

describe('conditional writes', () => {
  it('itTellsAStoreThatHonoursThemFromOneThatIgnoresThem', async () => {
    const config = st.on(originTestConfig());
    const s3cfg = config.origin.storage as Extract<ClusterConfig['origin']['storage'], { kind: 's3' }>;
    expect(await new S3Storage(s3cfg).honoursConditionalWrites()).toBe(true);
    expect(await new S3Storage({ ...s3cfg, endpoint: st.s3().plainEndpoint }).honoursConditionalWrites()).toBe(false);
    // The probe leaves nothing behind.
    expect(await st.view(config).list('')).toEqual([]);
    expect(await originStorage(config.origin).list('')).toEqual([]);
    await st.view(config).write('titles/movie/v1/a.m4s', 'x');
    await st.view(config).write('plays.json', '{}');
    expect(await originStorage(config.origin).list('')).toEqual(['plays.json', 'titles']);
  });

  it('itNamesTheStorageFieldAsNeedingARestartOnReload', async () => {
    const config = st.on(originTestConfig());
    const o = await start(config);
    const s3cfg = config.origin.storage as Extract<ClusterConfig['origin']['storage'], { kind: 's3' }>;
    const moved = { ...config, origin: { ...config.origin, storage: { ...s3cfg, prefix: 'elsewhere/' } } };
    expect((await o.server.reload(moved)).needsRestart).toContain('origin.storage');
    expect((await o.server.reload(config)).needsRestart).not.toContain('origin.storage');
  });
});

describe('a store that cannot be reached', () => {
  it('itIsOneLineNamingTheCatalogsPlace', async () => {
    const config = st.on(originTestConfig());
    const s3cfg = config.origin.storage as Extract<ClusterConfig['origin']['storage'], { kind: 's3' }>;
    const storage = new S3Storage({ ...s3cfg, endpoint: `http://127.0.0.1:${await deadPort()}` }, { client: { maxAttempts: 1 } });
    const err = await loadCatalog(storage).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(new RegExp(`^s3://${s3cfg.bucket}/${s3cfg.prefix}catalog\\.json: \\(file\\): cannot read: \\w+.*ECONNREFUSED`));
    expect(err?.message.split('\n')).toHaveLength(1);
    expect(err?.message.match(/s3:\/\//g)).toHaveLength(1);
  });
});

describe('the ingest lock on S3', () => {
  it('itRefusesASecondIngestWhileTheLeaseIsHeldAndLeavesTheLockAlone', async () => {
    const config = st.on(originTestConfig());
    const release = await originStorage(config.origin).lock('.ingest.lock', 'another ingest into this origin');
    const err = await refusal(ingestTitle(config, 'movie', join(FIXTURES, 'dash')));
    expect(err.userFacing).toBe(true);
    expect(err.message).toMatch(/another ingest into this origin is already running \(.* pid \d+ [0-9a-f]{8}, lease until /);
    expect(await st.view(config).exists('.ingest.lock')).toBe(true);
    expect(await st.view(config).list('titles/')).toEqual([]);
    await release();
    expect(await st.view(config).exists('.ingest.lock')).toBe(false);
    await expect(ingestTitle(config, 'movie', join(FIXTURES, 'dash'))).resolves.toMatchObject({ title: 'movie' });
  });

  it('itTakesOverALeaseItsOwnerStoppedRenewing', async () => {
    const config = st.on(originTestConfig());
    await st.view(config).write('.ingest.lock', JSON.stringify({ owner: 'gone-host pid 1 00000000', expiresAt: '2020-01-01T00:00:00.000Z' }));
    await ingestTitle(config, 'movie', join(FIXTURES, 'dash'));
    expect(await st.view(config).exists('.ingest.lock')).toBe(false);
  });

  it('itRenewsItsLeaseWhileItHoldsIt', async () => {
    const config = st.on(originTestConfig());
    const clock = new FakeClock(Date.parse('2025-03-02T12:00:00Z'));
    const storage = new S3Storage(config.origin.storage as Extract<ClusterConfig['origin']['storage'], { kind: 's3' }>, { clock, lockLeaseMs: 60 });
    const release = await storage.lock('.ingest.lock', 'an ingest');
    const first = JSON.parse((await st.view(config).read('.ingest.lock'))!.toString()).expiresAt as string;
    clock.advance(1000);
    await expect.poll(async () => JSON.parse((await st.view(config).read('.ingest.lock'))!.toString()).expiresAt, { timeout: 5000 }).not.toBe(first);
    await release();
    expect(await st.view(config).exists('.ingest.lock')).toBe(false);
  });
});

describe('slice digests from S3', () => {
  it('itDigestsThePrefixOfAFileByRangedReadsAsFromDisk', async () => {
    const config = st.on(originTestConfig());
    const entry = await ingestTitle(config, 'movie', join(FIXTURES, 'hls-bytes'));
    const file = entry.files.find((f) => f.path === FILE)!;
    const slice = 64 * 1024;
    const mark = st.s3().requests.length;
    const fromS3 = await new SliceDigests().of(rangeSource(originStorage(config.origin), entryFileKey(entry, FILE), file.size), file.sha256, slice, 2);
    expect(fromS3).toEqual((await sliceDigestsOf(join(FIXTURES, 'hls-bytes', FILE), slice)).slice(0, 2));
    // Only the prefix is read.
    expect(titleRequests(mark).map((r) => r.range)).toEqual([`bytes=0-${2 * slice - 1}`]);
    // A prefix running past the end is clamped to the file.
    const all = await sliceDigestsOf(rangeSource(originStorage(config.origin), entryFileKey(entry, FILE), file.size), slice, 0, 1000);
    expect(all).toEqual(await sliceDigestsOf(join(FIXTURES, 'hls-bytes', FILE), slice));
  });
});

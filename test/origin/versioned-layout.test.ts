import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { seededBytes } from '../../bench/seeded-random.js';
import { FakeClock } from '../../src/common/clock.js';
import { contentTypeFor } from '../../src/common/mime.js';
import { catalogPath, entryDir, loadCatalog, titleDir } from '../../src/origin/catalog.js';
import { originStorage } from '../../src/origin/storage/open-storage.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { DEFAULT_VERSION_GRACE_MS } from '../../src/origin/version-sweep.js';
import { FIXTURES, type RunningOrigin, copyFixture, originTempDir, originTestConfig, startTestOrigin } from '../helpers/origin-harness.js';
import { rawRequest } from '../helpers/origin-http.js';
import { STORAGE_KINDS, useStorage } from '../helpers/origin-storages.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const etagOf = (b: Buffer) => `"${sha256(b).slice(0, 32)}"`;
const T0 = Date.parse('2026-03-02T12:00:00Z');

/**
 * dataDir as the origin wrote it before versioned folders: the files loose in titles/{title}/,
 * catalog entries without a version.
 */
function writeUnversionedTitle(dataDir: string, title: string, fixture: string, manifests: string[]): void {
  const dir = titleDir(dataDir, title);
  mkdirSync(join(dataDir, 'titles'), { recursive: true });
  cpSync(join(FIXTURES, fixture), dir, { recursive: true });
  const files = readdirSync(dir)
    .sort()
    .map((path) => {
      const data = readFileSync(join(dir, path));
      return { path, size: data.length, sha256: sha256(data), contentType: contentTypeFor(path) };
    });
  const doc = { version: 1, titles: [{ title, kind: 'hls', manifests, files, bytes: files.reduce((n, f) => n + f.size, 0), ingestedAt: '2025-01-01T00:00:00.000Z' }] };
  writeFileSync(catalogPath(dataDir), JSON.stringify(doc, null, 2) + '\n');
}

/** A one-segment HLS title whose segment is `bytes` long, seeded. */
function bigTitle(bytes: number, seed: number): { dir: string; data: Buffer } {
  const dir = originTempDir('reelcdn-src-');
  const data = seededBytes(bytes, seed);
  writeFileSync(join(dir, 'big.m4s'), data);
  writeFileSync(join(dir, 'index.m3u8'), '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:4.0,\nbig.m4s\n#EXT-X-ENDLIST\n');
  return { dir, data };
}

let origin: RunningOrigin | undefined;
afterEach(async () => {
  await origin?.close();
  origin = undefined;
});

describe('origin data written before versioned folders', () => {
  it('itServesAnUnversionedTitleAfterTheUpgrade', async () => {
    const config = originTestConfig();
    writeUnversionedTitle(config.origin.dataDir, 'movie', 'hls-bytes', ['master.m3u8']);
    origin = await startTestOrigin(config);
    for (const f of ['master.m3u8', 'stream_180p.m3u8', 'stream_360p.mp4']) {
      const src = readFileSync(join(FIXTURES, 'hls-bytes', f));
      const r = await rawRequest(origin.publicUrl, origin.signed(`/o/movie/${f}`));
      expect(r.status).toBe(200);
      expect(r.headers.etag).toBe(etagOf(src));
      expect(r.body.equals(src)).toBe(true);
    }
    const src = readFileSync(join(FIXTURES, 'hls-bytes', 'stream_360p.mp4'));
    const ranged = await rawRequest(origin.publicUrl, origin.signed('/o/movie/stream_360p.mp4'), { headers: { range: 'bytes=1000-1999' } });
    expect(ranged.status).toBe(206);
    expect(ranged.body.equals(src.subarray(1000, 2000))).toBe(true);
  });

  it('itReplacesAnUnversionedTitleWithoutTouchingItsFilesUntilTheGraceHasPassed', async () => {
    const config = originTestConfig();
    const dataDir = config.origin.dataDir;
    writeUnversionedTitle(dataDir, 'movie', 'hls-bytes', ['master.m3u8']);
    origin = await startTestOrigin(config);
    const oldBytes = readFileSync(join(FIXTURES, 'hls-bytes', 'stream_360p.mp4'));
    const changed = copyFixture('hls-bytes');
    const newBytes = Buffer.from(oldBytes.map((b) => b ^ 0xff));
    writeFileSync(join(changed, 'stream_360p.mp4'), newBytes);

    const clock = new FakeClock(T0);
    const entry = await ingestTitle(config, 'movie', changed, { clock });
    expect(entry.version).toMatch(/^v20260302T120000000Z-[0-9a-f]{8}$/);
    // Not reloaded yet: the old entry, its loose files, its ETag.
    let r = await rawRequest(origin.publicUrl, origin.signed('/o/movie/stream_360p.mp4'));
    expect([r.headers.etag, r.body.equals(oldBytes)]).toEqual([etagOf(oldBytes), true]);
    await origin.server.reloadCatalog();
    r = await rawRequest(origin.publicUrl, origin.signed('/o/movie/stream_360p.mp4'));
    expect([r.headers.etag, r.body.equals(newBytes)]).toEqual([etagOf(newBytes), true]);
    expect(readFileSync(join(entryDir(dataDir, entry), 'stream_360p.mp4')).equals(newBytes)).toBe(true);

    // Another ingest just short of the grace keeps the loose files; one past it removes them.
    clock.advance(DEFAULT_VERSION_GRACE_MS - 1);
    await ingestTitle(config, 'other', join(FIXTURES, 'hls-segments'), { clock });
    expect(existsSync(join(titleDir(dataDir, 'movie'), 'stream_360p.mp4'))).toBe(true);
    clock.advance(1);
    await ingestTitle(config, 'other', join(FIXTURES, 'hls-segments'), { clock });
    expect(readdirSync(titleDir(dataDir, 'movie'))).toEqual([entry.version]);
    r = await rawRequest(origin.publicUrl, origin.signed('/o/movie/stream_360p.mp4'));
    expect([r.status, r.body.equals(newBytes)]).toEqual([200, true]);
  });
});

// The sweep on the origin's two storages: a local folder and an S3 API server.
describe.each(STORAGE_KINDS)('replaced versions on %s storage', (kind) => {
  const st = useStorage(kind);

  it('itDeletesAReplacedVersionOnlyAfterTheGraceAndAlwaysKeepsTheCurrentOne', async () => {
    const config = st.on(originTestConfig());
    const view = st.view(config);
    const clock = new FakeClock(T0);
    const graceMs = 60_000;
    const v1 = await ingestTitle(config, 'movie', join(FIXTURES, 'hls-bytes'), { clock, versionGraceMs: graceMs });
    clock.advance(1000);
    const v2 = await ingestTitle(config, 'movie', join(FIXTURES, 'hls-bytes'), { clock, versionGraceMs: graceMs });
    // Same bytes, new version: the ETags stay (they come from the bytes), the folder is new.
    expect(v2.version).not.toBe(v1.version);
    expect(v2.files).toEqual(v1.files);
    expect((await view.list('titles/movie/'))).toEqual([v1.version, v2.version]);

    clock.advance(graceMs - 1);
    const v3 = await ingestTitle(config, 'movie', join(FIXTURES, 'dash'), { clock, versionGraceMs: graceMs });
    expect((await view.list('titles/movie/'))).toEqual([v1.version, v2.version, v3.version]);
    clock.advance(1);
    await ingestTitle(config, 'other', join(FIXTURES, 'dash'), { clock, versionGraceMs: graceMs });
    expect((await view.list('titles/movie/'))).toEqual([v2.version, v3.version]);
    clock.advance(10 * graceMs);
    await ingestTitle(config, 'other', join(FIXTURES, 'dash'), { clock, versionGraceMs: graceMs });
    expect(await view.list('titles/movie/')).toEqual([v3.version]);
    expect((await loadCatalog(originStorage(config.origin))).get('movie')).toEqual(v3);
  });

  it('itRemovesWhatCrashedIngestsLeftBehind', async () => {
    const config = st.on(originTestConfig());
    const view = st.view(config);
    await view.write('titles/.staging-movie-999-abcdef01/manifest.mpd', 'left behind');
    await view.write('titles/.old-movie-999-abcdef01/manifest.mpd', 'left behind');
    await ingestTitle(config, 'movie', join(FIXTURES, 'dash'));
    expect(await view.list('titles/')).toEqual(['movie']);
  });

  it('itFinishesAnAnswerWhoseVersionIsDeletedMidStream', async () => {
    const config = st.on(originTestConfig());
    const first = bigTitle(8 * 1024 * 1024, 1);
    const second = bigTitle(8 * 1024 * 1024, 2);
    const v1 = await ingestTitle(config, 'movie', first.dir);
    origin = await startTestOrigin(config);

    const u = new URL(origin.publicUrl);
    const bigPath = origin.signed('/o/movie/big.m4s');
    const answer = await new Promise<{ etag: string; chunks: Buffer[]; done: Promise<void>; resume: () => void }>((resolve, reject) => {
      const req = httpRequest({ host: u.hostname, port: u.port, path: bigPath, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        const done = new Promise<void>((ok, fail) => {
          res.on('end', ok);
          res.on('error', fail);
        });
        res.once('data', (c: Buffer) => {
          chunks.push(c);
          res.pause(); // hold the answer open while its version goes away
          res.on('data', (more: Buffer) => chunks.push(more));
          resolve({ etag: String(res.headers.etag), chunks, done, resume: () => res.resume() });
        });
      });
      req.on('error', reject);
      req.end();
    });
    expect(answer.etag).toBe(etagOf(first.data));

    await ingestTitle(config, 'movie', second.dir, { versionGraceMs: 0 });
    await ingestTitle(config, 'movie', second.dir, { versionGraceMs: 0 });
    expect(await st.view(config).list('titles/movie/')).not.toContain(v1.version);

    answer.resume();
    await answer.done;
    expect(Buffer.concat(answer.chunks).equals(first.data)).toBe(true);

    // And the next request, with the origin's catalog still naming the deleted version, finds the current one.
    const r = await rawRequest(origin.publicUrl, origin.signed('/o/movie/big.m4s'));
    expect([r.status, r.headers.etag, r.body.equals(second.data)]).toEqual([200, etagOf(second.data), true]);
  });
});

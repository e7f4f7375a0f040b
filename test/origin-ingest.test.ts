import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../src/common/clock.js';
import type { ClusterConfig } from '../src/common/config.js';
import { CatalogError, catalogPath, loadCatalog, verifyCatalog } from '../src/origin/catalog.js';
import { ingestTitle } from '../src/origin/ingest.js';
import { originStorage } from '../src/origin/storage/open-storage.js';
import { entryFileKey } from '../src/origin/storage/storage.js';
import { FIXTURES, copyFixture, editedFixture, originTempDir, originTestConfig as baseConfig, refusal } from './helpers/origin-harness.js';
import { STORAGE_KINDS, useStorage } from './helpers/origin-storages.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const catalogOf = (config: ClusterConfig) => loadCatalog(originStorage(config.origin));

// The same tests on the origin's two storages: a local folder and an S3 API server.
describe.each(STORAGE_KINDS)('ingestTitle on %s storage', (kind) => {
  const st = useStorage(kind);
  const originTestConfig = () => st.on(baseConfig());
  it.each([
    ['hls-bytes', 'hls', ['master.m3u8'], ['master.m3u8', 'stream_180p.m3u8', 'stream_180p.mp4', 'stream_360p.m3u8', 'stream_360p.mp4']],
    ['hls-segments', 'hls', ['master.m3u8'], ['index_180p.m3u8', 'init_180p.mp4', 'master.m3u8', 'seg_180p_000.m4s', 'seg_180p_005.m4s']],
    ['dash', 'dash', ['manifest.mpd'], ['manifest.mpd', 'init-0.m4s', 'init-2.m4s', 'chunk-0-00001.m4s', 'chunk-2-00006.m4s']],
  ])('itIngestsTheFixture %s with correct hashes', async (fixture, kind, manifests, someFiles) => {
    const config = originTestConfig();
    const clock = new FakeClock(Date.parse('2025-03-01T12:00:00Z'));
    const entry = await ingestTitle(config, `t-${fixture}`, join(FIXTURES, fixture), { clock });

    expect(entry.kind).toBe(kind);
    expect(entry.manifests).toEqual(manifests);
    expect(entry.ingestedAt).toBe('2025-03-01T12:00:00.000Z');
    const paths = entry.files.map((f) => f.path);
    for (const f of someFiles) expect(paths).toContain(f);
    // Every file of the fixture folder is referenced, so all of them were taken.
    expect(paths.sort()).toEqual(readdirSync(join(FIXTURES, fixture)).sort());

    for (const f of entry.files) {
      const src = readFileSync(join(FIXTURES, fixture, f.path));
      const copy = (await st.view(config).read(entryFileKey(entry, f.path)))!;
      expect(f.size).toBe(src.length);
      expect(f.sha256).toBe(sha256(src));
      expect(copy.equals(src)).toBe(true);
    }
    expect(entry.bytes).toBe(entry.files.reduce((n, f) => n + f.size, 0));
    expect(entry.files.find((f) => f.path.endsWith('.m3u8') || f.path.endsWith('.mpd'))!.contentType).toMatch(/mpegurl|dash\+xml/);

    const catalog = await catalogOf(config);
    expect(catalog.get(entry.title)).toEqual(entry);
  });

  it('itKeepsEveryTitleWhenSeveralAreIngested', async () => {
    const config = originTestConfig();
    await ingestTitle(config, 'a', join(FIXTURES, 'hls-segments'));
    await ingestTitle(config, 'b', join(FIXTURES, 'dash'));
    const catalog = await catalogOf(config);
    expect(catalog.titles().map((t) => t.title)).toEqual(['a', 'b']);
  });

  it('itReplacesATitleWholeOnReingest', async () => {
    const config = originTestConfig();
    await ingestTitle(config, 'movie', join(FIXTURES, 'hls-bytes'));
    const second = await ingestTitle(config, 'movie', join(FIXTURES, 'dash'));
    const view = st.view(config);
    expect(await view.list(`titles/movie/${second.version}/`)).toEqual(second.files.map((f) => f.path).sort());
    expect((await catalogOf(config)).get('movie')!.kind).toBe('dash');
    // No staging copies are left behind; the replaced version stays for its grace period.
    expect(await view.list('titles/')).toEqual(['movie']);
    expect(await view.list('titles/movie/')).toHaveLength(2);
  });

  it('itRefusesAFolderWithAMissingSegmentNamingItAndIngestsNothing', async () => {
    const config = originTestConfig();
    await ingestTitle(config, 'keep', join(FIXTURES, 'hls-segments'));
    const view = st.view(config);
    const before = (await view.read('catalog.json'))!.toString();

    const src = copyFixture('hls-segments');
    rmSync(join(src, 'seg_180p_003.m4s'));
    const err = await refusal(ingestTitle(config, 'broken', src));
    expect(err.userFacing).toBe(true);
    expect(err.message).toContain('seg_180p_003.m4s');
    expect(err.message).toContain('index_180p.m3u8');

    expect((await view.read('catalog.json'))!.toString()).toBe(before);
    expect(await view.list('titles/')).toEqual(['keep']);
    expect(await view.exists('.ingest.lock')).toBe(false);
  });

  it('itKeepsThePreviousVersionWhenAReingestIsRefused', async () => {
    const config = originTestConfig();
    const first = await ingestTitle(config, 'movie', join(FIXTURES, 'dash'));
    const src = copyFixture('dash');
    rmSync(join(src, 'init-1.m4s'));
    const err = await refusal(ingestTitle(config, 'movie', src));
    expect(err.message).toMatch(/init-1\.m4s.*missing/);
    expect((await catalogOf(config)).get('movie')).toEqual(first);
    const view = st.view(config);
    expect(await view.list('titles/movie/')).toEqual([first.version]);
    expect((await view.list(`titles/movie/${first.version}/`)).length).toBe(first.files.length);
  });

  it('itRefusesAMissingVariantPlaylist', async () => {
    const src = copyFixture('hls-bytes');
    rmSync(join(src, 'stream_360p.m3u8'));
    const err = await refusal(ingestTitle(originTestConfig(), 'x', src));
    expect(err.message).toMatch(/stream_360p\.m3u8, referenced by master\.m3u8, is missing/);
  });

  it('itRefusesByteRangesBeyondTheFile', async () => {
    const src = copyFixture('hls-bytes');
    const file = join(src, 'stream_180p.mp4');
    writeFileSync(file, readFileSync(file).subarray(0, 5000));
    const err = await refusal(ingestTitle(originTestConfig(), 'x', src));
    expect(err.message).toMatch(/stream_180p\.mp4, which has only 5000 bytes/);
  });

  it('itRefusesReferencesOutOfTheFolder', async () => {
    const src = editedFixture('hls-segments', 'index_180p.m3u8', (t) => t.replace('seg_180p_001.m4s', '../outside.m4s'));
    writeFileSync(join(src, '..', 'outside.m4s'), 'x');
    const err = await refusal(ingestTitle(originTestConfig(), 'x', src));
    expect(err.userFacing).toBe(true);
    expect(err.message).toMatch(/outside the title folder/);
  });

  it('itRefusesSymlinksPointingOutOfTheFolder', async () => {
    const src = copyFixture('hls-segments');
    const outside = join(originTempDir(), 'secret.m4s');
    writeFileSync(outside, 'secret');
    rmSync(join(src, 'seg_180p_002.m4s'));
    symlinkSync(outside, join(src, 'seg_180p_002.m4s'));
    const err = await refusal(ingestTitle(originTestConfig(), 'x', src));
    expect(err.message).toMatch(/seg_180p_002\.m4s.*link to outside the folder/);
  });

  it('itFollowsSymlinksThatStayInsideTheFolder', async () => {
    const src = copyFixture('hls-segments');
    const data = readFileSync(join(src, 'seg_180p_002.m4s'));
    writeFileSync(join(src, 'real.bin'), data);
    rmSync(join(src, 'seg_180p_002.m4s'));
    symlinkSync('real.bin', join(src, 'seg_180p_002.m4s'));
    const config = originTestConfig();
    const entry = await ingestTitle(config, 'x', src);
    const f = entry.files.find((x) => x.path === 'seg_180p_002.m4s')!;
    expect(f.sha256).toBe(sha256(data));
    // Only referenced files are ingested.
    expect(entry.files.some((x) => x.path === 'real.bin')).toBe(false);
  });

  it.each([
    ['bad title', 'a/b', /title "a\/b"/],
    ['no folder', 'x', /does not exist/],
  ])('itRefusesBadArguments: %s', async (_n, title, msg) => {
    const err = await refusal(ingestTitle(originTestConfig(), title, title === 'x' ? '/nonexistent/folder' : FIXTURES));
    expect(err.userFacing).toBe(true);
    expect(err.message).toMatch(msg);
  });

  it('itRefusesAFolderWithoutManifests', async () => {
    const dir = originTempDir();
    writeFileSync(join(dir, 'seg.m4s'), 'x');
    const err = await refusal(ingestTitle(originTestConfig(), 'x', dir));
    expect(err.message).toMatch(/no HLS \(\.m3u8\) or DASH \(\.mpd\) manifest/);
  });

  it('itMarksATitleWithBothKindsAsBoth', async () => {
    const src = copyFixture('hls-segments');
    for (const f of readdirSync(join(FIXTURES, 'dash'))) writeFileSync(join(src, f), readFileSync(join(FIXTURES, 'dash', f)));
    const entry = await ingestTitle(originTestConfig(), 'x', src);
    expect(entry.kind).toBe('both');
    expect(entry.manifests).toEqual(['manifest.mpd', 'master.m3u8']);
  });
});

// The lock on a local folder names its owner's pid (S3 has a lease: test/origin/s3-storage.test.ts).
describe('ingest lock on a local folder', () => {
  it('itTakesOverALockLeftByACrashedIngest', async () => {
    const config = baseConfig();
    mkdirSync(config.origin.dataDir, { recursive: true });
    writeFileSync(join(config.origin.dataDir, '.ingest.lock'), '2147483646');
    await ingestTitle(config, 'a', join(FIXTURES, 'hls-segments'));
    expect(existsSync(join(config.origin.dataDir, '.ingest.lock'))).toBe(false);
  });

  it('itRefusesToIngestWhileAnotherLiveProcessHoldsTheLock', async () => {
    const config = baseConfig();
    mkdirSync(config.origin.dataDir, { recursive: true });
    // Our parent process is alive: its lock must be respected, and left in place.
    writeFileSync(join(config.origin.dataDir, '.ingest.lock'), String(process.ppid));
    const err = await refusal(ingestTitle(config, 'a', join(FIXTURES, 'dash')));
    expect(err.message).toMatch(new RegExp(`already running \\(pid ${process.ppid}\\)`));
    expect(existsSync(join(config.origin.dataDir, '.ingest.lock'))).toBe(true);
    expect(existsSync(join(config.origin.dataDir, 'titles', 'a'))).toBe(false);
  });

});

describe('catalog verification', () => {
  const good = () => ({
    version: 1,
    titles: [
      {
        title: 't',
        kind: 'hls',
        manifests: ['m.m3u8'],
        files: [{ path: 'm.m3u8', size: 3, sha256: 'a'.repeat(64), contentType: 'application/vnd.apple.mpegurl' }],
        bytes: 3,
        ingestedAt: '2025-01-01T00:00:00.000Z',
      },
    ],
  });

  it('itAcceptsAGoodDocument', () => {
    expect(verifyCatalog(good(), 'c.json')[0]!.title).toBe('t');
  });

  it.each([
    [(d: any) => (d.version = 2), 'version'],
    [(d: any) => (d.titles[0].title = '../x'), 'titles[0].title'],
    [(d: any) => (d.titles[0].kind = 'mp4'), 'titles[0].kind'],
    [(d: any) => (d.titles[0].files[0].path = '../etc/passwd'), 'titles[0].files[0].path'],
    [(d: any) => (d.titles[0].files[0].sha256 = 'xyz'), 'titles[0].files[0].sha256'],
    [(d: any) => (d.titles[0].files[0].size = -1), 'titles[0].files[0].size'],
    [(d: any) => (d.titles[0].manifests = ['other.m3u8']), 'titles[0].manifests[0]'],
    [(d: any) => (d.titles[0].bytes = 4), 'titles[0].bytes'],
    [(d: any) => (d.titles[0].ingestedAt = 'yesterday'), 'titles[0].ingestedAt'],
    [(d: any) => (d.titles[0].version = '../../etc'), 'titles[0].version'],
    [(d: any) => d.titles.push(d.titles[0]), 'titles[1].title'],
  ])('itNamesTheBadField %#', (mutate, field) => {
    const d = good();
    mutate(d);
    expect(() => verifyCatalog(d, 'c.json')).toThrow(CatalogError);
    expect(() => verifyCatalog(d, 'c.json')).toThrow(`c.json: ${field}:`);
  });

  it('itRefusesAnUnparsableCatalogFileClearly', async () => {
    const config = baseConfig();
    await ingestTitle(config, 'a', join(FIXTURES, 'hls-segments'));
    writeFileSync(catalogPath(config.origin.dataDir), '{"version":1,"titles":[');
    await expect(loadCatalog(config.origin.dataDir)).rejects.toThrow(/catalog\.json: \(file\): not valid JSON/);
  });
});

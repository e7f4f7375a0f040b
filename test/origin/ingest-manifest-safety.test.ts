import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { validateCluster } from '../../src/common/config.js';
import { loadCatalog } from '../../src/origin/catalog.js';
import { ingestTitle } from '../../src/origin/ingest.js';
import { copyFixture, editedFixture, originTempDir, originTestConfig, refusal } from '../helpers/origin-harness.js';

const hostileHls = (edit: (text: string) => string) => editedFixture('hls-segments', 'index_180p.m3u8', edit);
const hostileDash = (edit: (text: string) => string) => editedFixture('dash', 'manifest.mpd', edit);

const afterMap = (line: string) => (t: string) => t.replace('#EXT-X-MAP:URI="init_180p.mp4"', `#EXT-X-MAP:URI="init_180p.mp4"\n${line}`);
const inPeriod = (xml: string) => (t: string) => t.replace('<Period id="0" start="PT0.0S">', `<Period id="0" start="PT0.0S">${xml}`);
const inMpd = (xml: string) => (t: string) => t.replace('<Period id="0"', `${xml}<Period id="0"`);

describe('ingest refuses manifests that send players elsewhere', () => {
  it.each([
    [
      'duplicate URI (the origin used to keep the last, steering the first)',
      () => hostileHls((t) => t.replace('#EXT-X-MAP:URI="init_180p.mp4"', '#EXT-X-MAP:URI="https://evil.example/init.mp4",URI="init_180p.mp4"')),
      /index_180p\.m3u8 line \d+: EXT-X-MAP: duplicate attribute URI/,
    ],
    ['preload hint', () => hostileHls(afterMap('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="https://evil.example/p.mp4"')), /EXT-X-PRELOAD-HINT URI: absolute URL "https:\/\/evil/],
    ['rendition report', () => hostileHls(afterMap('#EXT-X-RENDITION-REPORT:URI="https://evil.example/a.m3u8",LAST-MSN=5')), /EXT-X-RENDITION-REPORT URI/],
    ['key server', () => hostileHls(afterMap('#EXT-X-KEY:METHOD=AES-128,URI="https://evil.example/key"')), /EXT-X-KEY URI: absolute URL/],
    [
      'session key',
      () => editedFixture('hls-segments', 'master.m3u8', (t) => t.replace('#EXT-X-VERSION:7', '#EXT-X-VERSION:7\n#EXT-X-SESSION-KEY:METHOD=AES-128,URI="https://evil.example/k"')),
      /master\.m3u8 line 3: EXT-X-SESSION-KEY URI/,
    ],
    ['DASH xlink period', () => hostileDash(inMpd('<Period xlink:href="https://evil.example/p.xml" xlink:actuate="onLoad"/>')), /manifest\.mpd MPD\/Period\[1\]: xlink attribute xlink:href/],
    ['DASH second BaseURL', () => hostileDash(inMpd('<BaseURL>./</BaseURL><BaseURL>https://evil.example/</BaseURL>')), /manifest\.mpd MPD: more than one BaseURL/],
    ['DASH Location', () => hostileDash(inMpd('<Location>https://evil.example/m.mpd</Location>')), /Location is not allowed/],
    ['DASH UTCTiming', () => hostileDash(inMpd('<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="https://evil.example/now"/>')), /UTCTiming/],
    ['DASH xlink adaptation set', () => hostileDash(inPeriod('<AdaptationSet xlink:href="https://evil.example/as.xml"/>')), /xlink attribute/],
  ])('itRefusesAndNamesTheProblem: %s', async (_name, folder, message) => {
    const config = originTestConfig();
    const err = await refusal(ingestTitle(config, 'hostile', folder()));
    expect(err.message).toMatch(message);
    expect(err.userFacing).toBe(true);
    expect((await loadCatalog(config.origin.dataDir)).get('hostile')).toBeUndefined();
  });
});

describe('segment cap at ingest', () => {
  it('itRefuses100kSegmentsByTheDefaultCapBeforeLookingForFiles', async () => {
    const config = originTestConfig();
    expect(config.origin.maxSegmentsPerTitle).toBe(50_000);
    // One KB of MPD claiming 100,000 segments of 0.1 s: the cap answers, not 100k missing files.
    const dir = hostileDash(() =>
      `<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT10000S">` +
        `<Period><AdaptationSet><Representation id="0" bandwidth="1">` +
        `<SegmentTemplate timescale="10" duration="1" media="chunk-$RepresentationID$-$Number%05d$.m4s" initialization="init-$RepresentationID$.m4s"/>` +
        `</Representation></AdaptationSet></Period></MPD>`,
    );
    const err = await refusal(ingestTitle(config, 'huge', dir));
    expect(err.message).toMatch(/the title has more than 50000 segments \(origin\.maxSegmentsPerTitle = 50000\)/);
    expect(err.message).toMatch(/manifest\.mpd/);
  });

  it('itCountsSegmentsAcrossEveryManifestOfTheTitle', async () => {
    const base = originTestConfig();
    const raw = (max?: number) => ({
      signing: { keys: { k1: 'origin-test-secret-0123456789' }, activeKey: 'k1' },
      origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'origin', ...(max ? { maxSegmentsPerTitle: max } : {}) },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1' },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
      edges: [{ id: 'e', isp: 'isp-a', url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'e', diskBytes: 1e8, memoryBytes: 1e7 }],
    });
    // The DASH fixture has 3 representations of 6 segments: 18.
    const tight = validateCluster(raw(17), originTempDir());
    const err = await refusal(ingestTitle(tight, 'd', copyFixture('dash')));
    expect(err.message).toMatch(/more than 17 segments \(origin\.maxSegmentsPerTitle = 17\)/);
    const enough = validateCluster(raw(18), originTempDir());
    await expect(ingestTitle(enough, 'd', copyFixture('dash'))).resolves.toMatchObject({ title: 'd' });
    expect(base.origin.maxSegmentsPerTitle).toBeGreaterThan(18);
    expect(() => validateCluster(raw(-1), originTempDir())).toThrow(/origin\.maxSegmentsPerTitle: must be a positive integer/);
    expect(existsSync(tight.origin.dataDir) ? (await loadCatalog(tight.origin.dataDir)).get('d') : undefined).toBeUndefined();
  });
});

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingestTitle } from '../../src/origin/ingest.js';
import { FIXTURES } from '../steering-harness.js';
import { type ManifestWorld, manifestWorld, tamperManifest } from '../helpers/steering-origin.js';

const fixture = (p: string) => readFileSync(join(FIXTURES, p), 'utf8');
const segMedia = fixture('hls-segments/index_180p.m3u8');
const segMaster = fixture('hls-segments/master.m3u8');
const dashMpd = fixture('dash/manifest.mpd');

/**
 * Hostile manifests already in the catalog (written before ingest checked them, or by hand):
 * steering checks again and never emits a URL it did not build. Each title is the
 * hls-segments or dash fixture with one manifest replaced on the origin's disk.
 */
const HOSTILE: { title: string; fixture: string; file: string; text: string; play: string }[] = [
  {
    title: 'dup-uri',
    fixture: 'hls-segments',
    file: 'index_180p.m3u8',
    text: segMedia.replace('#EXT-X-MAP:URI="init_180p.mp4"', '#EXT-X-MAP:URI="https://evil.example/init.mp4",URI="init_180p.mp4"'),
    play: 'index_180p.m3u8',
  },
  {
    title: 'key-elsewhere',
    fixture: 'hls-segments',
    file: 'index_180p.m3u8',
    text: segMedia.replace('#EXT-X-MAP:URI="init_180p.mp4"', '#EXT-X-MAP:URI="init_180p.mp4"\n#EXT-X-KEY:METHOD=AES-128,URI="https://evil.example/key"'),
    play: 'index_180p.m3u8',
  },
  {
    title: 'session-data',
    fixture: 'hls-segments',
    file: 'master.m3u8',
    text: segMaster.replace('#EXT-X-VERSION:7', '#EXT-X-VERSION:7\n#EXT-X-SESSION-DATA:DATA-ID="com.x",URI="https://evil.example/d.json"'),
    play: 'master.m3u8',
  },
  {
    title: 'rendition-elsewhere',
    fixture: 'hls-segments',
    file: 'master.m3u8',
    text: segMaster.replace('#EXT-X-VERSION:7', '#EXT-X-VERSION:7\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="https://evil.example/a.m3u8"'),
    play: 'master.m3u8',
  },
  {
    title: 'xlink',
    fixture: 'dash',
    file: 'manifest.mpd',
    text: dashMpd.replace('</Period>', '</Period><Period xlink:href="https://evil.example/p.xml" xlink:actuate="onLoad"/>'),
    play: 'manifest.mpd',
  },
  {
    title: 'second-baseurl',
    fixture: 'dash',
    file: 'manifest.mpd',
    text: dashMpd.replace('<SegmentTemplate timescale="48000"', '<BaseURL>./</BaseURL><BaseURL>https://evil.example/</BaseURL><SegmentTemplate timescale="48000"'),
    play: 'manifest.mpd',
  },
  {
    title: 'location',
    fixture: 'dash',
    file: 'manifest.mpd',
    text: dashMpd.replace('<Period id="0"', '<Location>https://evil.example/m.mpd</Location><Period id="0"'),
    play: 'manifest.mpd',
  },
];

describe('steering with hostile manifests in the catalog', () => {
  let world: ManifestWorld;

  beforeAll(async () => {
    world = await manifestWorld();
    for (const h of HOSTILE) {
      await ingestTitle(world.config, h.title, join(FIXTURES, h.fixture));
      tamperManifest(world.config, h.title, h.file, h.text);
    }
    await ingestTitle(world.config, 'report', join(FIXTURES, 'hls-segments'));
    tamperManifest(world.config, 'report', 'index_180p.m3u8', segMedia.replace('#EXT-X-ENDLIST', '#EXT-X-RENDITION-REPORT:URI="other.m3u8",LAST-MSN=5\n#EXT-X-ENDLIST'));
    await world.start();
  }, 30_000);
  afterAll(async () => world?.close());

  it.each(HOSTILE.map((h) => [h.title, h] as const))('itRefusesToServe %s', async (_name, h) => {
    const res = await request(`${world.steeringUrl}/v1/play/${h.title}/${h.play}`);
    const body = await res.body.text();
    // An error for the operator (it names the problem), never a manifest for a player.
    expect(res.statusCode).toBe(502);
    expect(res.headers['content-type']).not.toMatch(/mpegurl|dash/);
    expect(body).not.toMatch(/#EXTM3U|<MPD/);
    expect(body).toMatch(/manifest cannot be served: .*(duplicate attribute|absolute URL|xlink|more than one BaseURL|Location)/);
  });

  it('itLeavesOutTagsWhoseUriItDoesNotBuild', async () => {
    const res = await request(`${world.steeringUrl}/v1/play/report/index_180p.m3u8`);
    const body = await res.body.text();
    expect(res.statusCode).toBe(200);
    expect(body).not.toContain('RENDITION-REPORT');
    // Every URI line and URI attribute is an edge URL steering signed.
    const edgeBases = world.edges.map((e) => `${e.url}/c/report/`);
    const uris = [...body.matchAll(/URI="([^"]*)"/g)].map((m) => m[1]!).concat(body.split('\n').filter((l) => l !== '' && !l.startsWith('#')));
    expect(uris.length).toBeGreaterThan(6);
    for (const u of uris) expect(edgeBases.some((b) => u.startsWith(b))).toBe(true);
  });
});

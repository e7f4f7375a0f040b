import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DOMParser } from '@xmldom/xmldom';
import { describe, expect, it } from 'vitest';
import { signQuery, verifyToken } from '../src/common/signing.js';
import { DVB_NS, fillTemplate, parseIsoDuration, rewriteMpd } from '../src/steering/dash-rewrite.js';
import { isMultivariant, parseAttributes, rewriteMedia, rewriteMultivariant } from '../src/steering/hls-rewrite.js';
import { ManifestRewriteError, resolveInTitle } from '../src/steering/manifest-paths.js';
import { buildSteeringManifest } from '../src/steering/steer-manifest.js';

const media = (p: string) => readFileSync(join(import.meta.dirname, 'fixtures/media', p), 'utf8');
const keys = { k1: 'a-secret-of-at-least-16-chars' };
const NOW = 1_700_000_000;
const q = (title: string, file: string) => signQuery(keys, 'k1', `/c/${title}/${file}`, NOW, 3600);
const verifies = (url: string) => {
  const u = new URL(url);
  return verifyToken(keys, u.pathname, { e: u.searchParams.get('e'), k: u.searchParams.get('k'), t: u.searchParams.get('t') }, NOW).ok;
};

describe('HLS rewriting', () => {
  const steer = 'http://steer/v1/steer/bbb.json';
  const mvOpts = {
    manifest: 'master.m3u8',
    pathways: ['edge-a1', 'edge-b1'],
    steeringUri: steer,
    mediaPlaylistUrl: (f: string, p: string) => `http://steer/v1/play/bbb/${f}?pathway=${p}`,
  };

  it('itAddsContentSteeringAndOneVariantCopyPerPathway', () => {
    const src = media('hls-bytes/master.m3u8');
    expect(isMultivariant(src)).toBe(true);
    const out = rewriteMultivariant(src, mvOpts);
    expect(out).toContain(`#EXT-X-CONTENT-STEERING:SERVER-URI="${steer}",PATHWAY-ID="edge-a1"`);
    const inf = out.split('\n').filter((l) => l.startsWith('#EXT-X-STREAM-INF'));
    expect(inf).toHaveLength(4);
    expect(inf.filter((l) => l.includes('PATHWAY-ID="edge-b1"'))).toHaveLength(2);
    expect(out).toContain('http://steer/v1/play/bbb/stream_360p.m3u8?pathway=edge-b1');
    expect(out).toContain('CODECS="avc1.42c01e,mp4a.40.2"');
    expect(out.startsWith('#EXTM3U\n#EXT-X-VERSION:7\n')).toBe(true);
  });

  it('itGivesEachPathwayItsOwnRenditionGroups', () => {
    const src = [
      '#EXTM3U',
      '#EXT-X-INDEPENDENT-SEGMENTS',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",DEFAULT=YES,URI="audio/en.m3u8"',
      '#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="cc1",INSTREAM-ID="CC1"',
      '#EXT-X-STREAM-INF:BANDWIDTH=1000,AUDIO="aud",CLOSED-CAPTIONS="cc"',
      'video/v1.m3u8',
      '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=100,URI="video/iframe.m3u8"',
    ].join('\n');
    const out = rewriteMultivariant(src, { ...mvOpts, manifest: 'hls/master.m3u8' });
    expect(out).toContain('#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud_edge-b1",NAME="en",DEFAULT=YES,URI="http://steer/v1/play/bbb/hls/audio/en.m3u8?pathway=edge-b1"');
    expect(out).toContain('#EXT-X-STREAM-INF:BANDWIDTH=1000,AUDIO="aud_edge-a1",CLOSED-CAPTIONS="cc",PATHWAY-ID="edge-a1"');
    expect(out.match(/TYPE=CLOSED-CAPTIONS/g)).toHaveLength(1);
    expect(out).toContain('URI="http://steer/v1/play/bbb/hls/video/iframe.m3u8?pathway=edge-b1"');
  });

  it('itSignsEverySegmentAndMapButKeepsByteRanges', () => {
    const src = media('hls-bytes/stream_180p.m3u8');
    const out = rewriteMedia(src, { manifest: 'stream_180p.m3u8', fileUrl: (f) => `http://edge-a1:8101/c/bbb/${f}?${q('bbb', f)}` });
    const lines = out.trim().split('\n');
    const uris = lines.filter((l) => !l.startsWith('#'));
    expect(uris).toHaveLength(6);
    for (const u of uris) expect(verifies(u)).toBe(true);
    const map = /#EXT-X-MAP:URI="([^"]+)",BYTERANGE="1354@0"/.exec(out);
    expect(map && verifies(map[1]!)).toBe(true);
    expect(lines.filter((l) => l.startsWith('#EXT-X-BYTERANGE'))).toEqual(src.split('\n').filter((l) => l.startsWith('#EXT-X-BYTERANGE')));
    expect(out).toContain('#EXT-X-ENDLIST');
  });

  it('itSignsPerSegmentPlaylists', () => {
    const out = rewriteMedia(media('hls-segments/index_180p.m3u8'), { manifest: 'index_180p.m3u8', fileUrl: (f) => `http://e/c/t/${f}?${q('t', f)}` });
    expect(out).toMatch(/#EXT-X-MAP:URI="http:\/\/e\/c\/t\/init_180p\.mp4\?e=\d+&k=k1&t=[^"]+"/);
    expect(out.split('\n').filter((l) => l.startsWith('http://e/c/t/seg_180p_'))).toHaveLength(6);
  });

  it('itRefusesUrisLeavingTheTitle', () => {
    expect(() => rewriteMedia('#EXTM3U\n#EXTINF:2,\n../other/seg.ts\n', { manifest: 'a.m3u8', fileUrl: (f) => f })).toThrow(ManifestRewriteError);
    expect(resolveInTitle('hls/', '../seg.ts')).toBe('seg.ts');
    expect(resolveInTitle('', 'a/./b.ts?x=1')).toBe('a/b.ts');
    expect(() => resolveInTitle('', 'a/%2e%2e/%2e%2e/x')).toThrow(ManifestRewriteError);
    expect(() => rewriteMedia('not a playlist', { manifest: 'a.m3u8', fileUrl: (f) => f })).toThrow(ManifestRewriteError);
  });

  it('itKeepsQuotedCommasInAttributes', () => {
    expect(parseAttributes('A=1,B="x,y",C=z')).toEqual([['A', '1'], ['B', '"x,y"'], ['C', 'z']]);
  });
});

describe('DASH rewriting', () => {
  const edges = [
    { id: 'edge-a1', url: 'http://127.0.0.1:8101' },
    { id: 'edge-b1', url: 'http://127.0.0.1:8201' },
  ];
  const opts = { title: 'bbb', manifest: 'manifest.mpd', edges, steeringUri: 'http://steer/v1/steer/bbb.json', signedQuery: (f: string) => q('bbb', f) };

  it('itAddsContentSteeringAndPrioritisedBaseUrls', () => {
    const out = rewriteMpd(media('dash/manifest.mpd'), opts);
    const doc = new DOMParser().parseFromString(out, 'application/xml');
    const mpd = doc.documentElement!;
    const bases = Array.from(mpd.childNodes).filter((n) => (n as unknown as Element).localName === 'BaseURL') as unknown as Element[];
    expect(bases.map((b) => b.getAttribute('serviceLocation'))).toEqual(['edge-a1', 'edge-b1']);
    expect(bases.map((b) => b.getAttributeNS(DVB_NS, 'priority'))).toEqual(['1', '2']);
    expect(bases.map((b) => b.getAttributeNS(DVB_NS, 'weight'))).toEqual(['1', '1']);
    expect(bases[0]!.textContent).toBe('http://127.0.0.1:8101/c/bbb/');
    const cs = doc.getElementsByTagName('ContentSteering')[0]!;
    expect(cs.getAttribute('defaultServiceLocation')).toBe('edge-a1');
    expect(cs.getAttribute('queryBeforeStart')).toBe('true');
    expect(cs.textContent).toBe('http://steer/v1/steer/bbb.json');
    expect(out).toContain(`xmlns:dvb="${DVB_NS}"`);
  });

  it('itExpandsSegmentTemplatesIntoSignedSegmentLists', () => {
    const out = rewriteMpd(media('dash/manifest.mpd'), opts);
    const doc = new DOMParser().parseFromString(out, 'application/xml');
    expect(doc.getElementsByTagName('SegmentTemplate')).toHaveLength(0);
    const lists = Array.from(doc.getElementsByTagName('SegmentList'));
    expect(lists).toHaveLength(3);
    for (const list of lists) {
      const rep = list.parentNode as unknown as Element;
      const id = rep.getAttribute('id')!;
      const init = list.getElementsByTagName('Initialization')[0]!.getAttribute('sourceURL')!;
      expect(init.startsWith(`init-${id}.m4s?`)).toBe(true);
      const segs = Array.from(list.getElementsByTagName('SegmentURL')).map((s) => s.getAttribute('media')!);
      expect(segs).toHaveLength(6);
      expect(segs[0]!.startsWith(`chunk-${id}-00001.m4s?`)).toBe(true);
      expect(segs[5]!.startsWith(`chunk-${id}-00006.m4s?`)).toBe(true);
      // Relative and signed: resolved against each edge BaseURL, the token verifies.
      for (const e of edges) for (const s of [init, ...segs]) expect(verifies(new URL(s, `${e.url}/c/bbb/`).href)).toBe(true);
      expect(list.getElementsByTagName('SegmentTimeline')).toHaveLength(1);
    }
    // Audio timeline with varying durations kept as is.
    expect(out).toContain('d="95232"');
  });

  it('itWritesOneTimelineEntryPerSegmentUrl', () => {
    // dash.js 5.2 indexes a SegmentList's SegmentURLs by S element, not by segment: a
    // repeated S (@r) would make it fetch the first segment again and again.
    const doc = new DOMParser().parseFromString(rewriteMpd(media('dash/manifest.mpd'), opts), 'application/xml');
    for (const list of Array.from(doc.getElementsByTagName('SegmentList'))) {
      const ss = Array.from(list.getElementsByTagName('S'));
      expect(ss).toHaveLength(list.getElementsByTagName('SegmentURL').length);
      expect(ss.filter((x) => x.hasAttribute('r'))).toEqual([]);
      let t = 0;
      for (const x of ss) {
        expect(Number(x.getAttribute('t'))).toBe(t);
        t += Number(x.getAttribute('d'));
      }
    }
    const audio = Array.from(doc.getElementsByTagName('Representation')).find((r) => r.getAttribute('id') === '2')!;
    expect(Array.from(audio.getElementsByTagName('S')).map((x) => x.getAttribute('d'))).toEqual(['95232', '96256', '96256', '96256', '96256', '95744']);
  });

  it('itExpandsDurationTemplatesAndSignsSegmentBase', () => {
    const mpd = `<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT10S">
  <BaseURL>dash/</BaseURL>
  <Period>
    <AdaptationSet mimeType="video/mp4">
      <SegmentTemplate timescale="1000" duration="4000" startNumber="0" media="v-$RepresentationID$-$Number$.m4s" initialization="v-$RepresentationID$-init.m4s"/>
      <Representation id="r1" bandwidth="1000"/>
    </AdaptationSet>
    <AdaptationSet mimeType="audio/mp4">
      <Representation id="a1" bandwidth="100"><BaseURL>audio.mp4</BaseURL><SegmentBase indexRange="800-1000"><Initialization range="0-799"/></SegmentBase></Representation>
    </AdaptationSet>
  </Period>
</MPD>`;
    const out = rewriteMpd(mpd, { ...opts, manifest: 'manifest.mpd' });
    expect(out).toContain('media="dash/v-r1-0.m4s?');
    expect(out).toContain('media="dash/v-r1-2.m4s?');
    expect(out).not.toContain('v-r1-3.m4s');
    expect(out).toMatch(/<BaseURL>dash\/audio\.mp4\?e=\d+&amp;k=k1&amp;t=[^<]+<\/BaseURL>/);
    expect(out).toContain('indexRange="800-1000"');
    expect(out).not.toContain('<BaseURL>dash/</BaseURL>');
  });

  it('itRefusesLiveMpds', () => {
    expect(() => rewriteMpd('<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic"/>', opts)).toThrow(/VOD only/);
    expect(() => rewriteMpd('<MPD', opts)).toThrow(ManifestRewriteError);
  });

  it('itFillsTemplatesAndParsesDurations', () => {
    expect(fillTemplate('c-$RepresentationID$-$Number%05d$-$Time$$$.m4s', { RepresentationID: 'x', Number: 7, Time: 12 })).toBe('c-x-00007-12$.m4s');
    expect(parseIsoDuration('PT1H2M3.5S')).toBe(3723.5);
    expect(parseIsoDuration('PT12.0S')).toBe(12);
  });
});

describe('steering manifest', () => {
  it('itListsThePriorityForHlsAndDash', () => {
    expect(buildSteeringManifest({ ttlSeconds: 10, reloadUri: 'http://s/v1/steer/t.json', priority: ['a', 'b'] })).toEqual({
      VERSION: 1,
      TTL: 10,
      'RELOAD-URI': 'http://s/v1/steer/t.json',
      'PATHWAY-PRIORITY': ['a', 'b'],
      'SERVICE-LOCATION-PRIORITY': ['a', 'b'],
    });
  });
});

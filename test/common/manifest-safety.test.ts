import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UnsafeManifestError, checkDashMpd, checkHlsPlaylist, parseHlsAttributeList } from '../../src/common/manifest-safety.js';

const MEDIA = resolve(import.meta.dirname, '..', 'fixtures', 'media');
const fixture = (p: string) => readFileSync(join(MEDIA, p), 'utf8');

const media = (...lines: string[]) => ['#EXTM3U', '#EXT-X-TARGETDURATION:2', ...lines, '#EXTINF:2,', 'seg0.m4s', '#EXT-X-ENDLIST'].join('\n');
const master = (...lines: string[]) => ['#EXTM3U', ...lines, '#EXT-X-STREAM-INF:BANDWIDTH=1', 'v.m3u8'].join('\n');

describe('HLS manifest safety', () => {
  it.each([
    ['duplicate URI, foreign first', media('#EXT-X-MAP:URI="https://evil.example/init.mp4",URI="init.mp4"'), /duplicate attribute URI/],
    ['duplicate URI, foreign last', media('#EXT-X-MAP:URI="init.mp4",URI="https://evil.example/init.mp4"'), /duplicate attribute URI/],
    ['preload hint elsewhere', media('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="https://evil.example/p.mp4"'), /EXT-X-PRELOAD-HINT URI: absolute URL/],
    ['rendition report elsewhere', media('#EXT-X-RENDITION-REPORT:URI="https://evil.example/a.m3u8",LAST-MSN=1'), /EXT-X-RENDITION-REPORT URI/],
    ['session data elsewhere', master('#EXT-X-SESSION-DATA:DATA-ID="com.x",URI="https://evil.example/d.json"'), /EXT-X-SESSION-DATA URI/],
    ['key server over https', media('#EXT-X-KEY:METHOD=AES-128,URI="https://evil.example/key"'), /EXT-X-KEY URI: absolute URL/],
    ['session key over https', master('#EXT-X-SESSION-KEY:METHOD=AES-128,URI="https://evil.example/key"'), /EXT-X-SESSION-KEY URI/],
    ['rendition elsewhere', master('#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="en",URI="http://evil.example/a.m3u8"'), /EXT-X-MEDIA URI/],
    ['i-frame playlist elsewhere', master('#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI="//evil.example/i.m3u8"'), /network-path reference/],
    ['variant elsewhere', '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nhttps://evil.example/v.m3u8', /line 3: absolute URL/],
    ['segment on another host', media('#EXTINF:2,', '//evil.example/seg.ts'), /network-path reference/],
    ['segment at an absolute path', media('#EXTINF:2,', '/seg.ts'), /absolute path/],
    ['steering server elsewhere', master('#EXT-X-CONTENT-STEERING:SERVER-URI="https://evil.example/steer.json"'), /SERVER-URI: absolute URL/],
    ['interstitial asset elsewhere', media('#EXT-X-DATERANGE:ID="ad",CLASS="com.apple.hls.interstitial",START-DATE="2020-01-01T00:00:00Z",X-ASSET-URI="https://evil.example/ad.m3u8"'), /X-ASSET-URI/],
    ['unknown tag with a URI', media('#EXT-X-VENDOR-THING:URI="https://evil.example/x"'), /EXT-X-VENDOR-THING carries a URI/],
    ['attribute list that does not parse', media('#EXT-X-MAP:URI="init.mp4"junk,URI="https://evil.example/i"'), /does not parse/],
    ['variables', media('#EXT-X-DEFINE:NAME="h",VALUE="evil.example"'), /variable substitution/],
    ['not a playlist', 'hello', /no #EXTM3U/],
  ])('itRefusesHostilePlaylist: %s', (_name, text, message) => {
    expect(() => checkHlsPlaylist(text, { name: 't/index.m3u8' })).toThrow(UnsafeManifestError);
    expect(() => checkHlsPlaylist(text, { name: 't/index.m3u8' })).toThrow(message);
  });

  it('itAcceptsTheFixturePlaylistsLocalKeysAndFairPlayKeyIds', () => {
    for (const f of ['hls-bytes/master.m3u8', 'hls-bytes/stream_180p.m3u8', 'hls-segments/master.m3u8', 'hls-segments/index_180p.m3u8']) {
      expect(() => checkHlsPlaylist(fixture(f), { name: f })).not.toThrow();
    }
    expect(() => checkHlsPlaylist(media('#EXT-X-KEY:METHOD=AES-128,URI="keys/k.bin",IV=0x0123'))).not.toThrow();
    expect(() =>
      checkHlsPlaylist(media('#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://key-server/1",KEYFORMAT="com.apple.streamingkeydelivery"')),
    ).not.toThrow();
  });

  it('itAllowsOnlyOurOwnAbsoluteUrlsInWhatSteeringEmits', () => {
    const own = { ownPrefixes: ['http://127.0.0.1:1/c/t/'], relative: false };
    expect(() => checkHlsPlaylist(media('#EXT-X-MAP:URI="http://127.0.0.1:1/c/t/init.mp4?e=1"').replace('seg0.m4s', 'http://127.0.0.1:1/c/t/seg0.m4s'), own)).not.toThrow();
    expect(() => checkHlsPlaylist(media(), own)).toThrow(/not one steering built/);
    expect(() => checkHlsPlaylist(media('#EXT-X-MAP:URI="http://127.0.0.1:2/c/t/init.mp4"'), own)).toThrow(/absolute URL/);
  });

  it('itParsesAttributeListsExactlyAndRefusesDuplicates', () => {
    expect(parseHlsAttributeList('BANDWIDTH=1,CODECS="a,b", RESOLUTION=2x2')).toEqual([
      ['BANDWIDTH', '1'],
      ['CODECS', '"a,b"'],
      ['RESOLUTION', '2x2'],
    ]);
    expect(() => parseHlsAttributeList('A=1,A=2')).toThrow(/duplicate attribute A/);
    expect(() => parseHlsAttributeList('A=1,')).toThrow(/ends with a comma/);
    expect(() => parseHlsAttributeList('a=1')).toThrow(/does not parse/);
  });
});

const mpd = (inner: string, mpdAttrs = '') =>
  `<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:xlink="http://www.w3.org/1999/xlink" type="static" mediaPresentationDuration="PT4S"${mpdAttrs}>${inner}</MPD>`;
const rep = (inner: string) =>
  `<Period><AdaptationSet><Representation id="v" bandwidth="1">${inner}</Representation></AdaptationSet></Period>`;
const TEMPLATE = '<SegmentTemplate media="s$Number$.m4s" initialization="i.mp4" duration="2"/>';

describe('DASH manifest safety', () => {
  it.each([
    ['xlink period', mpd('<Period xlink:href="https://evil.example/p.xml" xlink:actuate="onLoad"/>'), /xlink attribute xlink:href/],
    ['xlink adaptation set', mpd(`<Period><AdaptationSet xlink:href="https://evil.example/a.xml"/></Period>`), /xlink attribute/],
    ['a second BaseURL', mpd(`<BaseURL>media/</BaseURL><BaseURL>https://evil.example/</BaseURL>${rep(TEMPLATE)}`), /more than one BaseURL/],
    ['a second relative BaseURL', mpd(`<Period><BaseURL>a/</BaseURL><BaseURL>b/</BaseURL></Period>`), /more than one BaseURL/],
    ['absolute BaseURL', mpd(`<BaseURL>https://evil.example/</BaseURL>${rep(TEMPLATE)}`), /BaseURL\[1\]: absolute URL/],
    ['protocol-relative BaseURL', mpd(rep(`<BaseURL>//evil.example/v/</BaseURL>${TEMPLATE}`)), /network-path reference/],
    ['Location', mpd(`<Location>https://evil.example/m.mpd</Location>${rep(TEMPLATE)}`), /Location is not allowed/],
    ['PatchLocation', mpd(`<PatchLocation>p.xml</PatchLocation>${rep(TEMPLATE)}`), /PatchLocation is not allowed/],
    ['time server', mpd(`${rep(TEMPLATE)}<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-xsdate:2014" value="https://evil.example/t"/>`), /UTCTiming/],
    ['template media elsewhere', mpd(rep('<SegmentTemplate media="https://evil.example/s$Number$.m4s" duration="2"/>')), /@media: absolute URL/],
    ['template init elsewhere', mpd(rep('<SegmentTemplate media="s$Number$.m4s" initialization="//evil.example/i.mp4" duration="2"/>')), /@initialization/],
    ['segment URL elsewhere', mpd(rep('<SegmentList duration="2"><SegmentURL media="https://evil.example/s1.m4s"/></SegmentList>')), /SegmentURL\[1\]: @media/],
    ['init source elsewhere', mpd(rep('<SegmentList duration="2"><Initialization sourceURL="https://evil.example/i.mp4"/></SegmentList>')), /@sourceURL/],
    ['index elsewhere', mpd(rep('<SegmentBase><RepresentationIndex sourceURL="/abs/idx"/></SegmentBase><BaseURL>v.mp4</BaseURL>')), /absolute path/],
    ['callback events', mpd(rep(`<EventStream schemeIdUri="urn:mpeg:dash:event:callback:2015"><Event>https://evil.example/cb</Event></EventStream>${TEMPLATE}`)), /callback/],
    ['license server', mpd(rep(`<ContentProtection schemeIdUri="urn:uuid:x"><Laurl>https://evil.example/lic</Laurl></ContentProtection>${TEMPLATE}`)), /Laurl\[1\]: absolute URL/],
    ['more information elsewhere', mpd(`<ProgramInformation moreInformationURL="https://evil.example/"/>${rep(TEMPLATE)}`), /@moreInformationURL: absolute URL/],
    ['content steering elsewhere', mpd(`<ContentSteering>https://evil.example/steer</ContentSteering>${rep(TEMPLATE)}`), /ContentSteering\[1\]: absolute URL/],
    ['duplicate attributes', mpd(rep('<SegmentTemplate media="s$Number$.m4s" media="https://evil.example/x" duration="2"/>')), /not well-formed|redefined/],
  ])('itRefusesHostileMpd: %s', (_name, text, message) => {
    expect(() => checkDashMpd(text, { name: 't/m.mpd' })).toThrow(UnsafeManifestError);
    expect(() => checkDashMpd(text, { name: 't/m.mpd' })).toThrow(message);
  });

  it('itAcceptsTheFixtureMpdAndDirectTiming', () => {
    expect(() => checkDashMpd(fixture('dash/manifest.mpd'))).not.toThrow();
    expect(() =>
      checkDashMpd(mpd(`${rep(TEMPLATE)}<UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="2020-01-01T00:00:00Z"/>`)),
    ).not.toThrow();
  });

  it('itAllowsSeveralBaseUrlsOnlyWhenAllAreOurs', () => {
    const own = { ownPrefixes: ['http://127.0.0.1:1/c/t/', 'http://127.0.0.1:2/c/t/'] };
    const two = (b: string) => mpd(`<BaseURL>http://127.0.0.1:1/c/t/</BaseURL><BaseURL>${b}</BaseURL>${rep(TEMPLATE)}`);
    expect(() => checkDashMpd(two('http://127.0.0.1:2/c/t/'), own)).not.toThrow();
    expect(() => checkDashMpd(two('http://127.0.0.1:3/c/t/'), own)).toThrow(/more than one BaseURL/);
  });
});

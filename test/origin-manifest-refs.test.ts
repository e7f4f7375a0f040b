import { describe, expect, it } from 'vitest';
import { extractDashReferences, expandTemplate, parseIsoDuration } from '../src/origin/dash-mpd.js';
import { ManifestError } from '../src/origin/errors.js';
import { extractHlsReferences, parseAttributes } from '../src/origin/hls-playlist.js';
import { resolveRef } from '../src/origin/ref-path.js';

describe('resolveRef', () => {
  it.each([
    ['master.m3u8', 'a.m3u8', 'a.m3u8'],
    ['v/index.m3u8', 'seg1.ts', 'v/seg1.ts'],
    ['v/index.m3u8', '../audio/a.m4s', 'audio/a.m4s'],
    ['v/', 'seg.m4s', 'v/seg.m4s'],
    ['', 'video/', 'video/'],
    ['x.mpd', 'with%20space.m4s', null],
    ['x.mpd', 'plus+sign.m4s', 'plus+sign.m4s'],
  ])('itResolves %s + %s', (base, ref, want) => {
    if (want === null) expect(() => resolveRef(base, ref, 'here')).toThrow(ManifestError);
    else expect(resolveRef(base, ref, 'here')).toBe(want);
  });

  it.each([
    ['http://cdn.example/seg.ts', /absolute URL/],
    ['//cdn.example/seg.ts', /absolute path/],
    ['/etc/passwd', /absolute path/],
    ['../secret.ts', /outside the title/],
    ['a/../../secret.ts', /outside the title/],
    ['%2e%2e/secret.ts', /outside the title/],
    ['a%2fb.ts', /encoded slash/],
    ['a\\b.ts', /backslash/],
    ['seg.ts?token=1', /query/],
    ['%zz.ts', /percent-encoding/],
  ])('itRefuses %s', (ref, msg) => {
    expect(() => resolveRef('index.m3u8', ref, 'index.m3u8 line 3')).toThrow(msg);
  });
});

describe('extractHlsReferences', () => {
  it('itParsesQuotedAttributesWithCommas', () => {
    const a = parseAttributes('BANDWIDTH=1000,CODECS="avc1.4d401f,mp4a.40.2",URI="a.m3u8"');
    expect(a.get('CODECS')).toBe('avc1.4d401f,mp4a.40.2');
    expect(a.get('URI')).toBe('a.m3u8');
    expect(a.get('BANDWIDTH')).toBe('1000');
  });

  it('itFindsVariantsRenditionsAndIFramePlaylistsInAMultivariantPlaylist', () => {
    const text = [
      '#EXTM3U',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",URI="audio/en.m3u8"',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="muxed"',
      '#EXT-X-STREAM-INF:BANDWIDTH=100000,CODECS="avc1.42c01e,mp4a.40.2",AUDIO="aud"',
      'v1/index.m3u8',
      '',
      '#EXT-X-STREAM-INF:BANDWIDTH=200000',
      'v2/index.m3u8',
      '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=5000,URI="v1/iframes.m3u8"',
      '# a comment',
    ].join('\n');
    const r = extractHlsReferences(text, 'master.m3u8');
    expect(r.type).toBe('multivariant');
    expect(r.refs.map((x) => [x.path, x.kind, x.tag])).toEqual([
      ['audio/en.m3u8', 'playlist', 'EXT-X-MEDIA'],
      ['v1/index.m3u8', 'playlist', 'EXT-X-STREAM-INF'],
      ['v2/index.m3u8', 'playlist', 'EXT-X-STREAM-INF'],
      ['v1/iframes.m3u8', 'playlist', 'EXT-X-I-FRAME-STREAM-INF'],
    ]);
  });

  it('itComputesByteRangesIncludingImplicitOffsets', () => {
    const text = [
      '#EXTM3U',
      '#EXT-X-TARGETDURATION:2',
      '#EXT-X-MAP:URI="main.mp4",BYTERANGE="700@0"',
      '#EXTINF:2,',
      '#EXT-X-BYTERANGE:1000@700',
      'main.mp4',
      '#EXTINF:2,',
      '#EXT-X-BYTERANGE:500',
      'main.mp4',
      '#EXT-X-ENDLIST',
    ].join('\r\n');
    const r = extractHlsReferences(text, 'v/index.m3u8');
    expect(r.type).toBe('media');
    expect(r.refs).toEqual([
      { path: 'v/main.mp4', kind: 'media', tag: 'EXT-X-MAP', byteRange: { offset: 0, length: 700 } },
      { path: 'v/main.mp4', kind: 'media', tag: 'EXTINF', byteRange: { offset: 700, length: 1000 } },
      { path: 'v/main.mp4', kind: 'media', tag: 'EXTINF', byteRange: { offset: 1700, length: 500 } },
    ]);
  });

  it('itListsSegmentsInitAndLocalKeysButNotKeyServers', () => {
    const text = [
      '#EXTM3U',
      '#EXT-X-TARGETDURATION:4',
      '#EXT-X-KEY:METHOD=AES-128,URI="key.bin"',
      '#EXT-X-MAP:URI="init.mp4"',
      '#EXTINF:4,',
      'seg0.m4s',
      '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://key-server/1",KEYFORMAT="com.apple.streamingkeydelivery"',
      '#EXTINF:4,',
      'seg1.m4s',
      '#EXT-X-ENDLIST',
    ].join('\n');
    expect(extractHlsReferences(text, 'index.m3u8').refs.map((r) => r.path)).toEqual(['key.bin', 'init.mp4', 'seg0.m4s', 'seg1.m4s']);
  });

  it.each([
    ['not a playlist', /no #EXTM3U/],
    ['#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1', /without a URI line/],
    ['#EXTM3U\n#EXTINF:2,\nhttp://elsewhere/seg.ts', /absolute URL/],
    ['#EXTM3U\n#EXTINF:2,\n../up.ts', /outside the title/],
    ['#EXTM3U\n#EXT-X-BYTERANGE:100\n#EXTINF:2,\nmain.mp4', /without offset/],
    ['#EXTM3U\n#EXT-X-MAP:URI="i.mp4",BYTERANGE="10"', /needs an offset/],
    ['#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n#EXTINF:2,\ns.ts', /mixes/],
    ['#EXTM3U\n#EXT-X-DEFINE:NAME="x",VALUE="y"', /variable substitution/],
  ])('itRefusesBrokenPlaylist %#', (text, msg) => {
    expect(() => extractHlsReferences(text, 'index.m3u8')).toThrow(msg);
  });

  it('itNamesThePlaylistAndLineInErrors', () => {
    expect(() => extractHlsReferences('#EXTM3U\n#EXTINF:2,\n/abs.ts', 'v/index.m3u8')).toThrow(/^v\/index\.m3u8 line 3: absolute path/);
  });
});

describe('DASH helpers', () => {
  it.each([
    ['PT12.0S', 12],
    ['PT1M30S', 90],
    ['PT1H', 3600],
    ['P1DT1S', 86401],
    ['PT0.5S', 0.5],
  ])('itParsesDuration %s', (v, want) => {
    expect(parseIsoDuration(v, 'x')).toBe(want);
  });

  it.each(['P1Y', 'PT', 'P', '12s'])('itRefusesDuration %s', (v) => {
    expect(() => parseIsoDuration(v, 'x')).toThrow(ManifestError);
  });

  it('itExpandsTemplateIdentifiers', () => {
    const v = { RepresentationID: 'v1', Number: 7, Time: 25600, Bandwidth: '60000' };
    expect(expandTemplate('chunk-$RepresentationID$-$Number%05d$.m4s', v, 'x')).toBe('chunk-v1-00007.m4s');
    expect(expandTemplate('$Bandwidth$/$Time$.m4s', v, 'x')).toBe('60000/25600.m4s');
    expect(expandTemplate('a$$b-$Number$', v, 'x')).toBe('a$b-7');
    expect(() => expandTemplate('$Time$', { RepresentationID: 'v' }, 'x')).toThrow(/no value/);
  });
});

const mpd = (body: string, attrs = 'type="static" mediaPresentationDuration="PT6S"') =>
  `<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" ${attrs}>${body}</MPD>`;

describe('extractDashReferences', () => {
  it('itExpandsNumberFromATimelineWithRepeats', () => {
    const text = mpd(`<Period><AdaptationSet>
      <SegmentTemplate timescale="1000" initialization="init-$RepresentationID$.m4s" media="c-$RepresentationID$-$Number%03d$.m4s" startNumber="1">
        <SegmentTimeline><S t="0" d="2000" r="2"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="a" bandwidth="1"/><Representation id="b" bandwidth="2"/>
    </AdaptationSet></Period>`);
    const paths = extractDashReferences(text, 'dash/manifest.mpd').map((r) => r.path);
    expect(paths).toEqual([
      'dash/init-a.m4s', 'dash/c-a-001.m4s', 'dash/c-a-002.m4s', 'dash/c-a-003.m4s',
      'dash/init-b.m4s', 'dash/c-b-001.m4s', 'dash/c-b-002.m4s', 'dash/c-b-003.m4s',
    ]);
  });

  it('itExpandsTimeFromATimelineAndRunsRepeatMinusOneToThePeriodEnd', () => {
    const text = mpd(`<Period duration="PT5S"><AdaptationSet><Representation id="v">
      <SegmentTemplate timescale="10" media="t-$Time$.m4s"><SegmentTimeline><S t="0" d="20" r="-1"/></SegmentTimeline></SegmentTemplate>
    </Representation></AdaptationSet></Period>`);
    expect(extractDashReferences(text, 'm.mpd').map((r) => r.path)).toEqual(['t-0.m4s', 't-20.m4s', 't-40.m4s']);
  });

  it('itCountsSegmentsFromDurationAndPeriodLength', () => {
    const text = mpd(`<Period><AdaptationSet><Representation id="v">
      <SegmentTemplate timescale="1" duration="4" startNumber="0" media="s$Number$.m4s" initialization="i.mp4"/>
    </Representation></AdaptationSet></Period>`, 'type="static" mediaPresentationDuration="PT10S"');
    expect(extractDashReferences(text, 'm.mpd').map((r) => r.path)).toEqual(['i.mp4', 's0.m4s', 's1.m4s', 's2.m4s']);
  });

  it('itFollowsTheBaseUrlChainAcrossLevels', () => {
    const text = mpd(`<BaseURL>content/</BaseURL><Period><BaseURL>p1/</BaseURL><AdaptationSet><BaseURL>video/</BaseURL>
      <Representation id="v"><BaseURL>hi/</BaseURL>
        <SegmentList><Initialization sourceURL="init.mp4"/><SegmentURL media="s1.m4s"/><SegmentURL media="../lo/s2.m4s"/></SegmentList>
      </Representation></AdaptationSet></Period>`);
    expect(extractDashReferences(text, 'm.mpd').map((r) => r.path)).toEqual([
      'content/p1/video/hi/init.mp4', 'content/p1/video/hi/s1.m4s', 'content/p1/video/lo/s2.m4s',
    ]);
  });

  it('itTreatsTheBaseUrlAsTheFileForSegmentBaseAndSegmentListRanges', () => {
    const text = mpd(`<Period><AdaptationSet>
      <Representation id="a"><BaseURL>audio.mp4</BaseURL><SegmentBase indexRange="800-999"><Initialization range="0-799"/></SegmentBase></Representation>
      <Representation id="b"><BaseURL>b.mp4</BaseURL><SegmentList><SegmentURL mediaRange="100-199"/></SegmentList></Representation>
      <Representation id="c"><BaseURL>c.mp4</BaseURL></Representation>
    </AdaptationSet></Period>`);
    expect(extractDashReferences(text, 'm.mpd').map((r) => [r.path, r.role, r.byteRange])).toEqual([
      ['audio.mp4', 'Initialization', { offset: 0, length: 800 }],
      ['audio.mp4', 'BaseURL', undefined],
      ['b.mp4', 'SegmentURL', { offset: 100, length: 100 }],
      ['c.mp4', 'BaseURL', undefined],
    ]);
  });

  it('itInheritsTemplateAttributesAndLetsTheRepresentationOverride', () => {
    const text = mpd(`<Period><SegmentTemplate timescale="1" duration="2" media="$RepresentationID$/$Number$.m4s"/>
      <AdaptationSet><Representation id="x"><SegmentTemplate duration="3"/></Representation></AdaptationSet></Period>`);
    expect(extractDashReferences(text, 'm.mpd').map((r) => r.path)).toEqual(['x/1.m4s', 'x/2.m4s']);
  });

  it.each([
    ['<notmpd/>', /not a DASH MPD/],
    ['<MPD', /not well-formed/],
    [mpd('', 'type="dynamic"'), /only static/],
    [mpd('<Period><AdaptationSet><Representation id="v"><BaseURL>http://x/</BaseURL></Representation></AdaptationSet></Period>'), /absolute URL/],
    [mpd('<Period><AdaptationSet><Representation id="v"><SegmentBase/></Representation></AdaptationSet></Period>'), /BaseURL naming the media file/],
    [mpd('<Period><AdaptationSet><Representation id="v"><SegmentTemplate media="$Number$.m4s"/></Representation></AdaptationSet></Period>'), /SegmentTimeline or a positive @duration/],
    [mpd('<Period><AdaptationSet><Representation id="v"><SegmentTemplate duration="2" media="$Number$.m4s"/></Representation></AdaptationSet></Period>', 'type="static"'), /no known length/],
  ])('itRefusesBrokenMpd %#', (text, msg) => {
    expect(() => extractDashReferences(text, 'm.mpd')).toThrow(msg);
  });
});

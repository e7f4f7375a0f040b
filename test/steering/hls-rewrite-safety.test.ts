import { describe, expect, it } from 'vitest';
import { rewriteMedia, rewriteMultivariant } from '../../src/steering/hls-rewrite.js';
import { ManifestRewriteError } from '../../src/steering/manifest-paths.js';

const mv = (...lines: string[]) => ['#EXTM3U', ...lines, '#EXT-X-STREAM-INF:BANDWIDTH=1', 'v.m3u8'].join('\n');
const media = (...lines: string[]) => ['#EXTM3U', '#EXT-X-TARGETDURATION:2', ...lines, '#EXTINF:2,', 's0.m4s', '#EXT-X-ENDLIST'].join('\n');
const mvOpts = {
  manifest: 'master.m3u8',
  pathways: ['e1'],
  steeringUri: 'http://steer/v1/steer/t.json',
  mediaPlaylistUrl: (f: string, p: string) => `http://steer/v1/play/t/${f}?pathway=${p}`,
};
const fileUrl = (f: string) => `http://edge/c/t/${f}?e=1&k=k1&t=x`;

describe('HLS rewriting writes only URLs steering built', () => {
  it('itSignsSessionDataAndKeysOnTheFirstPathwayOrLeavesThemOut', () => {
    const src = mv('#EXT-X-SESSION-DATA:DATA-ID="com.x",URI="data/d.json"', '#EXT-X-SESSION-KEY:METHOD=AES-128,URI="k.bin"');
    const signed = rewriteMultivariant(src, { ...mvOpts, fileUrl });
    expect(signed).toContain('#EXT-X-SESSION-DATA:DATA-ID="com.x",URI="http://edge/c/t/data/d.json?e=1&k=k1&t=x"');
    expect(signed).toContain('#EXT-X-SESSION-KEY:METHOD=AES-128,URI="http://edge/c/t/k.bin?e=1&k=k1&t=x"');
    const without = rewriteMultivariant(src, mvOpts);
    expect(without).not.toContain('SESSION-DATA');
    expect(without).not.toContain('SESSION-KEY');
  });

  it('itLeavesOutTagsWithAUriItDoesNotRewrite', () => {
    const out = rewriteMedia(
      media(
        '#EXT-X-MAP:URI="init.mp4"',
        '#EXT-X-DATERANGE:ID="ad",START-DATE="2020-01-01T00:00:00Z",X-ASSET-URI="ad.m3u8"',
        '#EXT-X-RENDITION-REPORT:URI="other.m3u8",LAST-MSN=1',
      ),
      { manifest: 'index.m3u8', fileUrl },
    );
    expect(out).toContain('#EXT-X-MAP:URI="http://edge/c/t/init.mp4?e=1&k=k1&t=x"');
    expect(out).not.toContain('DATERANGE');
    expect(out).not.toContain('RENDITION-REPORT');
    expect(out).toContain('http://edge/c/t/s0.m4s?e=1&k=k1&t=x');
  });

  it('itKeepsFairPlayKeyIdsAndRefusesKeyServers', () => {
    const ok = rewriteMedia(media('#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://id-1",KEYFORMAT="com.apple.streamingkeydelivery"'), { manifest: 'i.m3u8', fileUrl });
    expect(ok).toContain('URI="skd://id-1"');
    expect(() => rewriteMedia(media('#EXT-X-KEY:METHOD=AES-128,URI="https://evil.example/k"'), { manifest: 'i.m3u8', fileUrl })).toThrow(ManifestRewriteError);
  });

  it('itRefusesWhatItCannotRewriteSafely', () => {
    // Caught by the shared check before rewriting: a URI in a tag nobody knows, a duplicate attribute.
    expect(() => rewriteMultivariant(mv('#EXT-X-VENDOR:URI="https://evil.example/x"'), mvOpts)).toThrow(/EXT-X-VENDOR carries a URI/);
    expect(() => rewriteMedia(media('#EXT-X-MAP:URI="i.mp4",URI="https://evil.example/i.mp4"'), { manifest: 'i.m3u8', fileUrl })).toThrow(/duplicate attribute URI/);
  });
});

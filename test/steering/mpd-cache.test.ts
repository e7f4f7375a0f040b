import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateCluster } from '../../src/common/config.js';
import { renderMpd } from '../../src/steering/dash-rewrite.js';
import { MpdCache, tokenPeriodSec } from '../../src/steering/mpd-cache.js';

const MPD = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'media', 'dash', 'manifest.mpd'), 'utf8');
const edges = [{ id: 'e1', url: 'http://127.0.0.1:1' }];

/** A signer that records the second it signed at, and a text source that counts fetches. */
function world() {
  const signedAt: number[] = [];
  let fetches = 0;
  return {
    signedAt,
    fetches: () => fetches,
    text: async () => {
      fetches++;
      return MPD;
    },
    sign: (file: string, sec: number) => {
      signedAt.push(sec);
      return `e=${sec + 3600}&k=k1&t=${file.length}`;
    },
  };
}

describe('MpdCache', () => {
  it('itSignsOncePerTokenPeriodAndServesThePreviousPeriodWhileTheNextIsSigned', async () => {
    const w = world();
    const cache = new MpdCache({ maxBytes: 10_000_000, periodSec: 60 });
    const key = { title: 't', file: 'manifest.mpd', digest: 'd1' };
    const first = await cache.signed(key, 'k1', 1_000_020, w.text, w.sign);
    const again = await cache.signed(key, 'k1', 1_000_079, w.text, w.sign);
    expect(again).toBe(first);
    expect(cache.stats).toEqual({ hit: 1, stale: 0, miss: 1 });
    expect(new Set(w.signedAt)).toEqual(new Set([1_000_020]));

    // Next period: the previous one answers at once, the new one is signed behind it.
    const rolled = await cache.signed(key, 'k1', 1_000_081, w.text, w.sign);
    expect(rolled).toBe(first);
    expect(cache.stats.stale).toBe(1);
    await new Promise((r) => setTimeout(r, 20));
    const next = await cache.signed(key, 'k1', 1_000_090, w.text, w.sign);
    expect(next).not.toBe(first);
    expect(cache.stats.hit).toBe(2);
    expect(w.signedAt).toContain(1_000_080);
    expect(w.fetches()).toBe(1); // one plan for the manifest version
  });

  it('itPlansAgainForANewManifestDigestAndNeverMixesVersions', async () => {
    const w = world();
    const cache = new MpdCache({ maxBytes: 10_000_000, periodSec: 60 });
    await cache.signed({ title: 't', file: 'manifest.mpd', digest: 'd1' }, 'k1', 1_000_000, w.text, w.sign);
    await cache.signed({ title: 't', file: 'manifest.mpd', digest: 'd2' }, 'k1', 1_000_000, w.text, w.sign);
    expect(w.fetches()).toBe(2);
    expect(cache.stats.miss).toBe(2);
  });

  it('itStaysWithinItsByteBound', async () => {
    const w = world();
    // Room for about one title's plan and signed copy, not two.
    const one = await new MpdCache({ maxBytes: 10_000_000, periodSec: 60 }).signed({ title: 'a', file: 'm.mpd', digest: 'd' }, 'k1', 1, w.text, w.sign);
    const cache = new MpdCache({ maxBytes: one.size * 2 + 100, periodSec: 60 });
    const before = w.fetches();
    await cache.signed({ title: 'a', file: 'm.mpd', digest: 'd' }, 'k1', 1, w.text, w.sign);
    await cache.signed({ title: 'b', file: 'm.mpd', digest: 'd' }, 'k1', 1, w.text, w.sign);
    await cache.signed({ title: 'a', file: 'm.mpd', digest: 'd' }, 'k1', 1, w.text, w.sign);
    expect(w.fetches() - before).toBe(3); // 'a' was evicted by 'b'
  });

  it('itFillsTheClientsEdgesAndTheTraceOnlyAtRenderTime', async () => {
    const w = world();
    const cache = new MpdCache({ maxBytes: 10_000_000, periodSec: 60 });
    const signed = await cache.signed({ title: 't', file: 'manifest.mpd', digest: 'd' }, 'k1', 1_000_000, w.text, w.sign);
    const a = renderMpd(signed, { edges, steeringUri: 'http://s/v1/steer/t.json', query: '&tp=A' }).toString();
    const b = renderMpd(signed, { edges: [{ id: 'e2', url: 'http://127.0.0.2:2' }], steeringUri: 'http://s/v1/steer/t.json', query: '&tp=B' }).toString();
    expect(a).toContain('<BaseURL serviceLocation="e1" dvb:priority="1" dvb:weight="1">http://127.0.0.1:1/c/t/</BaseURL>');
    expect(b).toContain('defaultServiceLocation="e2"');
    expect(b).not.toContain('127.0.0.1:1');
    // Signed at the start of the token period (999,960 + 3600). Per-play parameters on each Representation's first reference (its init segment) only.
    expect(a.match(/tp=A/g)).toHaveLength(3);
    expect(a).toMatch(/sourceURL="init-0\.m4s\?e=1003560&amp;k=k1&amp;t=\d+&amp;tp=A"/);
    expect(a).toMatch(/media="chunk-0-00001\.m4s\?e=1003560&amp;k=k1&amp;t=\d+"/);
  });

  it('itIsSizedByTheClusterFile', () => {
    const raw = (mpdCacheBytes?: number) => ({
      signing: { keys: { k1: 'a-secret-of-at-least-16-chars' }, activeKey: 'k1' },
      origin: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'o' },
      steering: { url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', ...(mpdCacheBytes === undefined ? {} : { mpdCacheBytes }) },
      isps: [{ id: 'isp-a', prefixes: ['127.0.0.0/16'] }],
      edges: [{ id: 'e', isp: 'isp-a', url: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:1', dataDir: 'e', diskBytes: 1e8, memoryBytes: 1e7 }],
    });
    expect(validateCluster(raw(), '/tmp').steering.mpdCacheBytes).toBe(128 * 1024 * 1024);
    expect(validateCluster(raw(1_000_000), '/tmp').steering.mpdCacheBytes).toBe(1_000_000);
    expect(() => validateCluster(raw(0), '/tmp')).toThrow(/steering\.mpdCacheBytes: must be a positive integer/);
  });

  it('itKeepsTokensNearlyTheirWholeLife', () => {
    expect(tokenPeriodSec(21600)).toBe(60);
    expect(tokenPeriodSec(3600)).toBe(36);
    expect(tokenPeriodSec(30)).toBe(1);
  });
});

import { describe, expect, it } from 'vitest';
import { Ring } from '../../src/common/ring.js';
import { type EdgeLoad, computeBounds } from '../../src/steering/bounded-load.js';
import { LADDER_RETRY_MS, TitleLadders, dashLadder, hlsLadder, ladderFloor } from '../../src/steering/ladder.js';
import { type HintOutcome, applyPlayerHints, isDeferrable, isLowThroughput, overBudgetAnswer, parsePlayerHints, steeringTtlFor } from '../../src/steering/player-hints.js';
import { rankWithRules } from '../../src/steering/ranking.js';

const edges = [
  { id: 'a1', isp: 'isp-a' },
  { id: 'a2', isp: 'isp-a' },
  { id: 'a3', isp: 'isp-a' },
  { id: 'b1', isp: 'isp-b' },
];
const edgesById = new Map(edges.map((e) => [e.id, e]));
const ring = new Ring(edges.map((e) => e.id));
const all = new Set(edges.map((e) => e.id));
const title = 'some-title';
const order = ring.rank(title).filter((id) => id.startsWith('a'));
const known = (id: string) => edgesById.has(id);
const FLOOR = 400_000;
const opts = { isKnownEdge: known, isLow: (bps: number | undefined) => isLowThroughput(bps, FLOOR) };
const even = (over?: string): Map<string, EdgeLoad> =>
  new Map(edges.map((e) => [e.id, { connections: e.id === over ? 300 : 100, bytesPerSec: 0 }]));
const rank = (eligible: ReadonlySet<string> = all, loads = even()) =>
  rankWithRules({ title, isp: 'isp-a', edgesById, ring, eligible, spreadKey: 1, bounds: computeBounds(edges, loads, eligible, 1.25) });
const hls = (pathway: string, throughput = 5_000_000) => parsePlayerHints({ _HLS_pathway: pathway, _HLS_throughput: String(throughput) });
const ids = (r: { ranked: { edge: { id: string } }[] }) => r.ranked.map((x) => x.edge.id);

describe('player hints: reading them', () => {
  it('readsHlsPathwayAndThroughput', () => {
    expect(parsePlayerHints({ _HLS_pathway: 'edge-a1', _HLS_throughput: '1250000' })).toEqual({
      protocol: 'hls',
      current: 'edge-a1',
      reports: [{ pathway: 'edge-a1', throughputBps: 1_250_000 }],
      malformed: [],
    });
  });

  it('readsDashsQuotedListTheLastBeingCurrent', () => {
    // dash.js: _DASH_pathway="a,b" (quoted), _DASH_throughput=x,y with an empty entry when none measured.
    expect(parsePlayerHints({ _DASH_pathway: '"edge-a1,edge-a2"', _DASH_throughput: ',3000000' })).toEqual({
      protocol: 'dash',
      current: 'edge-a2',
      reports: [{ pathway: 'edge-a1', throughputBps: undefined }, { pathway: 'edge-a2', throughputBps: 3_000_000 }],
      malformed: [],
    });
  });

  it('ignoresWhatItCannotReadNeverFailing', () => {
    expect(parsePlayerHints({})).toBeUndefined();
    expect(parsePlayerHints(undefined)).toBeUndefined();
    expect(parsePlayerHints({ _HLS_pathway: 'edge-a1', _HLS_throughput: 'fast' })).toMatchObject({ current: 'edge-a1', malformed: ['_HLS_throughput'], reports: [{ throughputBps: undefined }] });
    expect(parsePlayerHints({ _HLS_pathway: '../etc' })).toMatchObject({ current: '', malformed: ['_HLS_pathway'] });
    expect(parsePlayerHints({ _HLS_pathway: ['edge-a2', 'edge-a1'] })).toMatchObject({ current: 'edge-a2' });
    expect(parsePlayerHints({ _DASH_pathway: '"edge-a1,<x>"', _DASH_throughput: '1e99,2' })).toMatchObject({
      current: 'edge-a1',
      malformed: ['_DASH_throughput', '_DASH_pathway'],
    });
  });
});

describe('player hints: what steering does with them', () => {
  const [first, second, third] = order as [string, string, string];

  it('withoutHintsTheRankingStands', () => {
    const r = applyPlayerHints(rank(), undefined, opts);
    expect(r.outcome).toBe('none');
    expect(ids(r)).toEqual([first, second, third, 'b1']);
  });

  it('keepsAPlayerOnItsPathwayWhileHealthyAndUnderTheBound', () => {
    const r = applyPlayerHints(rank(), hls(third), opts);
    expect(r.outcome).toBe('stay');
    expect(ids(r)).toEqual([third, first, second, 'b1']);
    expect(r.ranked[0]!.rule).toBe('sticky');
    expect(applyPlayerHints(rank(), hls(first), opts).outcome).toBe('stay');
  });

  it('movesAPlayerWhosePathwayIsDown', () => {
    const r = applyPlayerHints(rank(new Set([first, second, 'b1'])), hls(third), opts);
    expect(r.outcome).toBe('moved-down');
    expect(ids(r)[0]).toBe(first);
  });

  it('movesAPlayerWhosePathwayIsOverTheBound', () => {
    const r = applyPlayerHints(rank(all, even(third)), hls(third), opts);
    expect(r.outcome).toBe('moved-over-bound');
    expect(ids(r)).toEqual([first, second, third, 'b1']);
  });

  it('neverPutsFirstAPathwayWhereThePlayerMeasuredFarBelowTheLadder', () => {
    // 150 kbit/s where the lowest rendition needs 400: not kept, and not first either.
    const r = applyPlayerHints(rank(), hls(first, 150_000), opts);
    expect(r.outcome).toBe('moved-low-throughput');
    expect(ids(r)).toEqual([second, first, third, 'b1']);
    expect(r.ranked[1]!.rule).toBe('low-throughput');
    // Just above half the floor is not "far below": the player stays.
    expect(applyPlayerHints(rank(), hls(first, 200_001), opts).outcome).toBe('stay');
    // Alone, it stays first: there is no other pathway to give.
    const alone = rankWithRules({ title, isp: 'isp-a', edgesById, ring, eligible: new Set([first]) });
    expect(ids(applyPlayerHints(alone, hls(first, 1), opts))).toEqual([first]);
    // Unknown ladder: no rule.
    expect(isLowThroughput(1, undefined)).toBe(false);
  });

  it('dashThroughputForAnotherPathwayKeepsThatOneFromFirst', () => {
    const h = parsePlayerHints({ _DASH_pathway: `"${first},${third}"`, _DASH_throughput: `100000,5000000` });
    const r = applyPlayerHints(rank(), h, opts);
    expect(r.outcome).toBe('stay');
    expect(ids(r)[0]).toBe(third);
    // The first would have been `first`, which measured 100 kbit/s: it is not put back first.
    const moved = applyPlayerHints(rank(new Set([first, second, 'b1'])), h, opts);
    expect(moved.outcome).toBe('moved-down');
    expect(ids(moved)).toEqual([second, first, 'b1']);
  });

  it('bringsAPlayerOnAnotherIspsEdgeHomeWhenItsOwnHasRoom', () => {
    const r = applyPlayerHints(rank(), hls('b1'), opts);
    expect(r.outcome).toBe('moved-home');
    expect(ids(r)[0]).toBe(first);
    // While its own ISP has no edge up, it stays where it is.
    const away = applyPlayerHints(rank(new Set(['b1'])), hls('b1'), opts);
    expect(away.outcome).toBe('stay');
  });

  it('anUnknownPathwayChangesNothing', () => {
    const r = applyPlayerHints(rank(), hls('edge-zz'), opts);
    expect(r.outcome).toBe('unknown-pathway');
    expect(ids(r)).toEqual([first, second, third, 'b1']);
  });
});

describe('steering manifest policy', () => {
  it('shortensTheTtlWhileAnEdgeOfThePlayersIspIsDown', () => {
    const down = new Set(['isp-a']);
    expect(steeringTtlFor('isp-a', down, true, 10, 2)).toBe(2);
    expect(steeringTtlFor('isp-b', down, true, 10, 2)).toBe(10);
    expect(steeringTtlFor(undefined, new Set(), true, 10, 2)).toBe(2);
    expect(steeringTtlFor(undefined, new Set(), false, 10, 2)).toBe(10);
    // Never longer than the regular TTL.
    expect(steeringTtlFor('isp-a', down, true, 1, 2)).toBe(1);
  });

  it('defersOnlyAReloadWhosePlayerMayKeepWhatItHas', () => {
    expect(['stay', 'moved-home', 'none', 'unknown-pathway'].every((o) => isDeferrable(o as HintOutcome))).toBe(true);
    expect(['moved-down', 'moved-over-bound', 'moved-low-throughput'].some((o) => isDeferrable(o as HintOutcome))).toBe(false);
    // hls.js stops polling after a 429: a longer TTL instead; dash.js honours Retry-After.
    expect(overBudgetAnswer('hls')).toBe('longer-ttl');
    expect(overBudgetAnswer(undefined)).toBe('longer-ttl');
    expect(overBudgetAnswer('dash')).toBe('429');
  });
});

describe('ladder', () => {
  it('readsHlsVariantBitratesPreferringAverageBandwidth', () => {
    const text = [
      '#EXTM3U',
      '#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=700000,RESOLUTION=640x360',
      'mid.m3u8',
      '#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180',
      'low.m3u8',
      '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=50000,URI="iframe.m3u8"',
    ].join('\n');
    expect(hlsLadder(text)).toEqual([400_000, 700_000]);
    expect(ladderFloor('master.m3u8', text)).toBe(400_000);
    expect(hlsLadder('#EXTM3U\n#EXTINF:4,\nseg.ts\n')).toEqual([]);
  });

  it('readsDashVideoRepresentationsOnly', () => {
    const mpd = `<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011"><Period>
      <AdaptationSet contentType="video"><Representation id="v1" bandwidth="800000"/><Representation id="v0" bandwidth="300000"/></AdaptationSet>
      <AdaptationSet mimeType="audio/mp4"><Representation id="a" bandwidth="64000"/></AdaptationSet>
      <AdaptationSet><Representation id="v2" mimeType="video/mp4" bandwidth="2000000"/></AdaptationSet>
    </Period></MPD>`;
    expect(dashLadder(mpd)).toEqual([300_000, 800_000, 2_000_000]);
    expect(dashLadder('<MPD><oops')).toEqual([]);
  });

  it('knowsAFloorOnlyOnceReadInTheBackgroundAndPerManifestVersion', async () => {
    let reads = 0;
    const digests = new Map([['master.m3u8', 'd1']]);
    const ladders = new TitleLadders(
      {
        manifestsOf: (t) => (t === 'x' ? { manifests: ['master.m3u8'], digests } : undefined),
        manifestText: async () => {
          reads++;
          return '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=500000\nlow.m3u8\n';
        },
      },
      () => 0,
    );
    expect(ladders.floorNow('x')).toBeUndefined(); // not read yet: the reload goes on without it
    expect(ladders.floorNow('x')).toBeUndefined(); // being read: not read twice
    await ladders.settled();
    expect(ladders.floorNow('x')).toBe(500_000);
    expect(reads).toBe(1);
    digests.set('master.m3u8', 'd2'); // re-ingested
    expect(ladders.floorNow('x')).toBeUndefined();
    await ladders.settled();
    expect(ladders.floorNow('x')).toBe(500_000);
    expect(reads).toBe(2);
    expect(ladders.floorNow('unknown')).toBeUndefined();
  });

  it('neverWaitsForTheOriginAndRemembersAFailedReadForFifteenSeconds', async () => {
    let now = 0;
    let reads = 0;
    let answer: 'hang' | 'fail' | 'ok' = 'hang';
    const ladders = new TitleLadders(
      {
        manifestsOf: () => ({ manifests: ['master.m3u8'], digests: new Map([['master.m3u8', 'd1']]) }),
        manifestText: () => {
          reads++;
          if (answer === 'hang') return new Promise<string>(() => {});
          if (answer === 'fail') return Promise.reject(new Error('origin down'));
          return Promise.resolve('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=300000\nlow.m3u8\n');
        },
      },
      () => now,
    );
    // The origin does not answer: every call returns at once, one read is under way.
    for (let i = 0; i < 100; i++) expect(ladders.floorNow('t')).toBeUndefined();
    expect(reads).toBe(1);
    // A failure is remembered: no read for 15 s, then one.
    answer = 'fail';
    const failing = new TitleLadders(
      { manifestsOf: () => ({ manifests: ['master.m3u8'], digests: new Map() }), manifestText: () => (reads++, answer === 'ok' ? Promise.resolve('#EXT-X-STREAM-INF:BANDWIDTH=300000\nx.m3u8\n') : Promise.reject(new Error('down'))) },
      () => now,
    );
    reads = 0;
    failing.floorNow('t');
    await failing.settled();
    expect(reads).toBe(1);
    now = LADDER_RETRY_MS - 1;
    for (let i = 0; i < 50; i++) expect(failing.floorNow('t')).toBeUndefined();
    expect(reads).toBe(1);
    answer = 'ok';
    now = LADDER_RETRY_MS;
    expect(failing.floorNow('t')).toBeUndefined();
    await failing.settled();
    expect(reads).toBe(2);
    expect(failing.floorNow('t')).toBe(300_000);
  });
});

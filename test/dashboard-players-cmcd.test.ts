/// <reference lib="dom" />
// page.evaluate callbacks run in the browser.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Cmcd, parseCmcdText } from '../src/common/cmcd.js';
import { type Browser, type MediaResponse, type PlayerPage, launchBrowser, openPlayer } from './helpers/browser.js';
import { ADMIN_TOKEN, type ProcCluster, TITLES, startProcCluster } from './helpers/cluster-procs.js';
import { parsePrometheusText } from './helpers/prom-parse.js';

/**
 * The demo's players with CMCD on, end to end: hls.js and dash.js in Chromium against a real
 * cluster on loopback (origin and steering in this process, three `reelcdn edge` processes with
 * cold caches and prefetch on by default). The edges count the players' sessions, bitrates and
 * buffers; steering's dashboard shows them for the browser's ISP (127.0.0.1: isp-a); and the
 * segment a request names in `nor` was prefetched, so its first request is a memory hit.
 */

interface QoeSummary {
  sessions: number;
  startups: number;
  mediaRequests: number;
  avgBitrateKbps: number | null;
  avgBufferMs: number | null;
}

/** The CMCD a media URL carries as its CMCD= query key (the players' query mode). */
const cmcdOf = (url: string): Cmcd | undefined => {
  const q = new URL(url).searchParams.get('CMCD');
  return q === null ? undefined : parseCmcdText(q);
};

interface Played {
  engine: string;
  sid: string;
  /** Every media answer with the CMCD its request carried. */
  media: (MediaResponse & { cmcd: Cmcd | undefined })[];
  /** Keys seen on media requests, sorted. */
  keys: string[];
  /** For each request that named its next object (nor/nrr): that object's first answer. */
  announced: { from: string; next: string; range: string | undefined; xCache: string | undefined }[];
}

/**
 * The players' link: 512 kbit/s. A segment of these titles (7-37 KB) takes 0.1-0.6 s to arrive, as on a
 * real access link, while the edge's prefetch from an origin on loopback takes milliseconds; unthrottled,
 * a player on loopback asks for the next segment the instant the current one is in, and meets the
 * prefetch still on its way (HIT-FILL) however fast the edge is.
 */
const DOWNLOAD_BYTES_PER_SEC = 64 * 1024;

/** Plays a title past `seconds` and past its last segment, and reads what the player sent. */
async function play(cluster: ProcCluster, browser: Browser, title: string, manifest: string, lastSegment: RegExp): Promise<Played> {
  const p: PlayerPage = await openPlayer(browser, `${cluster.steeringUrl}/player/?title=${title}&manifest=${manifest}&autoplay=1`, { cache: false, downloadBytesPerSec: DOWNLOAD_BYTES_PER_SEC });
  try {
    await p.waitForTime(5, 30_000);
    // The titles are 12 s: every segment is asked for well within the buffer goal.
    const deadline = Date.now() + 15_000;
    while (!p.media.some((m) => lastSegment.test(m.path)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const r = await p.reel();
    expect(r.errors, await p.diagnostics()).toEqual([]);
    const sid = await p.page.evaluate(() => (window as unknown as { reel: { cmcd: { sid: string } } }).reel.cmcd.sid);
    const media = p.media.map((m) => ({ ...m, cmcd: cmcdOf(m.url) }));
    const keys = [...new Set(media.flatMap((m) => (m.cmcd ? [...m.cmcd.keys.keys()] : [])))].sort();
    const announced: Played['announced'] = [];
    media.forEach((m, i) => {
      const c = m.cmcd;
      if (!c || (c.nor === undefined && c.nrr === undefined)) return;
      const next = c.nor === undefined ? m.path : new URL(c.nor, m.url).pathname;
      const range = c.nrr === undefined ? undefined : `bytes=${c.nrr}`;
      const first = media.slice(i + 1).find((x) => x.path === next && (range === undefined || x.range === range));
      // The player may stop before asking for it (the end of the title).
      if (first && !media.slice(0, i + 1).some((x) => x.path === next && x.range === first.range)) {
        announced.push({ from: m.path, next, range, xCache: first.xCache });
      }
    });
    return { engine: r.engine ?? '', sid, media, keys, announced };
  } finally {
    await p.page.close();
  }
}

async function edgeMetrics(cluster: ProcCluster): Promise<{ sum(name: string): number }> {
  const all = await Promise.all(
    [...cluster.edges.values()].map(async (e) => {
      const res = await request(`${e.adminUrl}/metrics`, { dispatcher: cluster.dispatcher });
      return parsePrometheusText(await res.body.text()).samples;
    }),
  );
  const samples = all.flat();
  return { sum: (name) => samples.filter((s) => s.name === name).reduce((a, s) => a + s.value, 0) };
}

describe('browser: hls.js and dash.js with CMCD on fill the QoE panel, and nor is prefetched', () => {
  let cluster: ProcCluster;
  let browser: Browser;

  beforeAll(async () => {
    [cluster, browser] = await Promise.all([startProcCluster(), launchBrowser()]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await cluster?.close();
  });

  it('hls.js and dash.js send CMCD; edges count their sessions, br and bl; the dashboard shows isp-a; announced segments are prefetched', async () => {
    // Steering's QoE counts differences from its samples: let it take one of every edge before the
    // players come, or their first requests would sit in its baseline.
    const dashboard = async () => {
      const res = await request(`${cluster.steeringAdminUrl}/v1/dashboard`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, dispatcher: cluster.dispatcher });
      return (await res.body.json()) as { sampleMs: number; edges: { eligible: boolean }[]; history: { t: number[] }; qoe: { isps: { id: string; qoe: QoeSummary | null }[] } };
    };
    await expect.poll(async () => (await dashboard()).edges.every((e) => e.eligible), { timeout: 10_000 }).toBe(true);
    const points = (await dashboard()).history.t.length;
    await expect.poll(async () => (await dashboard()).history.t.length, { timeout: 10_000 }).toBeGreaterThan(points);

    const hls = await play(cluster, browser, TITLES.hlsSegments, 'master.m3u8', /seg_180p_005\.m4s$/);
    const dash = await play(cluster, browser, TITLES.dash, 'manifest.mpd', /chunk-0-00006\.m4s$/);
    // What each player sends on media requests (docs/operations.md, "QoE dashboard", lists them).
    console.log(`CMCD keys on media requests — ${hls.engine}: ${hls.keys.join(' ')}; ${dash.engine}: ${dash.keys.join(' ')}`);
    for (const p of [hls, dash]) {
      expect(p.engine).toMatch(/^(hls|dash)\.js/);
      const withCmcd = p.media.filter((m) => m.cmcd !== undefined);
      expect(withCmcd.length, p.engine).toBe(p.media.length); // every media request carries it
      expect(p.keys, p.engine).toEqual(expect.arrayContaining(['bl', 'br', 'cid', 'nor', 'ot', 'sf', 'sid', 'su']));
      expect(new Set(withCmcd.map((m) => m.cmcd!.sid)), p.engine).toEqual(new Set([p.sid]));
      for (const m of withCmcd.filter((x) => x.cmcd!.br !== undefined)) {
        expect(m.cmcd!.br, `${p.engine} ${m.path}`).toBeGreaterThan(10);
        expect(m.cmcd!.br, `${p.engine} ${m.path}`).toBeLessThan(20_000);
      }
    }

    // The edges' metrics: both sessions, bitrates and buffers in the range the players sent.
    const brs = [hls, dash].flatMap((p) => p.media.flatMap((m) => (m.cmcd?.br !== undefined ? [m.cmcd.br] : [])));
    const m = await edgeMetrics(cluster);
    expect(m.sum('reelcdn_edge_cmcd_sessions_total')).toBeGreaterThanOrEqual(2);
    const brCount = m.sum('reelcdn_edge_cmcd_bitrate_kbps_count');
    expect(brCount).toBeGreaterThan(6);
    const brAvg = m.sum('reelcdn_edge_cmcd_bitrate_kbps_sum') / brCount;
    expect(brAvg).toBeGreaterThanOrEqual(Math.min(...brs));
    expect(brAvg).toBeLessThanOrEqual(Math.max(...brs));
    const blCount = m.sum('reelcdn_edge_cmcd_buffer_length_ms_count');
    expect(blCount).toBeGreaterThan(6);
    const blAvg = m.sum('reelcdn_edge_cmcd_buffer_length_ms_sum') / blCount;
    expect(blAvg).toBeGreaterThanOrEqual(0);
    expect(blAvg).toBeLessThan(30_000);

    // Steering's dashboard: isp-a's sessions (an edge counts the sids it sees: one per player and
    // edge it used), and the startups the edges could measure — a
    // session whose edge saw a request with su and then one without. (A player that buffers this
    // short title whole before it starts playing sends su on every request: its startup never ends.)
    const startups = [hls, dash].reduce((n, p) => {
      const su = p.media.findIndex((x) => x.cmcd?.su === true);
      return n + (su >= 0 && p.media.slice(su + 1).some((x) => x.cmcd !== undefined && x.cmcd.su !== true && x.origin === p.media[su]!.origin) ? 1 : 0);
    }, 0);
    const sessions = new Set([hls, dash].flatMap((p) => p.media.map((x) => `${p.sid} ${x.origin}`))).size;
    expect(sessions).toBeGreaterThanOrEqual(2);
    let qoe: QoeSummary | null = null;
    await expect
      .poll(async () => {
        qoe = (await dashboard()).qoe.isps.find((i) => i.id === 'isp-a')?.qoe ?? null;
        return [qoe?.sessions ?? 0, qoe?.startups ?? 0];
      }, { timeout: 15_000, interval: 250 })
      .toEqual([sessions, startups]);
    expect(qoe!.avgBitrateKbps).toBeGreaterThanOrEqual(Math.min(...brs));
    expect(qoe!.avgBitrateKbps).toBeLessThanOrEqual(Math.max(...brs));
    expect(qoe!.avgBufferMs).not.toBeNull();

    // nor: the segment a request announced was prefetched — its first request is a HIT-MEM, or (on a
    // busy machine, where the edge's prefetch can take longer than a small segment's 0.1 s on the
    // link) a HIT-FILL that joined the prefetch on its way; never a MISS or a disk read.
    const report = [hls, dash].map((p) => `${p.engine}:\n${p.announced.map((a) => `  ${a.from} -> ${a.next} ${a.range ?? ''} ${a.xCache}`).join('\n')}`).join('\n');
    for (const p of [hls, dash]) {
      expect(p.announced.length, report).toBeGreaterThanOrEqual(3);
      expect(p.announced.filter((a) => a.xCache === 'HIT-MEM').length * 2, report).toBeGreaterThanOrEqual(p.announced.length);
    }
    expect([hls, dash].flatMap((p) => p.announced.filter((a) => a.xCache !== 'HIT-MEM' && a.xCache !== 'HIT-FILL')), report).toEqual([]);
    console.log(report);
  });
});

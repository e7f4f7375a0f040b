import { type Browser, chromium } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cmcdHeaders, formatCmcd } from '../src/common/cmcd.js';
import { signQuery } from '../src/common/signing.js';
import { STARTUP_BOUNDS_MS } from '../src/edge/qoe.js';
import { type OpsCluster, startOpsCluster } from './helpers/ops-cluster.js';

/**
 * QoE by ISP end to end: a real origin, three real edges in two ISPs and a real steering on
 * loopback. Players' CMCD (both forms: the CMCD= query key and the CMCD-* headers) reaches the
 * edges, steering reads their /health qoe block and its dashboard API and page show per ISP
 * and per edge what the players said.
 */

const CHROMIUM = '/usr/bin/chromium';

let cluster: OpsCluster;
let browser: Browser;

beforeAll(async () => {
  cluster = await startOpsCluster();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await cluster?.close();
});

/** One media request on an edge carrying CMCD, as a query key or as the four headers. */
async function cmcdGet(edgeId: string, file: string, cmcd: Parameters<typeof formatCmcd>[0], form: 'query' | 'headers'): Promise<void> {
  const e = cluster.config.edges.find((x) => x.id === edgeId)!;
  const path = `/c/${cluster.title}/${file}`;
  const q = signQuery(cluster.config.signing.keys, cluster.config.signing.activeKey, path, Date.now() / 1000, 3600);
  const url = form === 'query' ? `${e.url}${path}?${q}&CMCD=${encodeURIComponent(formatCmcd(cmcd))}` : `${e.url}${path}?${q}`;
  const res = await request(url, { headers: form === 'headers' ? cmcdHeaders(cmcd) : {} });
  await res.body.dump();
  expect(res.statusCode, url).toBe(200);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The startup bucket (index into startupCounts) a duration in ms falls in: the first bound at or above it. */
function bucketOf(ms: number): number {
  const i = STARTUP_BOUNDS_MS.findIndex((b) => ms <= b);
  return i < 0 ? STARTUP_BOUNDS_MS.length : i;
}

/**
 * What the edge can have measured as a session's startup (its first request with su to its first
 * without, on its own monotonic clock), bounded by what this test saw: from the end of the su
 * request to the start of the next at least, from the start of one to the end of the other at
 * most — so the test asserts buckets from what happened, not from how fast a busy machine was.
 */
async function startup(first: () => Promise<void>, next: () => Promise<void>, pause = 0): Promise<{ min: number; max: number }> {
  const t0 = performance.now();
  await first();
  const t1 = performance.now();
  // A timer may fire a fraction of a millisecond early by this clock: wait until the pause has truly passed.
  while (performance.now() - t1 < pause) await sleep(Math.max(1, pause - (performance.now() - t1)));
  const t2 = performance.now();
  await next();
  const t3 = performance.now();
  return { min: t2 - t1, max: t3 - t0 };
}

/** `quantileMs` (a dashboard p50/p90: interpolated inside its bucket) lies in a bucket from `lo`'s to `hi`'s. */
function expectInBuckets(quantileMs: number, lo: number, hi: number): void {
  expect(quantileMs).toBeGreaterThan(0);
  expect(bucketOf(quantileMs)).toBeGreaterThanOrEqual(bucketOf(lo));
  expect(bucketOf(quantileMs)).toBeLessThanOrEqual(bucketOf(hi));
}

async function dashboard(): Promise<any> {
  const res = await request(`${cluster.steeringAdminUrl}/v1/dashboard`, { headers: { authorization: `Bearer ${cluster.token}` } });
  expect(res.statusCode).toBe(200);
  return res.body.json();
}

describe('dashboard: QoE by ISP from the edges\' CMCD', () => {
  it('shows each ISP\'s and edge\'s startup, rebuffering, bitrate, buffer and sessions; none for an ISP without CMCD', async () => {
    // Steering has sampled the edges before the players come (their counters' baseline).
    await expect.poll(async () => (await dashboard()).qoe?.isps.length, { timeout: 10_000 }).toBe(2);
    const [f0, f1, f2, f3] = cluster.files;
    // Session one on edge-a1, by headers: starts (su) at 2000 kbps, its first request without su
    // comes at least 600 ms later, then one starved request.
    const s1 = { sid: 'qoe-session-one', cid: cluster.title, ot: 'v', sf: 'd' };
    const one = await startup(
      () => cmcdGet('edge-a1', f0!, { ...s1, br: 2000, bl: 0, su: true }, 'headers'),
      () => cmcdGet('edge-a1', f1!, { ...s1, br: 2000, bl: 4000 }, 'headers'),
      600,
    );
    await cmcdGet('edge-a1', f2!, { ...s1, br: 2000, bl: 2000, bs: true }, 'headers');
    // Session two on edge-a2, by query: starts at once at 1000 kbps (as fast as the machine goes).
    const s2 = { sid: 'qoe-session-two', cid: cluster.title, ot: 'v', sf: 'd' };
    const two = await startup(
      () => cmcdGet('edge-a2', f0!, { ...s2, br: 1000, bl: 0, su: true }, 'query'),
      () => cmcdGet('edge-a2', f1!, { ...s2, br: 1000, bl: 6000 }, 'query'),
    );
    await cmcdGet('edge-a2', f3!, { ...s2, br: 1000, bl: 8000 }, 'query');
    // A request without CMCD on isp-b's edge: no QoE to show there.
    expect((await cluster.fetchFromEdge('edge-b1', f0!)).status).toBe(200);

    let d: any;
    await expect
      .poll(async () => {
        d = await dashboard();
        return d.qoe.isps.find((i: { id: string }) => i.id === 'isp-a')?.qoe?.mediaRequests;
      }, { timeout: 15_000, interval: 250 })
      .toBe(6);
    const ispA = d.qoe.isps.find((i: { id: string }) => i.id === 'isp-a');
    expect(ispA.edges).toEqual(['edge-a1', 'edge-a2']);
    expect(ispA.qoe).toMatchObject({ sessions: 2, requests: 6, mediaRequests: 6, startups: 2 });
    expect(ispA.qoe.rebufferRatio).toBeCloseTo(1 / 6, 10);
    expect(ispA.qoe.avgBitrateKbps).toBeCloseTo(1500, 10);
    expect(ispA.qoe.avgBufferMs).toBeCloseTo((0 + 4000 + 2000 + 0 + 6000 + 8000) / 6, 10);
    // Two startups: p50 in the shorter one's bucket, p90 in the longer one's (session one's is over 500 ms however fast
    // the machine is). Buckets from what the test saw of each, not from wall-clock expectations.
    expect(one.min).toBeGreaterThanOrEqual(600);
    expectInBuckets(ispA.qoe.startupP50Ms, Math.min(one.min, two.min), Math.min(one.max, two.max));
    expectInBuckets(ispA.qoe.startupP90Ms, Math.max(one.min, two.min), Math.max(one.max, two.max));
    expect(ispA.qoe.startupP50Ms).toBeLessThanOrEqual(ispA.qoe.startupP90Ms);
    expect(ispA.qoe.startupP90Ms).toBeGreaterThan(500);
    const a1 = d.qoe.edges.find((e: { id: string }) => e.id === 'edge-a1').qoe;
    expect(a1).toMatchObject({ sessions: 1, mediaRequests: 3, startups: 1, avgBitrateKbps: 2000 });
    expect(a1.rebufferRatio).toBeCloseTo(1 / 3, 10);
    expect(a1.startupP50Ms).toBeGreaterThan(500);
    expectInBuckets(a1.startupP50Ms, one.min, one.max);
    const a2 = d.qoe.edges.find((e: { id: string }) => e.id === 'edge-a2').qoe;
    expect(a2).toMatchObject({ sessions: 1, mediaRequests: 3, startups: 1, avgBitrateKbps: 1000, rebufferRatio: 0 });
    expectInBuckets(a2.startupP90Ms, two.min, two.max);
    expect(d.qoe.isps.find((i: { id: string }) => i.id === 'isp-b').qoe).toBeNull();
    expect(d.qoe.edges.find((e: { id: string }) => e.id === 'edge-b1').qoe).toBeNull();
    expect(d.qoe.windowMs).toBe(3_600_000);

    // The page shows the same.
    const page = await browser.newPage();
    try {
      await page.goto(`${cluster.steeringAdminUrl}/dashboard#token=${encodeURIComponent(cluster.token)}`);
      const row = page.locator('#qoe-isps tr[data-qoe-isp="isp-a"]');
      await expect.poll(() => row.locator('[data-field="sessions"]').textContent(), { timeout: 10_000 }).toBe('2');
      expect(await row.locator('[data-field="rebuffer"]').textContent()).toBe('16.7%');
      expect(await row.locator('[data-field="bitrate"]').textContent()).toBe('1.50 Mbit/s');
      expect(await page.locator('#qoe-isps tr[data-qoe-isp="isp-b"] [data-field="no-data"]').textContent()).toBe('no CMCD data');
      expect(await page.locator('#qoe-edges tr[data-qoe-edge="edge-a1"] [data-field="bitrate"]').textContent()).toBe('2.00 Mbit/s');
    } finally {
      await page.close();
    }
  });
});

import { type Browser, chromium } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cmcdHeaders, formatCmcd } from '../src/common/cmcd.js';
import { signQuery } from '../src/common/signing.js';
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
    // comes ~600 ms later, then one starved request.
    const s1 = { sid: 'qoe-session-one', cid: cluster.title, ot: 'v', sf: 'd' };
    await cmcdGet('edge-a1', f0!, { ...s1, br: 2000, bl: 0, su: true }, 'headers');
    await sleep(600);
    await cmcdGet('edge-a1', f1!, { ...s1, br: 2000, bl: 4000 }, 'headers');
    await cmcdGet('edge-a1', f2!, { ...s1, br: 2000, bl: 2000, bs: true }, 'headers');
    // Session two on edge-a2, by query: starts at once (< 250 ms) at 1000 kbps.
    const s2 = { sid: 'qoe-session-two', cid: cluster.title, ot: 'v', sf: 'd' };
    await cmcdGet('edge-a2', f0!, { ...s2, br: 1000, bl: 0, su: true }, 'query');
    await cmcdGet('edge-a2', f1!, { ...s2, br: 1000, bl: 6000 }, 'query');
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
    // One startup in [0, 250] ms, one in (500, 1000] (or later on a loaded machine): p50 in the first, p90 in the second's.
    expect(ispA.qoe.startupP50Ms).toBeGreaterThan(0);
    expect(ispA.qoe.startupP50Ms).toBeLessThanOrEqual(250);
    expect(ispA.qoe.startupP90Ms).toBeGreaterThan(500);
    const a1 = d.qoe.edges.find((e: { id: string }) => e.id === 'edge-a1').qoe;
    expect(a1).toMatchObject({ sessions: 1, mediaRequests: 3, startups: 1, avgBitrateKbps: 2000 });
    expect(a1.rebufferRatio).toBeCloseTo(1 / 3, 10);
    expect(a1.startupP50Ms).toBeGreaterThan(500);
    const a2 = d.qoe.edges.find((e: { id: string }) => e.id === 'edge-a2').qoe;
    expect(a2).toMatchObject({ sessions: 1, mediaRequests: 3, startups: 1, avgBitrateKbps: 1000, rebufferRatio: 0 });
    expect(a2.startupP90Ms).toBeLessThanOrEqual(250);
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

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { type Browser, chromium } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpsCluster, startOpsCluster } from './helpers/ops-cluster.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(import.meta.dirname, '..', 'test-artifacts');

/** Every log line of the cluster, to check the admin token never appears in one. */
const lines: string[] = [];
const sink = new Writable({
  write(chunk, _enc, cb) {
    lines.push(String(chunk));
    cb();
  },
});

let cluster: OpsCluster;
let browser: Browser;

async function dashboardJson(token?: string): Promise<{ status: number; body: any }> {
  const res = await request(`${cluster.steeringAdminUrl}/v1/dashboard`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.body.text();
  return { status: res.statusCode, body: res.statusCode === 200 ? JSON.parse(text) : text };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  cluster = await startOpsCluster({ logger: pino({ level: 'debug' }, sink) });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await cluster?.close();
});

describe('ops dashboard on steering admin port', () => {
  it('serves the page and its assets without the token, the data only with it', async () => {
    const get = async (path: string, headers: Record<string, string> = {}) => {
      const res = await request(`${cluster.steeringAdminUrl}${path}`, { headers });
      const body = await res.body.text();
      return { status: res.statusCode, type: String(res.headers['content-type'] ?? ''), body };
    };
    const page = await get('/dashboard');
    expect(page.status).toBe(200);
    expect(page.type).toMatch(/text\/html/);
    expect((await get('/dashboard/')).status).toBe(200);
    expect((await get('/dashboard/dashboard.js')).status).toBe(200);
    expect((await get('/dashboard/dashboard.css')).status).toBe(200);
    const uplot = await get('/dashboard/vendor/uplot/uPlot.iife.min.js');
    expect(uplot.status).toBe(200);
    expect(uplot.body).toContain('uPlot');
    // Data, health and metrics stay behind the token; dot segments never ride the open prefix.
    expect((await dashboardJson()).status).toBe(401);
    expect((await dashboardJson('wrong-token')).status).toBe(401);
    expect((await get('/metrics')).status).toBe(401);
    expect((await get('/dashboard/../v1/dashboard')).status).not.toBe(200);
    expect((await get('/dashboard/%2e%2e/v1/dashboard')).status).not.toBe(200);
    expect((await dashboardJson(cluster.token)).status).toBe(200);
  });

  it('shows the hit ratios of known traffic, then an edge going down, live', async () => {
    // 20 requests on edge-a1: five files, each once cold (MISS) and three times warm (HIT-MEM).
    const seen: string[] = [];
    const files = cluster.files.slice(0, 5);
    expect(files).toHaveLength(5);
    for (const f of files) {
      for (let i = 0; i < 4; i++) {
        const r = await cluster.fetchFromEdge('edge-a1', f);
        expect(r.status).toBe(200);
        seen.push(r.cache);
      }
    }
    expect(seen.filter((c) => c === 'MISS')).toHaveLength(5);
    const memHits = seen.filter((c) => c === 'HIT-MEM').length;
    const diskHits = seen.filter((c) => c === 'HIT-DISK').length;
    expect(memHits + diskHits).toBe(15);
    // One play through steering: a top title.
    const play = await request(`${cluster.steeringUrl}/v1/play/${cluster.title}/manifest.mpd`);
    await play.body.dump();
    expect(play.statusCode).toBe(200);

    // Steering learns it from its next poll of edge-a1's /health.
    const data = await until('the dashboard JSON to count 20 answers', async () => {
      const d = (await dashboardJson(cluster.token)).body;
      const e = d.edges.find((x: { id: string }) => x.id === 'edge-a1');
      const n = e?.tiers ? e.tiers['HIT-MEM'].requests + e.tiers['HIT-DISK'].requests + e.tiers.MISS.requests : 0;
      return n === 20 ? d : undefined;
    });
    const a1 = data.edges.find((x: { id: string }) => x.id === 'edge-a1');
    expect(a1.tiers['HIT-MEM'].requests).toBe(memHits);
    expect(a1.tiers['HIT-DISK'].requests).toBe(diskHits);
    expect(a1.tiers.MISS.requests).toBe(5);
    expect(a1.hitRatio.requests).toBeCloseTo(0.75, 10);
    expect(a1.hitRatio.bytes).toBeCloseTo(0.75, 10); // every file was asked four times
    expect(data.topTitles[0]).toMatchObject({ title: cluster.title, plays: 1 });

    const page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
    await page.goto(`${cluster.steeringAdminUrl}/dashboard#token=${encodeURIComponent(cluster.token)}`);
    const a1Row = page.locator('tr[data-edge="edge-a1"]');
    await expect.poll(() => a1Row.locator('[data-field="hit-requests"]').textContent(), { timeout: 10_000 }).toBe('75.0%');
    expect(await a1Row.locator('[data-field="hit-bytes"]').textContent()).toBe('75.0%');
    const split = a1Row.locator('[data-field="split-requests"]');
    expect(await split.getAttribute('data-mem')).toBe(String(memHits));
    expect(await split.getAttribute('data-disk')).toBe(String(diskHits));
    expect(await split.getAttribute('data-miss')).toBe('5');
    expect(await page.locator('tr[data-isp="isp-a"] [data-field="hit-requests"]').textContent()).toBe('75.0%');
    expect(await page.locator('[data-field="cluster-hit-requests"]').textContent()).toBe('75.0%');
    expect(await page.locator(`tr[data-title="${cluster.title}"] [data-field="plays"]`).textContent()).toBe('1');
    expect(await page.locator('tr[data-edge="edge-a2"] [data-field="state"]').textContent()).toBe('up');
    // The token left the address bar (it lives in sessionStorage only).
    expect(page.url()).not.toContain('token');

    // More traffic shows up without a reload.
    for (let i = 0; i < 4; i++) await cluster.fetchFromEdge('edge-a1', files[0]!);
    await expect.poll(() => a1Row.locator('[data-field="hit-requests"]').textContent(), { timeout: 10_000 }).toBe('79.2%'); // 19/24

    // An edge dies: the page says so within a few seconds, with the reason.
    const killedAt = Date.now();
    await cluster.killEdge('edge-a2');
    const a2Row = page.locator('tr[data-edge="edge-a2"]');
    await expect.poll(() => a2Row.getAttribute('data-state'), { timeout: 6000, interval: 100 }).toBe('down');
    const tookMs = Date.now() - killedAt;
    expect(tookMs).toBeLessThan(6000);
    expect(await a2Row.locator('[data-field="reason"]').getAttribute('data-kind')).toBe('poll_failed');
    expect(await page.locator('[data-field="cluster-up"]').textContent()).toBe('2 / 3');

    // Let the chart collect a few samples, then keep a picture of it.
    await page.waitForTimeout(2500);
    expect(await page.locator('#chart-hits canvas').count()).toBeGreaterThan(0);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
    await page.close();
  }, 60_000);

  it('asks for the token when the link has none, and takes it from the form', async () => {
    const page = await browser.newPage();
    await page.goto(`${cluster.steeringAdminUrl}/dashboard`);
    await expect.poll(() => page.locator('#login').isVisible()).toBe(true);
    await page.fill('#token', 'not-the-token');
    await page.click('#login button[type=submit]');
    await expect.poll(() => page.locator('#login-error').textContent()).toContain('refused');
    await page.fill('#token', cluster.token);
    await page.click('#login button[type=submit]');
    await expect.poll(() => page.locator('#main').isVisible()).toBe(true);
    await expect.poll(() => page.locator('tr[data-edge="edge-a1"] [data-field="state"]').textContent()).toBe('up');
    await page.close();
  });

  it('never logs the admin token', () => {
    const all = lines.join('');
    expect(all).toContain('"path":"/v1/dashboard"'); // the data requests were logged…
    expect(all).not.toContain(cluster.token); // …without their authorization header
  });
});

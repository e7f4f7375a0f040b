import { type Browser, chromium } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpsCluster, startOpsCluster } from '../helpers/ops-cluster.js';

/**
 * The dashboard's drain buttons, through steering's POST /v1/drain and /v1/undrain on a real
 * cluster (origin, three edges, steering on loopback) in a real Chromium.
 */

const CHROMIUM = '/usr/bin/chromium';

let cluster: OpsCluster;
let browser: Browser;

async function post(path: string, body: unknown, token: string | null = cluster.token): Promise<{ status: number; text: string }> {
  const res = await request(`${cluster.steeringAdminUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.statusCode, text: await res.body.text() };
}

async function edgeHealth(id: string): Promise<{ status: number; body: { status: string } }> {
  const e = cluster.config.edges.find((x) => x.id === id)!;
  const res = await request(`${e.adminUrl}/health`, { headers: { authorization: `Bearer ${cluster.token}` } });
  return { status: res.statusCode, body: (await res.body.json()) as { status: string } };
}

beforeAll(async () => {
  cluster = await startOpsCluster();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await cluster?.close();
});

describe('dashboard drain and undrain', () => {
  it('drainsAnEdgeFromItsRowAndTakesItBack', async () => {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    await page.goto(`${cluster.steeringAdminUrl}/dashboard#token=${encodeURIComponent(cluster.token)}`);
    const row = page.locator('tr[data-edge="edge-a1"]');
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 10_000 }).toBe('up');
    const button = row.locator('button[data-action]');
    expect(await button.textContent()).toBe('Drain');

    await button.click();
    // Steering polls the edge as soon as it is drained: the row says so within one refresh.
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 3000, interval: 50 }).toBe('down');
    expect(await row.locator('[data-field="reason"]').textContent()).toMatch(/^draining · /);
    await expect.poll(() => row.locator('button[data-action]').textContent()).toBe('Undrain');
    const h = await edgeHealth('edge-a1');
    expect(h.status).toBe(503);
    expect(h.body.status).toBe('draining');
    // The edge still serves what it is asked.
    expect((await cluster.fetchFromEdge('edge-a1', cluster.files[0]!)).status).toBe(200);
    expect(await page.locator('#ops-error').isHidden()).toBe(true);

    await row.locator('button[data-action="undrain"]').click();
    // Up again after steering.upAfter (2) good polls.
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 5000, interval: 50 }).toBe('up');
    await expect.poll(() => row.locator('button[data-action]').textContent()).toBe('Drain');
    expect((await edgeHealth('edge-a1')).status).toBe(200);
    await page.close();
  }, 30_000);

  it('showsWhyADrainFailed', async () => {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    await page.goto(`${cluster.steeringAdminUrl}/dashboard#token=${encodeURIComponent(cluster.token)}`);
    const row = page.locator('tr[data-edge="edge-b1"]');
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 10_000 }).toBe('up');
    await cluster.killEdge('edge-b1');
    await row.locator('button[data-action="drain"]').click();
    // Four attempts (0.5 + 1 + 2 s of waits), then the reason.
    await expect.poll(() => page.locator('#ops-error').textContent(), { timeout: 10_000 }).toMatch(/^edge-b1 could not be drained after 4 attempt\(s\): cannot be reached at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)$/);
    await page.close();
  }, 30_000);

  it('refusesADrainWithoutTheTokenOrForAnUnknownEdge', async () => {
    expect((await post('/v1/drain', { id: 'edge-a2' }, null)).status).toBe(401);
    expect(await post('/v1/drain', { id: 'edge-zz' })).toEqual({ status: 404, text: 'id: "edge-zz" is not an edge of the cluster file\n' });
    expect(await post('/v1/undrain', {})).toEqual({ status: 400, text: 'id: missing (body {"id": "EDGE_ID"})\n' });
    expect((await post('/v1/purge', { prefix: '' })).status).toBe(400);
    expect((await edgeHealth('edge-a2')).status).toBe(200);
  });
});

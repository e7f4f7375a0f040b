import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpsCluster, startOpsCluster } from './helpers/ops-cluster.js';
import { type Exposition, parsePrometheusText, select, sumOf } from './helpers/prom-parse.js';

let cluster: OpsCluster;

async function scrape(adminUrl: string, token?: string): Promise<Exposition> {
  const res = await request(`${adminUrl}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${adminUrl}/metrics answered ${res.statusCode}`);
  expect(String(res.headers['content-type'])).toMatch(/^text\/plain/);
  return parsePrometheusText(text);
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const edgeAdmin = (id: string) => cluster.config.edges.find((e) => e.id === id)!.adminUrl;

beforeAll(async () => {
  cluster = await startOpsCluster();
}, 60_000);
afterAll(async () => cluster?.close());

describe('prometheus text parser', () => {
  it('reads labels with escapes, special values and timestamps', () => {
    const e = parsePrometheusText(
      [
        '# HELP x_total A counter',
        '# TYPE x_total counter',
        'x_total{a="q\\"uote",b="back\\\\slash",c="new\\nline"} 3 1700000000000',
        'y NaN',
        'z{le="+Inf"} +Inf',
        '',
      ].join('\n'),
    );
    expect(e.families.get('x_total')).toEqual({ name: 'x_total', type: 'counter', help: 'A counter' });
    expect(select(e, 'x_total')[0]!.labels).toEqual({ a: 'q"uote', b: 'back\\slash', c: 'new\nline' });
    expect(sumOf(e, 'x_total')).toBe(3);
    expect(Number.isNaN(select(e, 'y')[0]!.value)).toBe(true);
    expect(select(e, 'z')[0]!.value).toBe(Number.POSITIVE_INFINITY);
    expect(() => parsePrometheusText('bad{a=1} 2')).toThrow();
  });
});

describe('/metrics of every service count the traffic sent', () => {
  it('edge, origin and steering agree with 20 edge requests and 2 plays', async () => {
    const files = cluster.files.slice(0, 5);
    let expectedBytes = 0;
    const byTier: Record<string, number> = { MISS: 0, 'HIT-MEM': 0, 'HIT-DISK': 0 };
    const bytesByTier: Record<string, number> = { MISS: 0, 'HIT-MEM': 0, 'HIT-DISK': 0 };
    for (const f of files) {
      for (let i = 0; i < 4; i++) {
        const r = await cluster.fetchFromEdge('edge-a1', f);
        expect(r.status).toBe(200);
        byTier[r.cache]!++;
        bytesByTier[r.cache]! += r.bytes;
        if (i === 0) expectedBytes += r.bytes;
      }
    }
    expect(byTier.MISS).toBe(5);
    for (let i = 0; i < 2; i++) {
      const play = await request(`${cluster.steeringUrl}/v1/play/${cluster.title}/manifest.mpd`);
      await play.body.dump();
      expect(play.statusCode).toBe(200);
    }

    // Edge.
    const edge = await scrape(edgeAdmin('edge-a1'), cluster.token);
    for (const tier of ['MISS', 'HIT-MEM', 'HIT-DISK']) {
      expect(sumOf(edge, 'reelcdn_edge_requests_total', { tier, status: '200' })).toBe(byTier[tier]);
      expect(sumOf(edge, 'reelcdn_edge_response_bytes_total', { tier })).toBe(bytesByTier[tier]);
    }
    expect(sumOf(edge, 'reelcdn_edge_requests_total')).toBe(20);
    expect(sumOf(edge, 'reelcdn_edge_upstream_bytes_total')).toBe(expectedBytes);
    expect(sumOf(edge, 'reelcdn_edge_request_duration_seconds_count')).toBe(20);
    expect(sumOf(edge, 'reelcdn_edge_health_status', { status: 'ok' })).toBe(1);
    expect(sumOf(edge, 'reelcdn_edge_health_status', { status: 'draining' })).toBe(0);
    expect(select(edge, 'reelcdn_edge_info')[0]!.labels).toMatchObject({ isp: 'isp-a', node: 'edge-a1', service: 'edge' });
    expect(sumOf(edge, 'reelcdn_edge_tier_capacity_bytes', { tier: 'disk' })).toBe(64 * 1024 * 1024);
    expect(sumOf(edge, 'reelcdn_edge_tier_bytes', { tier: 'disk' })).toBeGreaterThanOrEqual(expectedBytes);
    expect(select(edge, 'reelcdn_edge_fill_bytes', { state: 'total' })).toHaveLength(1);
    expect(select(edge, 'reelcdn_edge_fill_window_open')).toHaveLength(1);
    // Inside the window (02:00-06:00 by default, so the test runs either side of it) the next
    // start is now; outside it, later.
    const nextStart = sumOf(edge, 'reelcdn_edge_fill_next_window_start_seconds');
    if (sumOf(edge, 'reelcdn_edge_fill_window_open') === 1) expect(nextStart).toBeLessThanOrEqual(Date.now() / 1000 + 1);
    else expect(nextStart).toBeGreaterThan(Date.now() / 1000);

    // Origin: each file crossed it once.
    const origin = await scrape(cluster.config.origin.adminUrl, cluster.token);
    expect(sumOf(origin, 'reelcdn_origin_bytes_total', { class: 'media' })).toBe(expectedBytes);
    const oh = (await (await request(`${cluster.config.origin.adminUrl}/health`, { headers: { authorization: `Bearer ${cluster.token}` } })).body.json()) as {
      served: { bytes: number };
    };
    expect(oh.served.bytes).toBe(sumOf(origin, 'reelcdn_origin_bytes_total'));

    // Steering.
    const steering = await scrape(cluster.steeringAdminUrl, cluster.token);
    expect(sumOf(steering, 'reelcdn_steering_play_starts_total', { title: cluster.title, isp: 'isp-a' })).toBe(2);
    expect(sumOf(steering, 'reelcdn_steering_decisions_total', { kind: 'play', outcome: 'ok', isp: 'isp-a' })).toBe(2);
    expect(sumOf(steering, 'reelcdn_steering_edge_state', { edge: 'edge-a1', isp: 'isp-a' })).toBe(2);
    expect(sumOf(steering, 'reelcdn_steering_edge_health_reason', { edge: 'edge-a1', reason: 'ok' })).toBe(1);
    expect(sumOf(steering, 'reelcdn_steering_edge_health_reason', { edge: 'edge-a1' })).toBe(1);

    // Every number the dashboard shows for edge-a1 is in the edge's /metrics.
    await until('steering to see the 20 answers', async () => {
      const res = await request(`${cluster.steeringAdminUrl}/v1/dashboard`, { headers: { authorization: `Bearer ${cluster.token}` } });
      const d = (await res.body.json()) as { edges: { id: string; tiers: Record<string, { requests: number; bytes: number }> | null }[] };
      const t = d.edges.find((e) => e.id === 'edge-a1')!.tiers;
      if (!t || (t.MISS?.requests ?? 0) + (t['HIT-MEM']?.requests ?? 0) + (t['HIT-DISK']?.requests ?? 0) !== 20) return false;
      for (const tier of ['MISS', 'HIT-MEM', 'HIT-DISK']) {
        expect(t[tier]!.requests).toBe(sumOf(edge, 'reelcdn_edge_requests_total', { tier, status: '200' }));
        expect(t[tier]!.bytes).toBe(sumOf(edge, 'reelcdn_edge_response_bytes_total', { tier }));
      }
      return true;
    });
  });

  it('steering reports a dead edge as down, with the reason', async () => {
    await cluster.killEdge('edge-b1');
    await until('edge-b1 down in steering metrics', async () => {
      const s = await scrape(cluster.steeringAdminUrl, cluster.token);
      return sumOf(s, 'reelcdn_steering_edge_state', { edge: 'edge-b1' }) === 0;
    });
    const s = await scrape(cluster.steeringAdminUrl, cluster.token);
    expect(sumOf(s, 'reelcdn_steering_edge_health_reason', { edge: 'edge-b1', isp: 'isp-b', reason: 'poll_failed' })).toBe(1);
    expect(sumOf(s, 'reelcdn_steering_edge_health_reason', { edge: 'edge-b1' })).toBe(1);
  });
});

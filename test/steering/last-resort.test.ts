import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { until } from '../helpers/raw-socket.js';
import { steeringWorldForSuite } from '../steering-harness.js';

/**
 * The origin down makes every edge fail its misses: error ratios climb on every edge at once.
 * Taking them all out would turn an origin outage into a total one (a 503 for content the edges
 * hold), so edges down for their error ratio alone stay a last resort.
 */
describe('steering: edges down for their error ratio are a last resort', () => {
  const suite = steeringWorldForSuite();

  async function locate(): Promise<{ status: number; edges: string[] }> {
    const res = await request(`${suite.steering.publicUrl}/v1/locate/bbb-seg/seg_180p_003.m4s`);
    const text = await res.body.text();
    return { status: res.statusCode, edges: res.statusCode === 200 ? (JSON.parse(text).urls as { edge: string }[]).map((u) => u.edge) : [] };
  }

  const state = (id: string) => suite.steering.server.health.get(id)!.state;

  it('sends clients to healthy edges only while there are any, to the error-ratio ones when there are none', async () => {
    const { world, steering } = suite;
    await until(() => world.edges.every((e) => state(e.id) === 'up'), 'every edge up');
    for (const e of world.edges) {
      if (e.id === 'edge-b1') continue;
      e.errorRatio = 0.9;
      e.windowRequests = 200;
    }
    await until(() => world.edges.every((e) => state(e.id) === (e.id === 'edge-b1' ? 'up' : 'down')), 'all but edge-b1 down');
    expect(await locate()).toEqual({ status: 200, edges: ['edge-b1'] });

    // The last healthy edge goes too: the others are still answering, and hold what they hold.
    world.edges.find((e) => e.id === 'edge-b1')!.errorRatio = 0.9;
    world.edges.find((e) => e.id === 'edge-b1')!.windowRequests = 200;
    await until(() => state('edge-b1') === 'down', 'edge-b1 down');
    const all = await locate();
    expect(all.status).toBe(200);
    expect([...all.edges].sort()).toEqual(['edge-a1', 'edge-a2', 'edge-b1', 'edge-b2']);
    // Still the client's own ISP first.
    expect(all.edges.slice(0, 2).sort()).toEqual(['edge-a1', 'edge-a2']);

    // An edge that does not answer its polls is no last resort.
    const a1 = world.edges.find((e) => e.id === 'edge-a1')!;
    await a1.stop();
    await until(() => !(steering.server.health.get('edge-a1')!.lastResort ?? false), 'edge-a1 no last resort');
    expect((await locate()).edges).not.toContain('edge-a1');
  });
});

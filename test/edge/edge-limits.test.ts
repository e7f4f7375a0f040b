import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startEdge, type RunningEdge } from '../helpers/edge-harness.js';
import { testCluster } from '../helpers/cluster.js';
import { type RawClient, rawClient, until } from '../helpers/raw-socket.js';

const OPTIONS = 'OPTIONS /c/t/f.mp4 HTTP/1.1\r\nHost: x\r\n\r\n';

async function health(e: RunningEdge): Promise<{ statusCode: number; status: string; connections: number }> {
  const res = await request(`${e.adminUrl}/health`);
  const body = (await res.body.json()) as { status: string; connections: number };
  return { statusCode: res.statusCode, status: body.status, connections: body.connections };
}

/** Keeps this process's event loop busy for `ms` (the edge runs in-process, so its loop too). */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* spin */
  }
}

describe('edge: connection cap and overload', () => {
  let edge: RunningEdge | undefined;
  const clients: RawClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    await edge?.close();
    edge = undefined;
  });
  const open = async (url: string) => {
    const c = await rawClient(url);
    clients.push(c);
    return c;
  };

  it('itRefusesIdleSocketsPastTheCapWith503AndStillAnswersHealth', async () => {
    edge = await startEdge(testCluster({}, { http: { maxConnections: 4, retryAfterSec: 5 } }), 'http://127.0.0.1:1');
    const first = await Promise.all([0, 1, 2, 3].map(() => open(edge!.url)));
    await until(async () => (await health(edge!)).connections === 4, 'four open connections');
    const extra = await Promise.all([0, 1, 2].map(() => open(edge!.url)));
    for (const c of extra) {
      await c.waitFor(/too many connections\n$/);
      expect(c.text()).toMatch(/^HTTP\/1\.1 503 /);
      expect(c.text()).toMatch(/\r\nRetry-After: 5\r\n/i);
      expect(c.text()).toMatch(/\r\naccess-control-allow-origin: \*\r\n/i); // a player may read it
      await c.closedWithin();
    }
    const h = await health(edge);
    expect(h.statusCode).toBe(200);
    for (const c of first) {
      c.send(OPTIONS);
      await c.waitFor(/\r\n\r\n$/);
      expect(c.text()).toMatch(/^HTTP\/1\.1 204 /);
    }
  });

  it('itStaysOkOverASingleSlowMomentOfItsEventLoop', async () => {
    edge = await startEdge(testCluster(), 'http://127.0.0.1:1');
    expect((await health(edge)).status).toBe('ok');
    await new Promise((r) => setTimeout(r, 100));
    busy(300);
    await new Promise((r) => setTimeout(r, 50)); // the delay monitors record the block
    // Right after the block, and over the next samples: one slow moment is not overload.
    for (let i = 0; i < 4; i++) {
      const h = await health(edge);
      expect(h.statusCode).toBe(200);
      expect(h.status, `poll ${i}`).toBe('ok');
      await new Promise((r) => setTimeout(r, 300));
    }
    const res = await request(`${edge.url}/c/t/f.mp4`, { method: 'OPTIONS' });
    await res.body.dump();
    expect(res.statusCode).toBe(204);
  });

  it('itTurnsOverloadedOnASustainedDelaySheds503AndRecovers', async () => {
    edge = await startEdge(testCluster({}, { http: { maxEventLoopDelayMs: 100, overloadSamples: 2, retryAfterSec: 3 } }), 'http://127.0.0.1:1');
    // Blocked in 300 ms bursts for 2 s: every 500 ms sample is over the 100 ms budget.
    const end = performance.now() + 2000;
    while (performance.now() < end) {
      busy(300);
      await new Promise((r) => setTimeout(r, 5));
    }
    const h = await health(edge);
    expect(h.statusCode).toBe(200); // the admin port keeps answering
    expect(h.status).toBe('overloaded');
    const shed = await request(`${edge.url}/c/t/f.mp4`, { method: 'OPTIONS' });
    await shed.body.dump();
    expect(shed.statusCode).toBe(503);
    expect(shed.headers['retry-after']).toBe('3');
    // Back to ok after two good samples in a row (waits out a busy machine rather than timing it).
    await until(async () => (await health(edge!)).status === 'ok', 'the edge to be ok again', 15_000);
    const res = await request(`${edge.url}/c/t/f.mp4`, { method: 'OPTIONS' });
    await res.body.dump();
    expect(res.statusCode).toBe(204);
  }, 30_000);
});

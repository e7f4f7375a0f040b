import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestOrigin } from './helpers/test-origin.js';
import { randomTitle, tempDir, testCluster, writeMedia } from './helpers/cluster.js';
import { startEdge, type RunningEdge } from './helpers/edge-harness.js';

describe('edge smoke', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  let edge: RunningEdge;
  const title = randomTitle();
  let data: Buffer;

  beforeAll(async () => {
    data = writeMedia(root, title, 'video.mp4', 5 * 1024 * 1024 + 123);
    await origin.start();
    edge = await startEdge(testCluster(), origin.url);
  });
  afterAll(async () => {
    await edge.close();
    await origin.close();
  });

  it('servesMissThenDiskThenMemory', async () => {
    const range = { range: 'bytes=100-3000000' };
    const a = await edge.get(title, 'video.mp4', range);
    expect(a.status).toBe(206);
    expect(a.headers['x-cache']).toBe('MISS');
    expect(a.body.equals(data.subarray(100, 3000001))).toBe(true);
    await edge.idle();
    const b = await edge.get(title, 'video.mp4', range);
    expect(b.headers['x-cache']).toBe('HIT-DISK');
    expect(b.body.equals(data.subarray(100, 3000001))).toBe(true);
    const c = await edge.get(title, 'video.mp4', range);
    expect(c.headers['x-cache']).toBe('HIT-MEM');
    expect(c.body.equals(data.subarray(100, 3000001))).toBe(true);
    const whole = await edge.get(title, 'video.mp4');
    expect(whole.status).toBe(200);
    expect(whole.body.equals(data)).toBe(true);
  });
});

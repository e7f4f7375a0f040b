import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomTitle, tempDir, testCluster, writeMedia } from '../helpers/cluster.js';
import { type RunningEdge, startEdge } from '../helpers/edge-harness.js';
import { TestOrigin } from '../helpers/test-origin.js';

describe('cold misses and the upstream connection', () => {
  const root = tempDir();
  const origin = new TestOrigin(root);
  let edge: RunningEdge;

  beforeAll(async () => {
    await origin.start();
    edge = await startEdge(testCluster({ sliceBytes: 64 * 1024 }), origin.url);
  });
  afterAll(async () => {
    await edge.close();
    await origin.close();
  });

  it('reuses one kept-alive connection for slice after slice (a slice read whole is not an aborted request)', async () => {
    const title = randomTitle();
    const files = Array.from({ length: 20 }, (_, i) => ({ name: `f${i}.ts`, data: writeMedia(root, title, `f${i}.ts`, 64 * 1024 * 2 - i, i + 1) }));
    const before = origin.connections;
    for (const f of files) {
      const a = await edge.get(title, f.name);
      expect(a.status).toBe(200);
      expect(a.body.equals(f.data)).toBe(true);
      await edge.idle();
    }
    // 40 slice fetches, one after the other: one connection (two, if one closed on a timeout).
    expect(origin.requests.filter((r) => r.path.startsWith(`/o/${title}/`)).length).toBe(40);
    expect(origin.connections - before).toBeLessThanOrEqual(2);
  });
});

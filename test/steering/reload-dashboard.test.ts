import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import type { ClusterConfig } from '../../src/common/config.js';
import { deadPort } from '../helpers/http-tools.js';
import { until } from '../helpers/role-proc.js';
import { TOKEN, steeringWorld } from '../steering-harness.js';

interface OriginView {
  reachable: boolean;
  polledAt?: number;
  error?: string;
}

describe('the dashboard across a steering reload', () => {
  it('keepsPollingTheOriginAdminUrlSteeringStartedWithSinceAReloadReportsItAsNeedingARestart', async () => {
    const world = await steeringWorld();
    try {
      const { server, adminUrl } = await world.start();
      const origin = async () => {
        const res = await request(`${adminUrl}/v1/dashboard`, { headers: { authorization: `Bearer ${TOKEN}` } });
        return ((await res.body.json()) as { origin: OriginView }).origin;
      };
      await until('the dashboard reached the origin', async () => ((await origin()).reachable ? true : undefined));

      // The origin's admin port "moved" to where nothing listens.
      const next: ClusterConfig = { ...world.config, origin: { ...world.config.origin, adminUrl: `http://127.0.0.1:${await deadPort()}` } };
      const outcome = await server.reload(next);
      expect(outcome.needsRestart).toContain('origin.adminUrl');

      // Two polls later (the catalog and play reports still go to the old URL, and so does the dashboard).
      const first = (await origin()).polledAt!;
      const second = await until('a poll after the reload', async () => {
        const o = await origin();
        return o.polledAt! > first ? o.polledAt! : undefined;
      });
      const third = await until('another poll', async () => {
        const o = await origin();
        return o.polledAt! > second ? o : undefined;
      });
      expect(third).toMatchObject({ reachable: true });
    } finally {
      await world.close();
    }
  });
});

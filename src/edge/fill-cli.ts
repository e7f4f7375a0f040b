import { Agent, request } from 'undici';
import { adminTokenFromEnv } from '../common/admin-auth.js';
import { systemClock } from '../common/clock.js';
import type { ClusterConfig, EdgeConfig } from '../common/config.js';
import { edgeField } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { clusterClientTls, connectFor, loadServiceTls } from '../common/tls.js';
import { DiskTier } from './disk-tier.js';
import { FillAgent, type FillProgress } from './fill-agent.js';

/**
 * `reelcdn fill --config FILE --id EDGE_ID --now`: asks the running node to fill now and waits;
 * if the node is not running, fills its data folder directly (the node picks it up at start).
 */
export async function runFillNow(config: ClusterConfig, edge: EdgeConfig): Promise<void> {
  const token = adminTokenFromEnv();
  // The node's own certificate: this command runs beside it, as it, and may fill in its place.
  const clientTls = clusterClientTls(config, loadServiceTls(edge, edgeField(config, edge.id)).identity);
  const dispatcher = new Agent({ connect: connectFor(clientTls, 10_000) });
  let progress: FillProgress;
  try {
    const res = await request(`${edge.adminUrl}/fill?wait=1`, {
      method: 'POST',
      dispatcher,
      headers: { authorization: `Bearer ${token ?? ''}` },
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw Object.assign(new Error(`edge ${edge.id} answered ${res.statusCode}: ${text.trim()}`), { userFacing: true });
    progress = JSON.parse(text) as FillProgress;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== 'ECONNREFUSED') throw err;
    process.stderr.write(`edge ${edge.id} is not running; filling ${edge.dataDir} directly\n`);
    const logger = createLogger('fill', config.log.level, edge.id);
    const disk = new DiskTier({ dir: edge.dataDir, capacityBytes: edge.diskBytes, sliceBytes: edge.sliceBytes, logger });
    await disk.open();
    const agent = new FillAgent({ config, edge, disk, clock: systemClock, logger, adminToken: token, tls: clientTls });
    await agent.open();
    try {
      progress = await agent.runOnce({ force: true });
    } finally {
      await agent.stop();
    }
  } finally {
    await dispatcher.close();
  }
  process.stdout.write(
    `fill of ${edge.id}: ${progress.files.done}/${progress.files.total} files, ` +
      `${progress.bytes.fetched} bytes fetched (${JSON.stringify(progress.bySource)}), ${progress.files.failed} failed\n`,
  );
  for (const e of progress.errors) process.stdout.write(`  error: ${e}\n`);
  if (progress.files.failed > 0) process.exitCode = 1;
}

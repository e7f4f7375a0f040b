import { Agent, request } from 'undici';
import { adminTokenFromEnv } from '../common/admin-auth.js';
import { systemClock } from '../common/clock.js';
import type { ClusterConfig, EdgeConfig } from '../common/config.js';
import { edgeField } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { clusterClientTls, connectFor, loadServiceTls } from '../common/tls.js';
import { formatBytes } from '../common/format-bytes.js';
import { DiskTier } from './disk-tier.js';
import { FillAgent, type FillProgress } from './fill-agent.js';

/** How often a running fill's progress is read (and printed when it moved). */
const PROGRESS_EVERY_MS = 1000;

/**
 * `reelcdn fill --config FILE --id EDGE_ID --now`: asks the running node to fill now and waits,
 * printing a progress line whenever files or bytes moved; if the node is not running, fills its
 * data folder directly (the node picks it up at start).
 */
export async function runFillNow(config: ClusterConfig, edge: EdgeConfig): Promise<void> {
  const token = adminTokenFromEnv();
  // The node's own certificate: this command runs beside it, as it, and may fill in its place.
  const clientTls = clusterClientTls(config, loadServiceTls(edge, edgeField(config, edge.id)).identity);
  const dispatcher = new Agent({ connect: connectFor(clientTls, 10_000) });
  let progress: FillProgress;
  const printer = progressPrinter(edge.id);
  // The pass answers when it ends; meanwhile its progress is read every second and printed as it moves.
  const watch = setInterval(() => {
    request(`${edge.adminUrl}/fill`, { dispatcher, headers: { authorization: `Bearer ${token ?? ''}` }, headersTimeout: 5000, bodyTimeout: 5000 })
      .then(async (res) => (res.statusCode === 200 ? printer((await res.body.json()) as FillProgress) : res.body.dump()))
      .catch(() => undefined);
  }, PROGRESS_EVERY_MS);
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
    clearInterval(watch);
    const code = (err as { code?: string }).code;
    if (code !== 'ECONNREFUSED') throw err;
    process.stderr.write(`edge ${edge.id} is not running; filling ${edge.dataDir} directly\n`);
    const logger = createLogger('fill', config.log.level, edge.id);
    const disk = new DiskTier({ dir: edge.dataDir, capacityBytes: edge.diskBytes, sliceBytes: edge.sliceBytes, logger });
    await disk.open();
    const agent = new FillAgent({ config, edge, disk, clock: systemClock, logger, adminToken: token, tls: clientTls });
    await agent.open();
    const local = setInterval(() => printer(agent.progress()), PROGRESS_EVERY_MS);
    try {
      progress = await agent.runOnce({ force: true });
    } finally {
      clearInterval(local);
      await agent.stop();
    }
  } finally {
    clearInterval(watch);
    await dispatcher.close();
  }
  process.stdout.write(
    `fill of ${edge.id}: ${progress.files.done}/${progress.files.total} files, ` +
      `${progress.bytes.fetched} bytes fetched (${JSON.stringify(progress.bySource)}), ${progress.files.failed} failed\n`,
  );
  for (const e of progress.errors) process.stdout.write(`  error: ${e}\n`);
  if (progress.files.failed > 0) process.exitCode = 1;
}

/** `fill of edge-a1: 3/12 files, 4.5 MiB of 20.0 MiB (22%), 1.2 MiB/s`, with failures when there are. Pure. */
export function progressLine(edgeId: string, p: FillProgress): string {
  const pct = p.bytes.total > 0 ? ` (${Math.floor((p.bytes.done / p.bytes.total) * 100)}%)` : '';
  const failed = p.files.failed > 0 ? `, ${p.files.failed} failed` : '';
  return `fill of ${edgeId}: ${p.files.done}/${p.files.total} files, ${formatBytes(p.bytes.done)} of ${formatBytes(p.bytes.total)}${pct}, ${formatBytes(p.rateBytesPerSec)}/s${failed}\n`;
}

/** Prints a pass's progress when files or bytes moved since the last line (not the pass before it). */
function progressPrinter(edgeId: string, out: (s: string) => void = (s) => process.stdout.write(s)): (p: FillProgress) => void {
  let last = '';
  return (p) => {
    if (p.state !== 'filling') return;
    const key = `${p.startedAt}|${p.files.done}|${p.files.failed}|${p.bytes.done}`;
    if (key === last) return;
    last = key;
    out(progressLine(edgeId, p));
  };
}

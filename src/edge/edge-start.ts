import type { FastifyInstance } from 'fastify';
import { listenAddress } from '../common/config.js';
import type { EdgeContext } from './edge-context.js';
import type { EdgeParts } from './edge-parts.js';
import type { ServeReporter } from './serve-report.js';

/**
 * Opens the disk tier and listens; resolves with the bound URLs. A node's worker listens on the
 * public port alone: the admin port and the fill are its primary's.
 */
export async function startEdge(
  ctx: EdgeContext,
  parts: EdgeParts,
  apps: { publicApp: FastifyInstance; adminApp: FastifyInstance },
  reporter: ServeReporter,
): Promise<{ publicUrl: string; adminUrl: string }> {
  const { opts, edge, logger } = ctx;
  const { disk, cache, fill, upstream } = parts;
  const { publicApp, adminApp } = apps;
  await disk.open();
  cache.loadFromDisk();
  if ((opts.serveReportMs ?? 60_000) > 0) reporter.start();
  const pub = opts.listen?.public ?? listenAddress(edge.url);
  if (opts.worker) {
    // Each worker binds the port itself (SO_REUSEPORT): the kernel spreads connections and
    // the primary never holds one (docs/architecture.md says why).
    const publicUrl = await publicApp.listen({ host: pub.host, port: pub.port, reusePort: true } as { host: string; port: number });
    logger.info({ publicUrl, upstream: upstream.target.url }, 'edge worker listening');
    return { publicUrl, adminUrl: '' };
  }
  await fill.open();
  if (opts.autoFill ?? true) fill.start();
  const adm = opts.listen?.admin ?? listenAddress(edge.adminUrl);
  const publicUrl = await publicApp.listen({ host: pub.host, port: pub.port });
  const adminUrl = await adminApp.listen({ host: adm.host, port: adm.port });
  logger.info({ publicUrl, adminUrl, upstream: upstream.target.url }, 'edge listening');
  return { publicUrl, adminUrl };
}

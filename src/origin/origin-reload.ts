import type { FastifyInstance } from 'fastify';
import { setOpenAdminPaths } from '../common/admin-auth.js';
import type { ClusterConfig } from '../common/config.js';
import { listenerServer } from '../common/http-app.js';
import { sameTlsMaterial, swapCertificateIfChanged } from '../common/listener-server.js';
import { type ReloadOutcome, changedFields } from '../common/reload.js';
import { loadServiceTls } from '../common/tls.js';
import type { FillPlans } from './fill-plans.js';
import type { OriginAuth } from './origin-auth.js';
import type { OriginContext } from './origin-context.js';

/** The running parts a reloaded cluster file changes. */
export interface ReloadTargets {
  publicApp: FastifyInstance;
  adminApp: FastifyInstance;
  auth: OriginAuth;
  plans: FillPlans;
  /** The admin port's open paths, as its guard reads them. */
  openAdminPaths: Set<string>;
}

/**
 * Takes a reloaded cluster file (src/common/reload.ts): the certificates are read and checked
 * first — a ConfigError then, and nothing changed — then keys, certificates, the edges and fill
 * settings the plans are made for, the admin port's open paths, the log level.
 */
export function reloadOrigin(ctx: OriginContext, parts: ReloadTargets, next: ClusterConfig): ReloadOutcome {
  const { boot, state, logger } = ctx;
  // Everything that can refuse the file, before anything changes.
  const nextTls = loadServiceTls(next.origin, 'origin');
  const needsRestart = changedFields(boot, next, {
    'origin.url': (c) => c.origin.url,
    'origin.adminUrl': (c) => c.origin.adminUrl,
    'origin.dataDir': (c) => c.origin.dataDir,
    'origin.storage': (c) => c.origin.storage ?? { kind: 'dir' },
    // A listener option (requestCert), not a secure context's.
    'origin.tls.requireClientCert': (c) => c.origin.tls?.requireClientCert ?? false,
    http: (c) => c.http,
  });
  const applied = changedFields(state.cluster, next, {
    signing: (c) => c.signing,
    'origin.tls': (c) => c.origin.tls,
    'origin.adminTls': (c) => c.origin.adminTls,
    'origin.fill': (c) => c.origin.fill,
    // The fill plans: which edges get a manifest, with what disk, and the titles each ISP pins.
    edges: (c) => c.edges.map((e) => ({ id: e.id, isp: e.isp, url: e.url, diskBytes: e.diskBytes })),
    isps: (c) => c.isps.map((i) => ({ id: i.id, pinnedTitles: i.pinnedTitles })),
    admin: (c) => c.admin,
    'log.level': (c) => c.log.level,
  });
  const note = (list: string[], f: string) => {
    if (!list.includes(f)) list.push(f);
  };
  const publicServer = listenerServer(parts.publicApp);
  const adminServer = listenerServer(parts.adminApp);
  // Certificates, re-issued in place or at a new path, count by their bytes.
  const publicChanged = !sameTlsMaterial(publicServer.tlsMaterial, nextTls.public);
  // Under a listener that asks for client certificates, a context without the CA would refuse
  // every edge: the public certificate waits for the restart requireClientCert waits for.
  const publicNext = needsRestart.includes('origin.tls.requireClientCert') ? undefined : nextTls.public;
  if (publicNext === undefined) {
    const i = applied.indexOf('origin.tls');
    if (i >= 0) applied.splice(i, 1);
    if (i >= 0 || publicChanged) note(needsRestart, 'origin.tls');
  } else if (publicChanged) note(applied, 'origin.tls');
  if (!sameTlsMaterial(adminServer.tlsMaterial, nextTls.admin)) note(applied, 'origin.adminTls');
  // Manifests keep naming the origin's URL as it listens, until a restart.
  const planned: ClusterConfig = { ...next, origin: { ...next.origin, url: boot.origin.url } };

  // ---- the swap: nothing below reads a file or throws ----
  if (applied.includes('signing')) parts.auth.setSigning(next.signing);
  // New connections get the new certificates, open ones keep theirs.
  swapCertificateIfChanged(publicServer, publicNext);
  swapCertificateIfChanged(adminServer, nextTls.admin);
  parts.plans.reconfigure(planned);
  if (applied.includes('admin')) setOpenAdminPaths(parts.openAdminPaths, next.admin);
  if (applied.includes('log.level')) logger.level = next.log.level;
  state.cluster = next;
  return { applied, needsRestart };
}

import type { FastifyInstance } from 'fastify';
import { setOpenAdminPaths } from '../common/admin-auth.js';
import { listenerServer } from '../common/http-app.js';
import { swapCertificateIfChanged } from '../common/listener-server.js';
import type { Logger } from '../common/logger.js';
import type { ClientTls } from '../common/tls.js';
import type { TokenVerifier } from '../common/signing.js';
import type { FillAgent } from './fill-agent.js';
import type { PreparedEdgeReload } from './reload-plan.js';
import type { Upstream } from './upstream.js';

/**
 * Applying a prepared edge reload (reload-plan.ts prepared it: every file read, everything that
 * can refuse it checked). Nothing here reads a file or throws, so an edge never runs half of a
 * file. It comes in two shares: the answers' (every process serving the public port: a single
 * edge, each worker of a node) and the node's (the process holding the admin port and the fill:
 * a single edge, a node's primary).
 */

/** What a process answering on the public port swaps. */
export interface AnswerParts {
  publicApp: FastifyInstance;
  /** Read per request: whether a token is required. */
  signing: { required: boolean };
  tokens: TokenVerifier;
  upstream: Upstream;
  logger: Logger;
}

export function applyAnswerShare(p: PreparedEdgeReload, a: AnswerParts): void {
  if (p.applied.includes('signing')) {
    a.signing.required = p.config.signing.required;
    // The hit path's remembered URLs go with the old keys (TokenVerifier.generation).
    a.tokens.setKeys(p.config.signing.keys);
    a.upstream.setSigning(p.config.signing);
  }
  // New connections get the new certificate; open ones keep theirs.
  swapCertificateIfChanged(listenerServer(a.publicApp), p.tls.public);
  // Trust and identity toward the origin, parent and peers: new connections only.
  if (p.clientTlsChanged) a.upstream.setTls(p.clientTls);
  if (p.applied.includes('log.level')) a.logger.level = p.config.log.level;
}

/** What the process holding the admin port and the fill swaps. */
export interface NodeParts {
  adminApp: FastifyInstance;
  fill: FillAgent;
  /** The admin guard's open paths. */
  openPaths: Set<string>;
  logger: Logger;
}

/** `clientTls`: what the fill fetches with now (kept, and its pool with it, unless the reload changed it). */
export function applyNodeShare(p: PreparedEdgeReload, n: NodeParts, clientTls: ClientTls | undefined): void {
  swapCertificateIfChanged(listenerServer(n.adminApp), p.tls.admin);
  // Restart-only fields (dataDir, sliceBytes, …) are as they were in p.edge; the window parsed already.
  n.fill.reconfigure(p.config, p.edge, p.clientTlsChanged ? p.clientTls : clientTls);
  if (p.applied.includes('admin')) setOpenAdminPaths(n.openPaths, p.config.admin);
  if (p.applied.includes('log.level')) n.logger.level = p.config.log.level;
}

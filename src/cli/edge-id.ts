import { ConfigError, type ClusterConfig, type EdgeConfig } from '../common/config.js';

/** An edge id and where it came from, or why there is none. */
export type EdgeIdChoice = { ok: true; id: string; source: string } | { ok: false; problem: string };

/**
 * Which of the cluster file's edges this process is, and where that came from (for the error
 * when it is not one): `--id`, else `--id-from-hostname`, else REELCDN_EDGE_ID. In a Kubernetes
 * StatefulSet the pod's name is the natural id — stable across restarts and reschedules, one
 * volume claim per name — and the pod sees it as its hostname or through the downward API
 * (`fieldRef: metadata.name` into REELCDN_EDGE_ID). Pure: the environment and hostname come in.
 */
export function chooseEdgeId(values: { id?: unknown; 'id-from-hostname'?: unknown }, env: NodeJS.ProcessEnv, hostname: string): EdgeIdChoice {
  const flag = typeof values.id === 'string' && values.id !== '' ? values.id : undefined;
  if (flag !== undefined && values['id-from-hostname'] === true) return { ok: false, problem: 'takes --id or --id-from-hostname, not both' };
  if (flag !== undefined) return { ok: true, id: flag, source: '--id' };
  if (values['id-from-hostname'] === true) {
    // A pod with setHostnameAsFQDN sees pod.service.namespace.svc…: the pod's name is the first label.
    const label = hostname.split('.')[0] ?? '';
    if (label === '') return { ok: false, problem: '--id-from-hostname: this machine has no hostname' };
    return { ok: true, id: label, source: `--id-from-hostname (hostname "${hostname}")` };
  }
  const fromEnv = env.REELCDN_EDGE_ID;
  if (fromEnv !== undefined && fromEnv !== '') return { ok: true, id: fromEnv, source: 'REELCDN_EDGE_ID' };
  return { ok: false, problem: 'needs --id EDGE_ID (or --id-from-hostname, or REELCDN_EDGE_ID in the environment)' };
}

/** The edge `id` names, or a ConfigError naming where the id came from and the ids there are. */
export function findEdgeBy(config: ClusterConfig, id: string, source: string): EdgeConfig {
  const edge = config.edges.find((e) => e.id === id);
  if (!edge) throw new ConfigError(source, `"${id}" is not an edge in the cluster file (${config.edges.map((e) => e.id).join(', ')})`);
  return edge;
}

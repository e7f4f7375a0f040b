import { Agent, request } from 'undici';
import { adminTokenFromEnv } from './admin-auth.js';
import { type ClusterConfig, findEdge } from './config.js';
import { clusterClientTls, connectFor } from './tls.js';

/**
 * `reelcdn reload --config FILE (--role origin|steering|edge [--id EDGE_ID] | --all)`: asks
 * running processes to reload (POST /reload on their admin ports, with REELCDN_ADMIN_TOKEN) and
 * prints what each made of it. Unlike `kill -HUP` (systemd's ExecReload), a refusal reaches the
 * operator: the process's 422 `<field>: <problem>` is printed and the command exits non-zero.
 */

export type ReloadRole = 'origin' | 'steering' | 'edge';

/** Which processes to ask: one role (an edge by id, or every edge), or the whole cluster. */
export interface ReloadSelection {
  role?: string;
  id?: string;
  all?: boolean;
}

export interface ReloadTarget {
  /** `origin`, `steering`, or the edge's id. */
  name: string;
  adminUrl: string;
}

/** A mistake in the command line (printed with the usage). */
export class ReloadUsageError extends Error {}

/**
 * The admin ports to ask, in the order a key rotation wants: edges first (they accept a new
 * key before anyone signs with it), then the origin, then steering.
 */
export function reloadTargets(config: ClusterConfig, sel: ReloadSelection): ReloadTarget[] {
  const edges = (ids?: string[]) => (ids ?? config.edges.map((e) => e.id)).map((id) => ({ name: id, adminUrl: findEdge(config, id).adminUrl }));
  if (sel.all) {
    if (sel.role !== undefined || sel.id !== undefined) throw new ReloadUsageError('reload takes --all or --role, not both');
    return [...edges(), { name: 'origin', adminUrl: config.origin.adminUrl }, { name: 'steering', adminUrl: config.steering.adminUrl }];
  }
  switch (sel.role) {
    case 'origin':
    case 'steering':
      if (sel.id !== undefined) throw new ReloadUsageError(`--id is for --role edge`);
      return [{ name: sel.role, adminUrl: config[sel.role].adminUrl }];
    case 'edge':
      return edges(sel.id === undefined ? undefined : [sel.id]);
    case undefined:
      throw new ReloadUsageError('reload needs --role origin|steering|edge (with --id EDGE_ID for one edge) or --all');
    default:
      throw new ReloadUsageError(`--role must be origin, steering or edge, not "${sel.role}"`);
  }
}

/**
 * Asks each target in turn and prints one line per target. Stops at the first that does not
 * apply the file: the others would take what that one refused (steering signing with a key the
 * edges do not know). Resolves whether every target applied it.
 */
export async function runReload(config: ClusterConfig, targets: ReloadTarget[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<boolean> {
  const token = adminTokenFromEnv();
  const dispatcher = new Agent({ connect: connectFor(clusterClientTls(config), 5000) });
  try {
    for (const [i, t] of targets.entries()) {
      const line = await reloadOne(t, token, dispatcher);
      out(`${t.name} (${t.adminUrl}): ${line.text}\n`);
      if (!line.ok) {
        const rest = targets.slice(i + 1).map((x) => x.name);
        if (rest.length > 0) out(`not asked: ${rest.join(', ')}\n`);
        return false;
      }
    }
    return true;
  } finally {
    await dispatcher.close();
  }
}

async function reloadOne(t: ReloadTarget, token: string | undefined, dispatcher: Agent): Promise<{ ok: boolean; text: string }> {
  let res;
  try {
    // A node's primary waits for each worker's answer (10 s at most): room for that.
    res = await request(`${t.adminUrl}/reload`, { method: 'POST', dispatcher, headers: token ? { authorization: `Bearer ${token}` } : {}, headersTimeout: 30_000, bodyTimeout: 30_000 });
  } catch (err) {
    const e = err as Error & { code?: string };
    return { ok: false, text: `cannot be reached (${e.code ?? e.message})` };
  }
  const body = await res.body.text();
  let json: { applied?: string[]; needsRestart?: string[]; error?: string } = {};
  try {
    json = JSON.parse(body) as typeof json;
  } catch {
    // not JSON: said as it is below
  }
  if (res.statusCode === 200) {
    const applied = json.applied?.length ? `applied ${json.applied.join(', ')}` : 'nothing it uses changed';
    const restart = json.needsRestart?.length ? `; needs a restart for ${json.needsRestart.join(', ')}` : '';
    return { ok: true, text: `${applied}${restart}` };
  }
  if (res.statusCode === 401) return { ok: false, text: 'refused the admin token (HTTP 401): set REELCDN_ADMIN_TOKEN' };
  if (res.statusCode === 422) return { ok: false, text: `refused the file: ${json.error ?? body.trim()}; still running the previous one` };
  return { ok: false, text: `failed (HTTP ${res.statusCode}): ${json.error ?? body.trim()}` };
}

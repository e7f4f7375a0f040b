import { Agent, request } from 'undici';
import { adminTokenFromEnv } from '../common/admin-auth.js';
import type { ClusterConfig } from '../common/config.js';
import { clusterClientTls, connectFor } from '../common/tls.js';
import { type Explanation, formatExplanation } from './explain.js';

/**
 * `reelcdn explain --config FILE --ip A --title T [--xff X] [--json]`: asks the running
 * steering (GET /v1/explain on steering.adminUrl, with REELCDN_ADMIN_TOKEN) and prints its
 * answer. It never decides locally: an explanation is only true of the steering that acts on
 * it — its health view, loads and catalog — so an unreachable steering is an error saying so.
 */
export interface ExplainArgs {
  ip: string;
  title: string;
  xff?: string;
  json?: boolean;
}

/** A problem to print as one line (exit 1). */
export class ExplainCliError extends Error {
  readonly userFacing = true;
}

export async function runExplain(config: ClusterConfig, args: ExplainArgs, out: (s: string) => void = (s) => process.stdout.write(s)): Promise<void> {
  const q = new URLSearchParams({ ip: args.ip, title: args.title });
  if (args.xff !== undefined) q.set('xff', args.xff);
  const url = `${config.steering.adminUrl}/v1/explain?${q}`;
  const token = adminTokenFromEnv();
  const dispatcher = new Agent({ connect: connectFor(clusterClientTls(config), 5000) });
  try {
    let res;
    try {
      res = await request(url, { dispatcher, headers: token ? { authorization: `Bearer ${token}` } : {}, headersTimeout: 10_000, bodyTimeout: 10_000 });
    } catch (err) {
      const e = err as Error & { code?: string };
      throw new ExplainCliError(`steering's admin port ${config.steering.adminUrl} cannot be reached (${e.code ?? e.message}): explain asks the running steering, whose health view and loads it explains`);
    }
    const text = await res.body.text();
    if (res.statusCode === 401) throw new ExplainCliError(`steering refused the admin token (HTTP 401): set REELCDN_ADMIN_TOKEN`);
    if (res.statusCode !== 200) throw new ExplainCliError(`steering answered HTTP ${res.statusCode}: ${text.trim()}`);
    out(args.json ? `${JSON.stringify(JSON.parse(text), null, 2)}\n` : formatExplanation(JSON.parse(text) as Explanation));
  } finally {
    await dispatcher.close();
  }
}

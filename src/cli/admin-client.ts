import { Agent, request } from 'undici';
import { adminTokenFromEnv } from '../common/admin-auth.js';
import type { ClusterConfig } from '../common/config.js';
import { clusterClientTls, connectFor } from '../common/tls.js';
import { CliError } from './command.js';

/** One admin port's answer: its status and body (JSON when it was). */
export interface AdminAnswer {
  status: number;
  text: string;
  json: unknown;
}

/**
 * What the operator commands send to admin ports with: REELCDN_ADMIN_TOKEN as a bearer token,
 * the cluster file's CAs for https:// services (clusterClientTls), bounded timeouts.
 */
export class AdminClient {
  private readonly dispatcher: Agent;
  private readonly token: string | undefined;

  constructor(config: ClusterConfig, env: NodeJS.ProcessEnv = process.env) {
    this.token = adminTokenFromEnv(env);
    this.dispatcher = new Agent({ connect: connectFor(clusterClientTls(config), 5000) });
  }

  /**
   * GET (or POST `body` as JSON) `url`. A service that cannot be reached rejects with
   * `Unreachable`; every answer resolves, 401 included (callers say what it means to them).
   */
  async call(url: string, opts: { method?: 'GET' | 'POST'; body?: unknown; timeoutMs?: number } = {}): Promise<AdminAnswer> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const timeout = opts.timeoutMs ?? 10_000;
    let res;
    try {
      res = await request(url, {
        method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        dispatcher: this.dispatcher,
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
    } catch (err) {
      const e = err as Error & { code?: string };
      throw new Unreachable(url, e.code ?? e.message);
    }
    const text = await res.body.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, text, json };
  }

  close(): Promise<void> {
    return this.dispatcher.close();
  }
}

/** A service did not answer at all. */
export class Unreachable extends CliError {
  constructor(
    readonly url: string,
    readonly why: string,
  ) {
    super(`${new URL(url).origin} cannot be reached (${why})`);
  }
}

/** The one-line failure for an answer that is not the expected one (401: the token). */
export function refusal(who: string, a: AdminAnswer): CliError {
  if (a.status === 401) return new CliError(`${who} refused the admin token (HTTP 401): set REELCDN_ADMIN_TOKEN`);
  const said = a.json && typeof (a.json as { error?: unknown }).error === 'string' ? (a.json as { error: string }).error : a.text.trim();
  return new CliError(`${who} answered HTTP ${a.status}: ${said}`);
}

/** Runs `fn` with a client, closed after. */
export async function withAdminClient<T>(config: ClusterConfig, fn: (c: AdminClient) => Promise<T>): Promise<T> {
  const client = new AdminClient(config);
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

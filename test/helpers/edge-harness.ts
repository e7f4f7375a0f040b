import { request } from 'undici';
import type { ClusterConfig } from '../../src/common/config.js';
import { signQuery } from '../../src/common/signing.js';
import { createEdgeServer, type EdgeServer, type EdgeServerOptions } from '../../src/edge/server.js';
import { TEST_ADMIN_TOKEN } from './cluster.js';

export interface RunningEdge {
  server: EdgeServer;
  url: string;
  adminUrl: string;
  /** A signed path for /c/{title}/{file}. */
  signed(title: string, file: string): string;
  get(title: string, file: string, headers?: Record<string, string>, method?: 'GET' | 'HEAD'): Promise<EdgeAnswer>;
  /** `method` `pathAndQuery` as given (signed or not) on the public port. */
  send(pathAndQuery: string, headers?: Record<string, string>, method?: 'GET' | 'HEAD' | 'OPTIONS'): Promise<EdgeAnswer>;
  /** Requests fastify routed (its onRequest hook ran) on the public port so far: what the raw hit path answered is not among them. */
  routed(): number;
  /** Resolves once no slice fetch or disk write is in flight (background work after a response). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export interface EdgeAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Starts a real edge on 127.0.0.1:0 in front of `upstreamUrl`. */
export async function startEdge(config: ClusterConfig, upstreamUrl: string, extra: Partial<EdgeServerOptions> = {}): Promise<RunningEdge> {
  const edge = config.edges[0]!;
  const server = createEdgeServer({
    config,
    edge,
    upstreamUrl,
    adminToken: TEST_ADMIN_TOKEN,
    autoFill: false,
    listen: { public: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } },
    ...extra,
  });
  let routed = 0;
  server.publicApp.addHook('onRequest', async () => {
    routed++;
  });
  const { publicUrl, adminUrl } = await server.start();
  const signed = (title: string, file: string) => {
    const path = `/c/${title}/${file}`;
    return `${path}?${signQuery(config.signing.keys, config.signing.activeKey, path, Date.now() / 1000, 3600)}`;
  };
  const send = async (pathAndQuery: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' | 'OPTIONS' = 'GET'): Promise<EdgeAnswer> => {
    const res = await request(`${publicUrl}${pathAndQuery}`, { method, headers });
    const body = Buffer.from(await res.body.arrayBuffer());
    const flat: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : v;
    return { status: res.statusCode, headers: flat, body };
  };
  return {
    server,
    url: publicUrl,
    adminUrl,
    signed,
    get(title, file, headers = {}, method = 'GET') {
      return send(signed(title, file), headers, method);
    },
    send,
    routed: () => routed,
    async idle() {
      for (let i = 0; i < 500 && server.cache.inflight > 0; i++) await new Promise((r) => setTimeout(r, 10));
    },
    close: () => server.close(),
  };
}

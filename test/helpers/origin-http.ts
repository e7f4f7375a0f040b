import { request } from 'node:http';
import { ORIGIN_TOKEN_TTL_SECONDS } from '../../src/common/origin-signing.js';
import { signQuery } from '../../src/common/signing.js';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/**
 * One HTTP request with the path sent exactly as given (fetch would normalise `..` and
 * re-encode, which hides exactly the attacks the path tests are about).
 */
export function rawRequest(
  baseUrl: string,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<RawResponse> {
  const u = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * `path` (as it goes on the wire, with or without a query) with the token an edge puts on its
 * requests to the origin's /o/ appended, signed with `signing`'s active key (or `keyId`).
 */
export function signedForOrigin(
  signing: { keys: Record<string, string>; activeKey: string },
  path: string,
  opts: { nowSec?: number; keyId?: string; ttlSeconds?: number } = {},
): string {
  const q = path.indexOf('?');
  const bare = q < 0 ? path : path.slice(0, q);
  const token = signQuery(signing.keys, opts.keyId ?? signing.activeKey, bare, opts.nowSec ?? Date.now() / 1000, opts.ttlSeconds ?? ORIGIN_TOKEN_TTL_SECONDS);
  return q < 0 ? `${bare}?${token}` : `${path}&${token}`;
}

/** Splits a multipart/byteranges body into its parts (headers lower-cased). */
export function parseMultipart(contentType: string, body: Buffer): { headers: Record<string, string>; data: Buffer }[] {
  const m = /boundary=([^;]+)/.exec(contentType);
  if (!m) throw new Error(`no boundary in ${contentType}`);
  const delim = Buffer.from(`--${m[1]}`);
  const parts: { headers: Record<string, string>; data: Buffer }[] = [];
  let pos = body.indexOf(delim);
  for (;;) {
    const after = pos + delim.length;
    if (body.subarray(after, after + 2).toString() === '--') break;
    const headEnd = body.indexOf('\r\n\r\n', after);
    const headers: Record<string, string> = {};
    for (const line of body.subarray(after + 2, headEnd).toString().split('\r\n')) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delim]), headEnd + 4);
    parts.push({ headers, data: body.subarray(headEnd + 4, next) });
    pos = next + 2;
  }
  return parts;
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { CORS_HEADERS } from '../common/cors.js';
import { logAccess, requestId } from '../common/http-app.js';
import type { Logger } from '../common/logger.js';
import { type ParsedObjectPath, parseObjectPath } from '../common/paths.js';
import { TRACE_QUERY_PARAM, childTraceparent, requestTraceparent } from '../common/trace.js';

const PREFIX = '/v1/locate/';
const JSON_TYPE = 'application/json; charset=utf-8';
const CORS_FLAT: readonly string[] = Object.entries(CORS_HEADERS).flat();
/** Parsed request paths remembered (a player asks for the same few files of a title many times). */
const MAX_PATHS = 20_000;

/** Characters JSON.stringify escapes: quote, backslash, controls, and surrogates (alone they are escaped). */
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

/** `s` as JSON.stringify writes it, without the quotes. Titles and files (SEGMENT_RE) never need escaping. */
function jsonInner(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s).slice(1, -1) : s;
}

function jsonString(s: string): string {
  return `"${jsonInner(s)}"`;
}

/** `{"edge":ID,"url":"URL` of an edge (its URL continues with the path): once per edge object. */
const edgeHeads = new WeakMap<LocatableEdge, string>();
function edgeHead(e: LocatableEdge): string {
  let h = edgeHeads.get(e);
  if (h === undefined) {
    h = `{"edge":${jsonString(e.id)},"url":"${jsonInner(e.url)}`;
    edgeHeads.set(e, h);
  }
  return h;
}

/** What an answer needs of an edge. */
export interface LocatableEdge {
  id: string;
  url: string;
}

export interface LocatePathOptions<E extends LocatableEdge> {
  /** The ranking for this client and title now: the same decision the route makes (decideForClient). */
  decide(peer: string | undefined, forwardedFor: string | string[] | undefined, title: string): { isp: string | undefined; edges: readonly E[] };
  /** Whether the catalog holds the file now. A miss is the route's (it refreshes the catalog, then 404 or 503). */
  has(title: string, file: string): boolean;
  /** The token query of `/c/{title}/{file}`, signed this second. */
  signedQuery(title: string, file: string): string;
  /** Counts one answered decision, as the route counts it (outcome ok). */
  answered(isp: string | undefined): void;
  logger: Logger;
  /** Level of the access-log line: the public port's (`debug`). */
  logLevel: 'info' | 'debug';
}

/**
 * `GET /v1/locate/{title}/{file}` without the framework: a raw listener in front of fastify
 * (AppOptions.front), as the edge's hit path is. It claims only a request it answers 200 — a
 * well-formed path to a file the catalog holds, at least one edge offered — and leaves the rest
 * (HEAD, 400, 404, 503, a catalog refresh) to the route, which answers as it always did. What it
 * claims gets the route's answer byte for byte: the same decision (the caller's `decide`), the
 * same tokens, the same JSON, status and headers, the same counter and access-log line; what it
 * saves is the framework's routing, hooks and reply machinery, most of an answer's cost.
 */
export function createLocatePath<E extends LocatableEdge>(opts: LocatePathOptions<E>): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { logger, logLevel } = opts;
  const paths = new Map<string, ParsedObjectPath>();

  /** The title and file of a path after the prefix (parsed once per distinct path). */
  const parse = (rest: string): ParsedObjectPath => {
    let p = paths.get(rest);
    if (p === undefined) {
      p = parseObjectPath(rest);
      if (paths.size >= MAX_PATHS) paths.clear();
      paths.set(rest, p);
    }
    return p;
  };

  /** Token queries as JSON writes them, by the query itself (the same string all its second). */
  const escaped = new Map<string, string>();
  const signedInner = (query: string): string => {
    let e = escaped.get(query);
    if (e === undefined) {
      e = jsonInner(query);
      if (escaped.size >= MAX_PATHS) escaped.clear();
      escaped.set(query, e);
    }
    return e;
  };

  return (req, res) => {
    if (req.method !== 'GET') return false;
    const url = req.url!;
    if (!url.startsWith(PREFIX)) return false;
    const start = performance.now();
    const q = url.indexOf('?');
    const parsed = parse(q < 0 ? url.slice(PREFIX.length) : url.slice(PREFIX.length, q));
    if (!parsed.ok) return false;
    const { title, file } = parsed;
    if (!opts.has(title, file)) return false;
    const d = opts.decide(req.socket.remoteAddress, req.headers['x-forwarded-for'], title);
    if (d.edges.length === 0) return false;
    opts.answered(d.isp);
    const incoming = requestTraceparent(req.headers, url);
    const traceparent = childTraceparent(incoming);
    // JSON written by hand, as JSON.stringify writes it (the route's serializer): a third of the
    // cost. A traceparent is hex and dashes; a token query is checked once (it is signed once a second).
    const tail = `/c/${title}/${file}?${signedInner(opts.signedQuery(title, file))}&${TRACE_QUERY_PARAM}=${traceparent}"}`;
    let body = `{"title":"${title}","file":"${file}","isp":${d.isp === undefined ? 'null' : jsonString(d.isp)},"urls":[`;
    for (let i = 0; i < d.edges.length; i++) body += `${i === 0 ? '' : ','}${edgeHead(d.edges[i]!)}${tail}`;
    body += ']}';
    const length = Buffer.byteLength(body);
    // The route's headers, in its order: its own, the serializer's type, the CORS hook's, the length.
    res.writeHead(200, ['cache-control', 'no-store', 'traceparent', traceparent, 'content-type', JSON_TYPE, ...CORS_FLAT, 'content-length', String(length)] as unknown as string[]);
    res.end(body);
    if (logger.isLevelEnabled(logLevel)) {
      res.once('close', () =>
        logAccess(logger, logLevel, requestId(req), 'GET', url, req.headers.range, 200, undefined, length, performance.now() - start, req.socket.remoteAddress, incoming ?? traceparent),
      );
    }
    return true;
  };
}

import { Writable } from 'node:stream';
import { pino } from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childTraceparent, parseTraceparent, requestTraceparent, traceIdOf } from '../src/common/trace.js';
import { type OpsCluster, startOpsCluster } from './helpers/ops-cluster.js';

interface LogLine {
  service?: string;
  node?: string;
  msg: string;
  reqId?: string;
  path?: string;
  traceparent?: string;
  [k: string]: unknown;
}

const lines: LogLine[] = [];
const sink = new Writable({
  write(chunk, _enc, cb) {
    for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l) as LogLine);
    cb();
  },
});

let cluster: OpsCluster;
beforeAll(async () => {
  cluster = await startOpsCluster({ logger: pino({ level: 'debug' }, sink) });
}, 60_000);
afterAll(async () => cluster?.close());

const INCOMING = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

describe('traceparent values', () => {
  it('parses valid W3C traceparents and rejects the rest', () => {
    expect(parseTraceparent(INCOMING)).toBe(INCOMING);
    expect(parseTraceparent(INCOMING.toUpperCase())).toBe(INCOMING);
    for (const bad of ['', 'nope', `ff${INCOMING.slice(2)}`, '00-00000000000000000000000000000000-b7ad6b7169203331-01', '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01', `${INCOMING}-extra`, 42]) {
      expect(parseTraceparent(bad)).toBeUndefined();
    }
  });

  it('keeps the trace id and makes a new span id for a child; starts a trace without one', () => {
    const child = childTraceparent(INCOMING);
    expect(traceIdOf(child)).toBe(traceIdOf(INCOMING));
    expect(child).not.toBe(INCOMING);
    const fresh = childTraceparent(undefined);
    expect(parseTraceparent(fresh)).toBe(fresh);
    expect(traceIdOf(fresh)).not.toBe(traceIdOf(INCOMING));
  });

  it('takes the header first, else the tp query parameter', () => {
    const other = childTraceparent();
    expect(requestTraceparent({ traceparent: INCOMING }, `/c/t/f?tp=${other}`)).toBe(INCOMING);
    expect(requestTraceparent({}, `/c/t/f?e=1&tp=${other}`)).toBe(other);
    expect(requestTraceparent({}, '/c/t/f?tp=garbage')).toBeUndefined();
    expect(requestTraceparent({}, '/c/t/f')).toBeUndefined();
  });
});

describe('one play followed across steering → edge → origin', () => {
  it('logs the same trace id on every side', async () => {
    const play = await request(`${cluster.steeringUrl}/v1/play/${cluster.title}/manifest.mpd`, { headers: { traceparent: INCOMING } });
    const mpd = await play.body.text();
    expect(play.statusCode).toBe(200);
    const answered = String(play.headers.traceparent);
    expect(traceIdOf(answered)).toBe(traceIdOf(INCOMING));
    const edgeId = String(play.headers['x-steering-edge']);

    // The player drops response headers: the trace rides in the signed media URLs as `tp`.
    const m = /(init-[\w.-]+\.m4s)\?([^"<\s]+)/.exec(mpd);
    expect(m, 'a signed init segment URL in the MPD').not.toBeNull();
    const file = m![1]!;
    const query = m![2]!.replaceAll('&amp;', '&');
    expect(new URLSearchParams(query).get('tp')).toBe(answered);

    const edge = cluster.config.edges.find((e) => e.id === edgeId)!;
    const seg = await request(`${edge.url}/c/${cluster.title}/${file}?${query}`);
    await seg.body.dump();
    expect(seg.statusCode).toBe(200);
    expect(seg.headers['x-cache']).toBe('MISS');
    expect(seg.headers.traceparent).toBe(answered);

    const trace = traceIdOf(INCOMING);
    const withTrace = lines.filter((l) => typeof l.traceparent === 'string' && traceIdOf(l.traceparent) === trace);
    const steeringPlay = withTrace.find((l) => l.service === 'steering' && l.msg === 'play');
    const steeringReq = withTrace.find((l) => l.service === 'steering' && l.msg === 'request' && l.path === `/v1/play/${cluster.title}/manifest.mpd`);
    const edgeReq = withTrace.find((l) => l.service === 'edge' && l.node === edgeId && l.msg === 'request' && l.path === `/c/${cluster.title}/${file}`);
    const originReq = withTrace.find((l) => l.service === 'origin' && l.msg === 'request' && l.path === `/o/${cluster.title}/${file}`);
    expect(steeringPlay, 'steering play line').toMatchObject({ title: cluster.title, edge: edgeId });
    expect(steeringReq?.reqId, 'steering request line').toBeTruthy();
    expect(edgeReq?.reqId, 'edge request line').toBeTruthy();
    expect(originReq?.reqId, 'origin request line').toBeTruthy();
    // Request ids are per service hop; the trace id is what ties them.
    expect(new Set([steeringReq!.reqId, edgeReq!.reqId, originReq!.reqId]).size).toBe(3);
    // The request line logs the path only: no token, no tp in it.
    expect(edgeReq!.path).not.toContain('?');
  });

  it('tp is no part of the cache key nor of the signature', async () => {
    const play = await request(`${cluster.steeringUrl}/v1/locate/${cluster.title}/${cluster.files[0]}`);
    const body = (await play.body.json()) as { urls: { edge: string; url: string }[] };
    const first = new URL(body.urls[0]!.url);
    expect(first.searchParams.get('tp')).toBe(String(play.headers.traceparent));
    const get = async (u: URL) => {
      const r = await request(u.toString());
      await r.body.dump();
      return { status: r.statusCode, cache: String(r.headers['x-cache']) };
    };
    expect(await get(first)).toEqual({ status: 200, cache: 'MISS' });
    const other = new URL(first);
    other.searchParams.set('tp', childTraceparent());
    expect((await get(other)).cache).toMatch(/^HIT-/);
    const none = new URL(first);
    none.searchParams.delete('tp');
    expect((await get(none)).cache).toMatch(/^HIT-/);
  });
});

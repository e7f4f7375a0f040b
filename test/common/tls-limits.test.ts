import { readFileSync } from 'node:fs';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_HTTP_LIMITS } from '../../src/common/config.js';
import { createApp } from '../../src/common/http-app.js';
import { loadTlsMaterial } from '../../src/common/tls.js';
import { makeTestPki } from '../helpers/certs.js';
import { tempDir } from '../helpers/cluster.js';

const silent = pino({ level: 'silent' });
const pki = makeTestPki(tempDir(), ['svc']);
const tls = loadTlsMaterial({ ...pki.tls('svc'), requireClientCert: false }, 'svc.tls');
const ca = readFileSync(pki.caFile);

const apps: FastifyInstance[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const a of apps.splice(0)) await a.close();
});

async function serve(limits: Partial<typeof DEFAULT_HTTP_LIMITS>, opts: { http2?: boolean; plain?: boolean } = {}): Promise<{ app: FastifyInstance; url: string; port: number }> {
  const app = createApp({ logger: silent, limits: { ...DEFAULT_HTTP_LIMITS, ...limits }, ...(opts.plain ? {} : { tls, http2: opts.http2 }) });
  app.get('/hello', async () => 'hi\n');
  app.get('/slow', async () => {
    await new Promise((r) => setTimeout(r, 600));
    return 'done\n';
  });
  apps.push(app);
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url, port: Number(new URL(url).port) };
}

const closed = (s: Socket) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));

function h2get(s: ClientHttp2Session, path = '/hello'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const st = s.request({ ':path': path });
    let status = 0;
    let body = '';
    st.on('response', (h) => (status = Number(h[':status'])));
    st.on('data', (c) => (body += c));
    st.on('end', () => resolve({ status, body }));
    st.on('error', reject);
    st.end();
  });
}

describe('connection limits over TLS', () => {
  it('counts sockets still in their handshake against the cap, and closes them after headersTimeout', async () => {
    const { port } = await serve({ maxConnections: 2, headersTimeoutMs: 500, requestTimeoutMs: 1000 }, { http2: true });
    const connect = async () => {
      const s = netConnect(port, '127.0.0.1');
      s.on('error', () => {});
      sockets.push(s);
      await new Promise((r) => s.once('connect', r));
      return s;
    };
    // Two that never send a ClientHello fill the cap; a third is closed at once, before any handshake.
    const [a, b] = [await connect(), await connect()];
    const third = await connect();
    const t0 = performance.now();
    await closed(third);
    expect(performance.now() - t0).toBeLessThan(400);
    // The two are closed by the handshake timeout, not kept for node's default two minutes.
    await Promise.all([closed(a), closed(b)]);
    expect(performance.now() - t0).toBeLessThan(3000);
  });

  for (const http2 of [false, true]) {
    for (const alpn of http2 ? ['http/1.1', 'h2'] : ['http/1.1']) {
      it(`closes a ${alpn} connection that sends no request within headersTimeout of its handshake (h2 server: ${http2})`, async () => {
        const { port } = await serve({ headersTimeoutMs: 500, requestTimeoutMs: 1000, keepAliveTimeoutMs: 60_000 }, { http2 });
        const s = tlsConnect({ host: '127.0.0.1', port, ca, ALPNProtocols: [alpn] });
        s.on('error', () => {});
        s.resume(); // an h2 server speaks first (SETTINGS): the close is seen once that is read
        sockets.push(s);
        await new Promise((r) => s.once('secureConnect', r));
        const t0 = performance.now();
        await closed(s);
        const ms = performance.now() - t0;
        expect(ms).toBeGreaterThan(300);
        expect(ms).toBeLessThan(3000);
      });
    }

    it(`cuts an HTTP/1.1 client trickling its headers over TLS (h2 server: ${http2})`, async () => {
      const { port } = await serve({ headersTimeoutMs: 500, requestTimeoutMs: 1000 }, { http2 });
      const s = tlsConnect({ host: '127.0.0.1', port, ca, ALPNProtocols: ['http/1.1'] });
      s.on('error', () => {});
      sockets.push(s);
      await new Promise((r) => s.once('secureConnect', r));
      s.write('GET /hello HTTP/1.1\r\nHost: x\r\n');
      const trickle = setInterval(() => !s.destroyed && s.write('X-Slow: y\r\n'), 100);
      const t0 = performance.now();
      await closed(s);
      clearInterval(trickle);
      expect(performance.now() - t0).toBeLessThan(3000);
    });
  }

  it('sheds an idle HTTP/2 session at the cap to admit a newcomer, as it does an idle keep-alive', async () => {
    const { url } = await serve({ maxConnections: 2 }, { http2: true });
    const s1 = h2connect(url, { ca });
    const s2 = h2connect(url, { ca });
    for (const s of [s1, s2]) s.on('error', () => {});
    expect((await h2get(s1)).status).toBe(200);
    expect((await h2get(s2)).status).toBe(200);
    const s3 = h2connect(url, { ca });
    s3.on('error', () => {});
    try {
      expect((await h2get(s3)).status).toBe(200);
      // The one idle the longest made room.
      await new Promise((r) => setTimeout(r, 50));
      expect(s1.destroyed || s1.closed).toBe(true);
    } finally {
      for (const s of [s1, s2, s3]) s.destroy();
    }
  });
});

describe('drain', () => {
  for (const variant of [
    { name: 'HTTPS', http2: false },
    { name: 'HTTPS with HTTP/2 and HTTP/1.1', http2: true },
    { name: 'plain HTTP', plain: true },
  ]) {
    it(`closes promptly with a keep-alive request in flight, and the answer completes: ${variant.name}`, async () => {
      const { app, url } = await serve({ keepAliveTimeoutMs: 20_000 }, variant);
      const agent = new Agent({ connect: { ca }, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000 });
      try {
        await (await request(`${url}/hello`, { dispatcher: agent })).body.text();
        const slow = request(`${url}/slow`, { dispatcher: agent }).then((r) => r.body.text());
        await new Promise((r) => setTimeout(r, 150));
        const t0 = performance.now();
        await app.close();
        expect(performance.now() - t0).toBeLessThan(3000);
        expect(await slow).toBe('done\n');
      } finally {
        await agent.destroy();
      }
    });
  }

  it('closes promptly with an HTTP/2 stream in flight, and the answer completes', async () => {
    const { app, url } = await serve({ keepAliveTimeoutMs: 20_000 }, { http2: true });
    const s = h2connect(url, { ca });
    s.on('error', () => {});
    try {
      const answer = h2get(s, '/slow');
      await new Promise((r) => setTimeout(r, 150));
      const t0 = performance.now();
      await app.close();
      expect(performance.now() - t0).toBeLessThan(3000);
      expect(await answer).toEqual({ status: 200, body: 'done\n' });
    } finally {
      s.destroy();
    }
  });
});

import { pino } from 'pino';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_HTTP_LIMITS } from '../../src/common/config.js';
import { createApp } from '../../src/common/http-app.js';

describe("createApp's front listener", () => {
  const lines: { msg: string; failures?: number }[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  let throwAfterHead = false;
  const app = createApp({
    logger,
    limits: DEFAULT_HTTP_LIMITS,
    front: (req, res) => {
      if (!req.url!.startsWith('/boom')) return false;
      if (throwAfterHead) res.writeHead(200, { 'content-length': '10' });
      throw new Error('a bug in the front path');
    },
  });
  app.get('/boom', async () => 'from the route\n');
  afterAll(() => app.close());

  it('lets the route answer when it throws before any header, and the process lives on', async () => {
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    for (let i = 0; i < 3; i++) {
      const res = await request(`${url}/boom?x=${i}`);
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('from the route\n');
    }
    // Logged once, not per request.
    expect(lines.filter((l) => l.msg === 'front path failed; the route answers')).toHaveLength(1);
  });

  it('closes the connection when it throws after its head went out', async () => {
    throwAfterHead = true;
    const a = app.server.address() as { port: number };
    await expect(request(`http://127.0.0.1:${a.port}/boom`).then((r) => r.body.text())).rejects.toThrow();
    // The server still answers.
    throwAfterHead = false;
    expect((await request(`http://127.0.0.1:${a.port}/boom`)).statusCode).toBe(200);
  });
});

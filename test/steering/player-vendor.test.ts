import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { pino } from 'pino';
import { type SteeringWorld, steeringWorld } from '../steering-harness.js';

describe('steering: /player/vendor/ names', () => {
  let world: SteeringWorld;
  let url: string;
  const logged: { level: number; msg?: string }[] = [];

  beforeAll(async () => {
    world = await steeringWorld();
    const logger = pino({ level: 'warn' }, { write: (line: string) => logged.push(JSON.parse(line)) });
    url = (await world.start({ logger })).publicUrl;
  });
  afterAll(() => world.close());

  it('itAnswers404ForObjectPrototypeNamesWithoutLoggingAnError', async () => {
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
      const res = await request(`${url}/player/vendor/${name}`);
      const body = await res.body.text();
      expect(res.statusCode, name).toBe(404);
      expect(body, name).toBe('not found\n');
    }
    expect(logged.filter((l) => l.level >= 50)).toEqual([]);
    // The real scripts still load.
    const ok = await request(`${url}/player/vendor/hls.min.js`, { headers: { range: 'bytes=0-9' } });
    await ok.body.dump();
    expect(ok.statusCode).toBe(206);
  });
});

import { describe, expect, it } from 'vitest';
import { type CpuProfile, byOwner, ownerOf, selfTimes } from '../../bench/edge/cpuprofile-top.js';

const frame = (id: number, functionName: string, url: string, lineNumber = 0) => ({ id, callFrame: { functionName, url, lineNumber } });

describe('edge bench: cpuprofile summary', () => {
  it('names the owner of a frame', () => {
    expect(ownerOf('file:///w/node_modules/fastify/lib/route.js', 'x')).toBe('fastify');
    expect(ownerOf('file:///w/node_modules/@fastify/static/index.js', 'x')).toBe('@fastify/static');
    expect(ownerOf('node:_http_outgoing', 'write')).toBe('node internals');
    expect(ownerOf('file:///work/main/dist/src/edge/server.js', 'serve')).toBe('reelcdn');
    expect(ownerOf('', '(garbage collector)')).toBe('(garbage collector)');
    expect(ownerOf('', 'writev')).toBe('(native)');
  });

  it('splits the profile time over the sampled frames, and leaves idle out of busy time', () => {
    const profile: CpuProfile = {
      startTime: 0,
      endTime: 1000,
      nodes: [frame(1, '(root)', ''), frame(2, '(idle)', ''), frame(3, 'serve', 'file:///x/dist/src/edge/server.js', 9), frame(4, '(garbage collector)', '')],
      samples: [2, 2, 2, 2, 2, 3, 3, 3, 4, 4],
    };
    const t = selfTimes(profile);
    expect(t.map((x) => [x.name, x.micros])).toEqual([
      ['(idle)', 500],
      ['serve server.js:10', 300],
      ['(garbage collector)', 200],
    ]);
    expect(byOwner(t)).toEqual([
      { owner: 'reelcdn', micros: 300 },
      { owner: '(garbage collector)', micros: 200 },
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { Ring } from '../src/common/ring.js';
import { Holdings } from '../src/steering/holdings.js';
import { steeringWorldForSuite } from './steering-harness.js';

describe('holdings index', () => {
  it('tracksWhichEdgesHoldATitleAcrossUpdates', () => {
    const h = new Holdings();
    h.update('e1', ['a', 'b']);
    h.update('e2', ['b']);
    expect([...(h.holders('b') ?? [])].sort()).toEqual(['e1', 'e2']);
    h.update('e1', ['a']);
    expect([...(h.holders('b') ?? [])]).toEqual(['e2']);
    h.update('e2', undefined);
    expect(h.holders('b')).toBeUndefined();
    expect([...(h.holders('a') ?? [])]).toEqual(['e1']);
  });
});

describe('steering ranks the edges that hold a title first', () => {
  const suite = steeringWorldForSuite();

  const ranked = async (title: string) => {
    const res = await request(`${suite.steering.publicUrl}/v1/steer/${title}.json`);
    return (await res.body.json()) as { 'PATHWAY-PRIORITY': string[] };
  };

  it('putsTheFilledEdgeFirstEvenWhenTheRingPrefersAnother', async () => {
    const ispA = ['edge-a1', 'edge-a2'];
    const ringFirst = new Ring(ispA).rank('bbb-hls')[0]!;
    const other = ispA.find((id) => id !== ringFirst)!;
    expect((await ranked('bbb-hls'))['PATHWAY-PRIORITY'][0]).toBe(ringFirst);

    // The other edge's fill agent now reports the title held whole and verified.
    suite.world.edges.find((e) => e.id === other)!.heldTitles = ['bbb-hls'];
    const deadline = Date.now() + 3000;
    let first = '';
    while (Date.now() < deadline) {
      first = (await ranked('bbb-hls'))['PATHWAY-PRIORITY'][0]!;
      if (first === other) break;
      await new Promise((r) => setTimeout(r, 30));
    }
    expect(first).toBe(other);
    // Titles it does not hold keep their ring order.
    const dash = (await ranked('bbb-dash'))['PATHWAY-PRIORITY'].filter((id) => ispA.includes(id));
    expect(dash).toEqual(new Ring(ispA).rank('bbb-dash').filter((id) => ispA.includes(id)));
  });
});

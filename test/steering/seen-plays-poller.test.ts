import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/common/clock.js';
import type { EdgeConfig } from '../../src/common/config.js';
import { SeenPlays } from '../../src/edge/play-seen.js';
import { type SeenPlaysFetcher, SeenPlaysPoller } from '../../src/steering/seen-plays-poller.js';

const edges = ['e1', 'e2'].map((id) => ({ id }) as EdgeConfig);

/** Edges' rings read in process; an edge can be made unreachable or restarted. */
function world() {
  const rings = new Map(edges.map((e) => [e.id, new SeenPlays(16, `${e.id}-boot1`)]));
  const down = new Set<string>();
  const fetcher: SeenPlaysFetcher = async (edge, since) => {
    if (down.has(edge.id)) throw new Error('ECONNREFUSED');
    return rings.get(edge.id)!.since(since, 3);
  };
  const replica = () => {
    const seen: string[] = [];
    const poller = new SeenPlaysPoller({ edges, intervalMs: 100, clock: new FakeClock(0), logger: pino({ level: 'silent' }), fetcher, onSeen: (ids, edge) => seen.push(...ids.map((id) => `${edge}:${id}`)) });
    return { poller, seen };
  };
  return { rings, down, replica };
}

describe('SeenPlaysPoller', () => {
  it('itLetsEveryReplicaReadEveryIdOnce', async () => {
    const w = world();
    const [a, b] = [w.replica(), w.replica()];
    w.rings.get('e1')!.record('x');
    w.rings.get('e2')!.record('y');
    await a.poller.pollOnce();
    await b.poller.pollOnce();
    await a.poller.pollOnce();
    expect(a.seen.sort()).toEqual(['e1:x', 'e2:y']);
    expect(b.seen.sort()).toEqual(['e1:x', 'e2:y']);
  });

  it('itReadsABacklogPageByPage', async () => {
    const w = world();
    const a = w.replica();
    for (let i = 0; i < 10; i++) w.rings.get('e1')!.record(`p${i}`);
    await a.poller.pollOnce();
    expect(a.seen).toEqual(Array.from({ length: 10 }, (_, i) => `e1:p${i}`));
  });

  it('itStartsOverWhenAnEdgeRestarts', async () => {
    const w = world();
    const a = w.replica();
    for (const id of ['p1', 'p2', 'p3']) w.rings.get('e1')!.record(id);
    await a.poller.pollOnce();
    // A new process: a fresh ring whose sequence numbers start again below our cursor.
    const fresh = new SeenPlays(16, 'e1-boot2');
    fresh.record('q1');
    w.rings.set('e1', fresh);
    await a.poller.pollOnce();
    expect(a.seen).toEqual(['e1:p1', 'e1:p2', 'e1:p3', 'e1:q1']);
  });

  it('itCatchesUpWithAnEdgeThatWasUnreachable', async () => {
    const w = world();
    const a = w.replica();
    w.down.add('e2');
    w.rings.get('e2')!.record('late');
    await a.poller.pollOnce();
    expect(a.seen).toEqual([]);
    expect(a.poller.failures).toBe(1);
    w.down.delete('e2');
    await a.poller.pollOnce();
    expect(a.seen).toEqual(['e2:late']);
  });
});

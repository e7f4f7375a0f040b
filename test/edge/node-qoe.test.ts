import { describe, expect, it } from 'vitest';
import { NodeQoeCounts } from '../../src/edge/cluster/node-qoe.js';
import { NodeSessions, SessionForwarder, type SessionBatch } from '../../src/edge/cluster/node-sessions.js';
import { type QoeBlock, emptyQoeBlock, startupBucket } from '../../src/edge/qoe.js';
import { QoeHistory } from '../../src/steering/qoe-history.js';

const block = (requests: number, mediaRequests = requests): QoeBlock => ({ ...emptyQoeBlock(), requests, mediaRequests });

describe('NodeQoeCounts (review P1-1: a node qoe block that only goes up)', () => {
  it('itCountsALateWorkerWithItsLastBlock, so steering sees no spike when it answers again', () => {
    const node = new NodeQoeCounts();
    const history = new QoeHistory();
    const sample = (mono: number, answered: [number, number, QoeBlock][]) => {
      for (const [i, pid, b] of answered) node.answered(i, pid, b);
      const qoe = node.total();
      history.add(mono, [{ id: 'e', isp: 'i', qoe, uptimeSec: mono / 1000 }]);
      return qoe.requests;
    };
    expect(sample(1000, [[1, 11, block(100)], [2, 12, block(1_000_000)]])).toBe(1_000_100);
    expect(sample(2000, [[1, 11, block(110)]])).toBe(1_000_110); // worker 2 late: its last block stands in
    expect(sample(3000, [[1, 11, block(120)], [2, 12, block(1_000_005)]])).toBe(1_000_125);
    // Over the window: the 25 requests made, not worker 2's whole history.
    expect(history.window(3000, [{ id: 'e', isp: 'i' }]).edges[0]!.qoe?.requests).toBe(25);
  });

  it('itKeepsARetiredWorkersCounts: a restart never makes the node count go down', () => {
    const node = new NodeQoeCounts();
    node.answered(1, 11, block(50));
    node.answered(2, 12, block(70));
    node.retire(2);
    expect(node.total().requests).toBe(120);
    node.answered(2, 12, block(75)); // a reply of the dead process that came after its exit: not counted twice
    expect(node.total().requests).toBe(120);
    node.answered(2, 22, block(3)); // its successor, from zero
    expect(node.total().requests).toBe(123);
    node.answered(1, 31, block(1)); // a successor seen before its predecessor's exit was: the old one retires
    node.retire(1); // ...and that exit, when it comes, retires the successor's 1 only once it is gone
    expect(node.total().requests).toBe(124);
  });

  it('itKeepsEachFieldsHighest when two reads of one worker cross', () => {
    const node = new NodeQoeCounts();
    node.answered(1, 11, block(10));
    node.answered(1, 11, block(8)); // an older read answered later
    expect(node.total().requests).toBe(10);
    expect(node.total(block(0)).sessions).toBe(0);
    expect(node.total({ ...emptyQoeBlock(), sessions: 4 }).sessions).toBe(4);
  });
});

describe('Node sessions (review P2-3: sessions and startup per node, not per worker)', () => {
  it('itBatchesSightings: at most maxBatch a message, within flushMs of the first, none per request', async () => {
    const sent: SessionBatch[] = [];
    let t = 0;
    const f = new SessionForwarder((b) => sent.push(b), () => t++, 30, 4);
    for (let i = 0; i < 10; i++) f.add(`s${i}`, i === 0);
    expect(sent.map((b) => b.sid.length)).toEqual([4, 4]);
    expect(sent[0]).toEqual({ sid: ['s0', 's1', 's2', 's3'], su: [true, false, false, false], t: [0, 1, 2, 3] });
    await new Promise((r) => setTimeout(r, 80));
    expect(sent.map((b) => b.sid.length)).toEqual([4, 4, 2]);
    f.flush();
    expect(sent).toHaveLength(3); // nothing held, nothing sent
  });

  it('itCountsOnePlayerOnTwoWorkersOnceAndTimesItsStartupAcrossThem, whichever batch comes first', () => {
    const startups: number[] = [];
    const node = new NodeSessions({ settleMs: 1000, onOutcome: (o) => o.startupMs >= 0 && startups.push(o.startupMs) });
    // Worker 2's batch (the first request without su, at 1300) arrives before worker 1's (su at 1000).
    node.add({ sid: ['p'], su: [false], t: [1300] });
    node.add({ sid: ['p', 'p'], su: [true, true], t: [1000, 1100] });
    node.settle(1500); // not settled yet: nothing applied
    expect(node.table.sessions).toBe(0);
    node.settle(2400);
    expect(node.table.sessions).toBe(1);
    expect(startups).toEqual([300]);
    expect(node.table.startupCounts[startupBucket(300)]).toBe(1);
    expect(node.table.activeSessions(2400)).toBe(1);
  });

  it('itBoundsWhatWaits: past maxPending the oldest are applied at once; junk is ignored', () => {
    const node = new NodeSessions({ settleMs: 1000, maxPending: 100 });
    for (let i = 0; i < 50; i++) node.add({ sid: Array.from({ length: 10 }, (_, j) => `s${i * 10 + j}`), su: new Array<boolean>(10).fill(false), t: Array.from({ length: 10 }, (_, j) => i * 10 + j) });
    expect(node.waiting).toBe(100);
    expect(node.table.sessions).toBe(400);
    node.add({ sid: [1, '', 'x'.repeat(500)], su: [false, false, false], t: [1, 2, Number.NaN] } as unknown as SessionBatch);
    node.add(undefined as unknown as SessionBatch);
    expect(node.waiting).toBe(100);
  });
});

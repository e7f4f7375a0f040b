import { describe, expect, it } from 'vitest';
import { CmsdDynamicHeader } from '../../src/edge/cmsd-header.js';
import { ClientThroughput } from '../../src/edge/client-throughput.js';
import { RepresentationHeaders } from '../../src/edge/hit-path-headers.js';

describe('RepresentationHeaders', () => {
  it('itKeepsTheSharedWhole200WhilePlayersGetTheirOwnEtp: no rebuild per answer', () => {
    const rh = new RepresentationHeaders({ size: 1000, contentType: 'video/mp4', etag: '"x"' }, 'seg_1.m4s');
    const t = new ClientThroughput({ now: () => 0 });
    t.transferred('10.0.0.1', 1_000_000, 100);
    const cmsd = new CmsdDynamicHeader('edge-a1', () => false, t);
    const plain = rh.whole200('HIT-MEM', cmsd.shared());
    // A player with an estimate, then a plain answer again: the shared list is the same object.
    const own = rh.whole200Own('HIT-MEM', cmsd.own('10.0.0.1')!);
    expect(own).toEqual([...rh.common, 'content-length', '1000', 'x-cache', 'HIT-MEM', 'cmsd-dynamic', '"edge-a1";etp=80000']);
    expect(rh.whole200('HIT-MEM', cmsd.shared())).toBe(plain);
    expect(plain.at(-1)).toBe('"edge-a1"');
    // A client without an estimate: no value of its own.
    expect(cmsd.own('10.0.0.2')).toBeUndefined();
    expect(cmsd.valueFor('10.0.0.2', true)).toBe(cmsd.shared());
  });
});

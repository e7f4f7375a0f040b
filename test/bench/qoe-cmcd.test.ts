import { describe, expect, it } from 'vitest';
import { parseCmcdText } from '../../src/common/cmcd.js';
import { type RequestState, cmcdFields, relativeNor, withCmcdQuery } from '../../bench/qoe-cmcd.js';

const media: RequestState = {
  sid: 'a1b2',
  cid: 'qoe-001',
  ot: 'av',
  startup: false,
  starved: true,
  bufferS: 12.34,
  measuredKbps: 1234,
  bitrateKbps: 915,
  durationS: 2,
  nor: 'seg_360p_005.m4s',
};

describe('the bench player’s CMCD', () => {
  it('a media request carries every key the brief lists, as the edge reads them back', () => {
    const url = withCmcdQuery('http://127.0.0.1:9/c/qoe-001/seg_360p_004.m4s?e=1&k=k1&t=x', media);
    const q = new URL(url).searchParams;
    expect(q.get('t')).toBe('x'); // the token stays as it was
    const c = parseCmcdText(q.get('CMCD')!);
    expect(c).toMatchObject({ sid: 'a1b2', cid: 'qoe-001', ot: 'av', st: 'v', sf: 'h', v: 1, bs: true, br: 915, bl: 12300, dl: 12300, d: 2000, mtp: 1200, nor: 'seg_360p_005.m4s' });
    expect(c.su).toBeUndefined();
  });

  it('during startup: su, and no deadline (nothing plays yet)', () => {
    const c = parseCmcdText(new URL(withCmcdQuery('http://h/c/t/s.m4s', { ...media, startup: true, starved: false, bufferS: 0, measuredKbps: undefined })).searchParams.get('CMCD')!);
    expect(c.su).toBe(true);
    expect(c.bs).toBeUndefined();
    expect(c.dl).toBeUndefined();
    expect(c.mtp).toBeUndefined();
    expect(c.bl).toBe(0);
  });

  it('a manifest request: session keys and ot=m, no buffer or bitrate keys', () => {
    const f = cmcdFields({ sid: 's', cid: 't', ot: 'm', startup: true, starved: false, bufferS: 0, measuredKbps: undefined });
    expect(f).toEqual({ sid: 's', cid: 't', ot: 'm', st: 'v', sf: 'h', v: 1, su: true });
  });
});

describe('relativeNor', () => {
  it('is the next object’s name in the same folder, decoded, without its token', () => {
    expect(relativeNor('http://e:1/c/t/seg_1.m4s?e=1&t=a', 'http://e:1/c/t/seg_2.m4s?e=1&t=b')).toBe('seg_2.m4s');
    expect(relativeNor('http://e:1/c/t/seg_1.m4s', 'http://e:1/c/t/a%20b.m4s')).toBe('a b.m4s');
  });

  it('is nothing across hosts or folders', () => {
    expect(relativeNor('http://e:1/c/t/seg_1.m4s', 'http://f:1/c/t/seg_2.m4s')).toBeUndefined();
    expect(relativeNor('http://e:1/c/t/seg_1.m4s', 'http://e:1/c/u/seg_2.m4s')).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import { TokenVerifier, signQuery, verifyToken } from '../../src/common/signing.js';

const keys = { k1: 'k1-secret-0123456789abcdef', k2: 'k2-secret-0123456789abcdef' };
const path = '/c/title-1/seg_00001.m4s';
const now = 1_700_000_000;

function params(q: string) {
  const p = new URLSearchParams(q);
  return { e: p.get('e'), k: p.get('k'), t: p.get('t') };
}

describe('TokenVerifier', () => {
  it('itGivesVerifyTokensVerdicts, first time and remembered', () => {
    const v = new TokenVerifier(keys);
    const good = params(signQuery(keys, 'k2', path, now, 60));
    const cases: [string, { e: string | null; k: string | null; t: string | null }, number][] = [
      [path, good, now],
      [path, good, now],
      [path, good, now + 61],
      ['/c/title-1/seg_00002.m4s', good, now],
      [path, { ...good, e: String(Number(good.e) + 10) }, now],
      [path, { ...good, k: 'k1' }, now],
      [path, { ...good, k: '__proto__' }, now],
      [path, { ...good, t: null }, now],
      [path, { ...good, e: '1e10' }, now],
    ];
    for (const [p, prm, at] of cases) expect(v.verify(p, prm.e, prm.k, prm.t, at)).toEqual(verifyToken(keys, p, prm, at));
  });

  it('itStillExpiresARememberedToken at its e', () => {
    const v = new TokenVerifier(keys);
    const good = params(signQuery(keys, 'k1', path, now, 60));
    expect(v.verify(path, good.e, good.k, good.t, now).ok).toBe(true);
    expect(v.verify(path, good.e, good.k, good.t, now + 60).ok).toBe(true);
    expect(v.verify(path, good.e, good.k, good.t, now + 61)).toEqual({ ok: false, reason: 'expired' });
  });

  it('itKeepsAtMostItsCapacity and verifies what it forgot afresh', () => {
    const v = new TokenVerifier(keys, 2);
    const tokens = [1, 2, 3].map((i) => params(signQuery(keys, 'k1', `${path}${i}`, now, 60)));
    tokens.forEach((t, i) => expect(v.verify(`${path}${i + 1}`, t.e, t.k, t.t, now).ok).toBe(true));
    tokens.forEach((t, i) => expect(v.verify(`${path}${i + 1}`, t.e, t.k, t.t, now).ok).toBe(true));
    expect(v.verify(`${path}1`, tokens[1]!.e, tokens[1]!.k, tokens[1]!.t, now)).toEqual({ ok: false, reason: 'bad signature' });
  });
});

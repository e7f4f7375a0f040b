import { describe, expect, it } from 'vitest';
import { signQuery, signToken, verifyToken } from '../src/common/signing.js';
import { createHmac } from 'node:crypto';

const keys = { k1: 'k1-secret-0123456789abcdef', k2: 'k2-secret-0123456789abcdef' };
const path = '/c/title-1/seg_00001.m4s';
const now = 1_700_000_000;

function params(q: string) {
  const p = new URLSearchParams(q);
  return { e: p.get('e'), k: p.get('k'), t: p.get('t') };
}

describe('signToken', () => {
  it('is base64url(HMAC-SHA256(secret, "path|e")) as docs/contract.md says', () => {
    const expected = createHmac('sha256', keys.k1).update(`${path}|123`).digest('base64url');
    expect(signToken(keys.k1, path, 123)).toBe(expected);
    expect(signToken(keys.k1, path, 123)).not.toMatch(/[+/=]/);
  });
});

describe('verifyToken', () => {
  const good = params(signQuery(keys, 'k1', path, now, 60));
  const cases: [string, string, ReturnType<typeof params>, number, string | undefined][] = [
    ['valid', path, good, now, undefined],
    ['valid until the last second', path, good, now + 60, undefined],
    ['expired one second later', path, good, now + 61, 'expired'],
    ['tampered path', '/c/title-1/seg_00002.m4s', good, now, 'bad signature'],
    ['path differing only by encoding', '/c/title-1/seg_00001%2Em4s', good, now, 'bad signature'],
    ['tampered expiry (extended)', path, { ...good, e: String(Number(good.e) + 3600) }, now, 'bad signature'],
    ['malformed expiry', path, { ...good, e: '1e10' }, now, 'malformed expiry'],
    ['negative expiry', path, { ...good, e: '-5' }, now, 'malformed expiry'],
    ['unknown key', path, { ...good, k: 'k9' }, now, 'unknown key'],
    ['prototype key name', path, { ...good, k: '__proto__' }, now, 'unknown key'],
    ['constructor key name', path, { ...good, k: 'constructor' }, now, 'unknown key'],
    ['right token, wrong key id', path, { ...good, k: 'k2' }, now, 'bad signature'],
    ['truncated token', path, { ...good, t: good.t!.slice(0, -1) }, now, 'bad signature'],
    ['flipped token character', path, { ...good, t: (good.t![0] === 'A' ? 'B' : 'A') + good.t!.slice(1) }, now, 'bad signature'],
    ['missing e', path, { ...good, e: null }, now, 'missing token'],
    ['missing k', path, { ...good, k: null }, now, 'missing token'],
    ['missing t', path, { ...good, t: null }, now, 'missing token'],
    ['empty t', path, { ...good, t: '' }, now, 'missing token'],
  ];
  it.each(cases)('%s', (_name, p, prm, at, reason) => {
    const v = verifyToken(keys, p, prm, at);
    if (reason === undefined) expect(v).toEqual({ ok: true });
    else expect(v).toEqual({ ok: false, reason });
  });

  it('accepts the second key of a rotation', () => {
    const q = params(signQuery(keys, 'k2', path, now, 60));
    expect(q.k).toBe('k2');
    expect(verifyToken(keys, path, q, now)).toEqual({ ok: true });
    // …and stops accepting it once the key is retired from the cluster file
    expect(verifyToken({ k1: keys.k1 }, path, q, now)).toEqual({ ok: false, reason: 'unknown key' });
  });
  it('signQuery refuses a key that is not configured', () => {
    expect(() => signQuery(keys, 'nope', path, now, 60)).toThrow(/nope/);
  });
  it('signQuery floors a fractional now', () => {
    expect(params(signQuery(keys, 'k1', path, now + 0.9, 60)).e).toBe(String(now + 60));
  });
});

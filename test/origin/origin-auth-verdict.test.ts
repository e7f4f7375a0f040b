import { describe, expect, it } from 'vitest';
import { ORIGIN_TOKEN_TTL_SECONDS, signedOriginPath } from '../../src/common/origin-signing.js';
import { signQuery, TokenVerifier } from '../../src/common/signing.js';
import { ORIGIN_REFUSALS, OriginAuth, type OriginRequestFacts, originVerdict } from '../../src/origin/origin-auth.js';

const KEYS = { k1: 'k1-secret-0123456789abcdef', k2: 'k2-secret-0123456789abcdef' };
const NOW = 1_800_000_000;
const PATH = '/o/movie/seg_001.m4s';
const policy = (required = true) => ({ required, tokens: new TokenVerifier(KEYS) });

/** The facts of a request for `PATH` with `query`, at NOW, without a client certificate. */
function facts(query: string, over: Partial<OriginRequestFacts> = {}): OriginRequestFacts {
  return { path: PATH, query, clientCertVerified: false, nowSec: NOW, ...over };
}
const token = (keyId = 'k1', path = PATH, nowSec = NOW, ttl = 300) => signQuery(KEYS, keyId, path, nowSec, ttl);

describe('originVerdict', () => {
  it('admitsATokenSignedForThePathWithTheActiveKey', () => {
    expect(originVerdict(policy(), facts(token()))).toEqual({ ok: true, by: 'token' });
  });

  it('admitsATokenSignedWithAnyListedKey (rotation: the old key verifies until the file drops it)', () => {
    expect(originVerdict(policy(), facts(token('k2')))).toEqual({ ok: true, by: 'token' });
  });

  it.each<[string, string, string]>([
    ['no query at all', '', 'missing token'],
    ['a query without the token', 'tp=x&pl=y', 'missing token'],
    ['no t', token().replace(/&t=.*/, ''), 'missing token'],
    ['an expiry that is not a number', token().replace(/^e=\d+/, 'e=soon'), 'malformed expiry'],
    ['an expired token', token('k1', PATH, NOW - 301), 'expired'],
    ['a key id the cluster does not list', `e=${NOW + 60}&k=k9&t=AAAA`, 'unknown key'],
    ['a forged MAC', token().replace(/t=.*/, 't=' + 'A'.repeat(43)), 'bad signature'],
    ['a token for another file', token('k1', '/o/movie/seg_002.m4s'), 'bad signature'],
    ['a token for the same file at the edge (/c/)', token('k1', '/c/movie/seg_001.m4s'), 'bad signature'],
    ['a later expiry than was signed', token().replace(/^e=(\d+)/, (_m, e) => `e=${Number(e) + 3600}`), 'bad signature'],
  ])('refuses %s', (_name, query, reason) => {
    expect(originVerdict(policy(), facts(query))).toEqual({ ok: false, reason });
  });

  it('readsTheFirstOccurrenceOfEachParameterAsEdgesDo', () => {
    expect(originVerdict(policy(), facts(`${token()}&t=junk&e=1`))).toEqual({ ok: true, by: 'token' });
    expect(originVerdict(policy(), facts(`t=junk&${token()}`))).toEqual({ ok: false, reason: 'bad signature' });
  });

  it('admitsAVerifiedClientCertificateWithoutAToken', () => {
    expect(originVerdict(policy(), facts('', { clientCertVerified: true }))).toEqual({ ok: true, by: 'client certificate' });
  });

  it('admitsEveryoneWhenSigningIsNotRequired (the lab switch opens /o/ too)', () => {
    expect(originVerdict(policy(false), facts(''))).toEqual({ ok: true, by: 'open' });
    expect(originVerdict(policy(false), facts('e=1&k=k1&t=x'))).toEqual({ ok: true, by: 'open' });
  });

  it('refusesOnlyWithReasonsTheMetricsLabelKnows', () => {
    for (const q of ['', 'e=x&k=k1&t=y', `e=1&k=k1&t=y`, `e=${NOW + 9}&k=zz&t=y`, `e=${NOW + 9}&k=k1&t=y`]) {
      const v = originVerdict(policy(), facts(q));
      expect(v.ok).toBe(false);
      if (!v.ok) expect(ORIGIN_REFUSALS).toContain(v.reason);
    }
  });
});

describe('OriginAuth', () => {
  it('swapsKeysWithoutANewServer: a dropped key stops verifying, a new one starts', () => {
    const auth = new OriginAuth({ keys: { k1: KEYS.k1 }, required: true });
    expect(auth.check(facts(token('k2'))).ok).toBe(false);
    auth.setSigning({ keys: { k2: KEYS.k2 }, required: true });
    expect(auth.check(facts(token('k2')))).toEqual({ ok: true, by: 'token' });
    // A token verified (and remembered) under the old keys is not admitted by the new ones.
    expect(auth.check(facts(token('k1')))).toEqual({ ok: false, reason: 'unknown key' });
  });
});

describe('signedOriginPath', () => {
  it('signsTheOriginPathWithTheActiveKeyForAFewMinutes', () => {
    const signed = signedOriginPath({ keys: KEYS, activeKey: 'k2' }, 'movie', 'seg_001.m4s', NOW);
    const [path, query] = signed.split('?') as [string, string];
    expect(path).toBe(PATH);
    const q = new URLSearchParams(query);
    expect([q.get('k'), Number(q.get('e'))]).toEqual(['k2', NOW + ORIGIN_TOKEN_TTL_SECONDS]);
    expect(originVerdict(policy(), facts(query))).toEqual({ ok: true, by: 'token' });
    expect(originVerdict(policy(), facts(query, { nowSec: NOW + ORIGIN_TOKEN_TTL_SECONDS + 1 }))).toEqual({ ok: false, reason: 'expired' });
  });
});

import { describe, expect, it } from 'vitest';
import {
  CMCD_LIMITS,
  cmcdHeaders,
  formatCmcd,
  hasCmcdQuery,
  parseCmcdText,
  readCmcd,
  withoutCmcdQuery,
} from '../../src/common/cmcd.js';

const SID = '6e2fb550-c457-11e9-bb97-0800200c9a66';
const CID = 'faec5fc2-ac30-11ea-bb37-0242ac130002';
/** Every version-1 key once, in the shape CTA-5004's examples use. */
const ALL_KEYS =
  `bl=21300,br=3200,bs,cid="${CID}",d=4004,dl=18500,mtp=48100,nor="..%2F300kbps%2Ftrack.m4v",` +
  `nrr="12323-48763",ot=v,pr=1.08,rtp=12000,sf=d,sid="${SID}",st=v,su,tb=6000,v=1`;

const EXPECTED = {
  bl: 21300,
  br: 3200,
  bs: true,
  cid: CID,
  d: 4004,
  dl: 18500,
  mtp: 48100,
  nor: '../300kbps/track.m4v',
  nrr: '12323-48763',
  ot: 'v',
  pr: 1.08,
  rtp: 12000,
  sf: 'd',
  sid: SID,
  st: 'v',
  su: true,
  tb: 6000,
  v: 1,
};

function typed(c: object): Record<string, unknown> {
  const { keys: _keys, ...rest } = c as { keys: unknown };
  return rest;
}

describe('parseCmcdText', () => {
  it('reads every key type of the spec', () => {
    expect(typed(parseCmcdText(ALL_KEYS))).toEqual(EXPECTED);
  });

  it('reads the query form', () => {
    const url = `/c/t/seg_001.m4s?e=1&k=a&t=x&CMCD=${encodeURIComponent(ALL_KEYS)}`;
    expect(typed(readCmcd(url, {})!)).toEqual(EXPECTED);
  });

  it('reads the four header shards and merges them', () => {
    const headers = {
      'cmcd-object': 'br=3200,d=4004,ot=v,tb=6000',
      'cmcd-request': 'bl=21300,dl=18500,mtp=48100,nor="..%2F300kbps%2Ftrack.m4v",nrr="12323-48763",su',
      'cmcd-session': `cid="${CID}",pr=1.08,sf=d,sid="${SID}",st=v,v=1`,
      'cmcd-status': 'bs,rtp=12000',
    };
    expect(typed(readCmcd('/c/t/seg.m4s', headers)!)).toEqual(EXPECTED);
  });

  it('lets a header win over the query for the same key', () => {
    const c = readCmcd(`/x?CMCD=${encodeURIComponent('br=100,sid="q"')}`, { 'cmcd-object': 'br=200' })!;
    expect(c.br).toBe(200);
    expect(c.sid).toBe('q');
  });

  it('is undefined for a request without CMCD', () => {
    expect(readCmcd('/c/t/f.m4s?e=1&k=a&t=b', { range: 'bytes=0-1' })).toBeUndefined();
    // A parameter merely ending in CMCD is not CMCD.
    expect(readCmcd('/c/t/f.m4s?XCMCD=br%3D1', {})).toBeUndefined();
    // Present but saying nothing readable: no CMCD either (not a request of type 'none').
    expect(readCmcd('/c/t/f.m4s?CMCD=', {})).toBeUndefined();
    expect(readCmcd('/c/t/f.m4s', { 'cmcd-request': '=,"x' })).toBeUndefined();
  });

  it('reads booleans: bare is true, ?0 false, ?1 true', () => {
    const c = parseCmcdText('bs=?0,su=?1');
    expect(c.bs).toBe(false);
    expect(c.su).toBe(true);
  });

  it('keeps custom keys and unknown keys with their values', () => {
    const c = parseCmcdText('com.example-myNumericKey=500,com.example-myStringKey="myStringValue",zz=tok,yy');
    expect(c.keys.get('com.example-myNumericKey')).toBe(500);
    expect(c.keys.get('com.example-myStringKey')).toBe('myStringValue');
    expect(c.keys.get('zz')).toEqual({ token: 'tok' });
    expect(c.keys.get('yy')).toBe(true);
  });

  it('reads inner lists (CMCD v2) and takes the first item for a typed key', () => {
    const c = parseCmcdText('br=(3200 1500),nor=("seg_2.m4s" "seg_3.m4s"),v=2');
    expect(c.keys.get('br')).toEqual([3200, 1500]);
    expect(c.br).toBe(3200);
    expect(c.nor).toBe('seg_2.m4s');
  });

  it('ignores a malformed member and keeps the rest', () => {
    const c = parseCmcdText('br=12x,bl=1000,sid="unterminated,ot=v');
    // `sid` swallows to the end of the text: its quotes never close, so ot is lost with it.
    expect(c.br).toBeUndefined();
    expect(c.bl).toBe(1000);
    expect(c.sid).toBeUndefined();
  });

  it('ignores values of the wrong type for known keys but keeps them in keys', () => {
    const c = parseCmcdText('br="3200",sid=abc,ot="v",bs=1,bl=-5,d=1.5,pr=1.25');
    expect(c.br).toBeUndefined();
    expect(c.sid).toBeUndefined();
    expect(c.ot).toBeUndefined();
    expect(c.bs).toBeUndefined();
    expect(c.bl).toBeUndefined();
    expect(c.d).toBeUndefined();
    expect(c.pr).toBe(1.25);
    expect(c.keys.get('br')).toBe('3200');
  });

  it('takes the last of a repeated key, and clears the typed field when the last is ill-typed', () => {
    expect(parseCmcdText('br=100,br=200').br).toBe(200);
    expect(parseCmcdText('br=100,br="x"').br).toBeUndefined();
  });

  it('reads escapes in strings and refuses bad escapes and control characters', () => {
    expect(parseCmcdText('sid="a\\"b\\\\c"').sid).toBe('a"b\\c');
    expect(parseCmcdText('sid="a\\nb",bl=1').sid).toBeUndefined();
    expect(parseCmcdText('sid="a\tb",bl=1').bl).toBe(1);
  });

  it('tolerates spaces around commas and ignores parameters', () => {
    const c = parseCmcdText('  br=100 ,\tbl=200;x=1 , su ');
    expect(c.br).toBe(100);
    expect(c.bl).toBe(200);
    expect(c.su).toBe(true);
  });

  it('refuses numbers past the SF limits', () => {
    expect(parseCmcdText('br=1234567890123456').br).toBeUndefined();
    expect(parseCmcdText('pr=1.2345').pr).toBeUndefined();
  });

  it('bounds very long values and very many keys', () => {
    const long = 'x'.repeat(CMCD_LIMITS.maxStringLength + 1);
    const c = parseCmcdText(`sid="${long}",bl=100`);
    expect(c.sid).toBeUndefined();
    expect(c.bl).toBe(100);
    const many = Array.from({ length: 500 }, (_, i) => `k${i}=${i}`).join(',');
    expect(parseCmcdText(`${many},br=9`).keys.size).toBe(CMCD_LIMITS.maxKeys);
    // A megabyte of junk is read in one pass and yields nothing.
    const junk = parseCmcdText('=,'.repeat(500_000));
    expect(junk.keys.size).toBe(0);
  });

  it('never throws on arbitrary input', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const alphabet = 'abr=,"\\()?;01 .-*:%\t\u00e9sid';
    for (let n = 0; n < 2000; n++) {
      const s = Array.from({ length: Math.floor(rnd() * 60) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');
      expect(() => parseCmcdText(s)).not.toThrow();
      expect(() => readCmcd(`/c/t/f?CMCD=${s}`, { 'cmcd-request': s })).not.toThrow();
    }
  });

  it('drops an undecodable nor', () => {
    expect(parseCmcdText('nor="%E0%A4%A",bl=1').nor).toBeUndefined();
  });
});

describe('CMCD in URLs', () => {
  it('finds the parameter only as a whole query key', () => {
    expect(hasCmcdQuery('/c/t/f?CMCD=br%3D1')).toBe(true);
    expect(hasCmcdQuery('/c/t/f?e=1&CMCD=br%3D1')).toBe(true);
    expect(hasCmcdQuery('/c/t/f?XCMCD=1')).toBe(false);
    expect(hasCmcdQuery('/c/CMCD=/f')).toBe(false);
  });

  it('strips it and nothing else', () => {
    expect(withoutCmcdQuery('/c/t/f?e=1&CMCD=br%3D1&k=a&t=b')).toBe('/c/t/f?e=1&k=a&t=b');
    expect(withoutCmcdQuery('/c/t/f?CMCD=br%3D1')).toBe('/c/t/f');
    expect(withoutCmcdQuery('/c/t/f?e=1&k=a')).toBe('/c/t/f?e=1&k=a');
  });
});

describe('formatCmcd and cmcdHeaders', () => {
  it('round-trips through the parser', () => {
    const text = formatCmcd(EXPECTED);
    expect(typed(parseCmcdText(text))).toEqual(EXPECTED);
    expect(text.startsWith('bl=21300,br=3200,bs,cid=')).toBe(true);
  });

  it('rounds what the spec rounds and leaves false booleans out', () => {
    expect(formatCmcd({ bl: 21349, mtp: 48151, bs: false, su: true })).toBe('bl=21300,mtp=48200,su');
  });

  it('writes inner lists, booleans in them and decimals as SF can read them back', () => {
    const text = formatCmcd({ pr: 1.23456, custom: { 'com.x-flags': [true, false], 'com.x-n': [1, 2.5], 'com.x-bad': Number.NaN } });
    expect(text).toBe('com.x-flags=(?1 ?0),com.x-n=(1 2.5),pr=1.235');
    const back = parseCmcdText(text);
    expect(back.keys.get('com.x-flags')).toEqual([true, false]);
    expect(back.pr).toBe(1.235);
  });

  it('splits keys into their header shards', () => {
    const h = cmcdHeaders(EXPECTED);
    expect(Object.keys(h).sort()).toEqual(['CMCD-Object', 'CMCD-Request', 'CMCD-Session', 'CMCD-Status']);
    expect(h['CMCD-Status']).toBe('bs,rtp=12000');
    const lower = Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
    expect(typed(readCmcd('/c/t/f', lower)!)).toEqual(EXPECTED);
  });
});

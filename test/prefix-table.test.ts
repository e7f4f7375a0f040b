import { describe, expect, it } from 'vitest';
import { PrefixTableError, buildIspTable, buildPrefixSet, buildPrefixTable, parseAddress } from '../src/steering/prefix-table.js';

const isps = [
  { id: 'isp-a', prefixes: ['127.0.0.0/16', '10.1.0.0/16', '2001:db8:a::/48'] },
  { id: 'isp-b', prefixes: ['127.2.0.0/16', '10.1.5.0/24', '2001:db8:a:5::/64', '0.0.0.0/0'] },
  { id: 'isp-c', prefixes: ['10.1.5.128/25', '2001:db8:c::/48', '192.168.1.7/32'] },
];

describe('prefix table', () => {
  const table = buildIspTable(isps.map((i) => ({ ...i, prefixes: i.prefixes.filter((p) => p !== '0.0.0.0/0') })));
  it.each([
    ['127.0.0.1', 'isp-a'],
    ['127.0.255.255', 'isp-a'],
    ['127.1.0.1', undefined],
    ['127.2.0.5', 'isp-b'],
    ['10.1.4.255', 'isp-a'],
    ['10.1.5.0', 'isp-b'],
    ['10.1.5.127', 'isp-b'],
    ['10.1.5.128', 'isp-c'],
    ['10.1.5.255', 'isp-c'],
    ['10.1.6.0', 'isp-a'],
    ['10.2.0.0', undefined],
    ['192.168.1.7', 'isp-c'],
    ['192.168.1.8', undefined],
    ['2001:db8:a::1', 'isp-a'],
    ['2001:db8:a:5::1', 'isp-b'],
    ['2001:db8:a:5:ffff:ffff:ffff:ffff', 'isp-b'],
    ['2001:db8:a:6::', 'isp-a'],
    ['2001:DB8:C:0:0:0:0:1', 'isp-c'],
    ['2001:db8:b::1', undefined],
    ['::ffff:127.2.0.5', 'isp-b'],
    ['::ffff:7f00:1', 'isp-a'],
    ['::1', undefined],
    ['fe80::1%eth0', undefined],
    ['not an address', undefined],
    ['1.2.3', undefined],
    ['1.2.3.256', undefined],
    ['', undefined],
  ])('itFindsTheLongestPrefixHolding %s → %s', (addr, want) => {
    expect(table.lookup(addr)).toBe(want);
  });

  it('itMatchesEverythingWithADefaultRoute', () => {
    const t = buildIspTable(isps);
    expect(t.lookup('8.8.8.8')).toBe('isp-b');
    expect(t.lookup('10.1.5.200')).toBe('isp-c');
    expect(t.lookup('10.1.4.1')).toBe('isp-a');
    expect(t.lookup('255.255.255.255')).toBe('isp-b');
  });

  it('itHandlesPrefixesAtTheEndsOfTheAddressSpace', () => {
    const t = buildPrefixTable([
      { prefix: '255.255.255.255/32', value: 'top' },
      { prefix: '0.0.0.0/32', value: 'bottom' },
      { prefix: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120', value: 'top6' },
      { prefix: '::/0', value: 'all6' },
    ]);
    expect(t.lookup('255.255.255.255')).toBe('top');
    expect(t.lookup('255.255.255.254')).toBeUndefined();
    expect(t.lookup('0.0.0.0')).toBe('bottom');
    expect(t.lookup('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')).toBe('top6');
    expect(t.lookup('ffff:ffff:ffff:ffff:ffff:ffff:ffff:feff')).toBe('all6');
  });

  it('itRefusesTheSamePrefixForTwoOwners', () => {
    expect(() => buildPrefixTable([{ prefix: '10.0.0.0/8', value: 'a' }, { prefix: '10.0.0.0/8', value: 'b' }])).toThrow(PrefixTableError);
    expect(() => buildPrefixTable([{ prefix: '10.0.0.0/33', value: 'a' }])).toThrow(PrefixTableError);
    expect(() => buildPrefixTable([{ prefix: 'x/8', value: 'a' }])).toThrow(PrefixTableError);
    expect(buildPrefixTable([{ prefix: '10.0.0.0/8', value: 'a' }, { prefix: '10.0.0.0/8', value: 'a' }]).lookup('10.9.9.9')).toBe('a');
  });

  it('itTreatsMappedPrefixesAsIPv4', () => {
    const t = buildPrefixSet(['::ffff:10.0.0.0/104', '192.0.2.1/32']);
    expect(t.has('10.200.0.1')).toBe(true);
    expect(t.has('::ffff:10.1.1.1')).toBe(true);
    expect(t.has('192.0.2.1')).toBe(true);
    expect(t.has('192.0.2.2')).toBe(false);
  });

  it('itParsesAddressForms', () => {
    expect(parseAddress('::')).toEqual({ v: 6, w: new Uint32Array([0, 0, 0, 0]) });
    expect(parseAddress('1::')).toEqual({ v: 6, w: new Uint32Array([0x10000, 0, 0, 0]) });
    expect(parseAddress('::ffff:1.2.3.4')).toEqual({ v: 4, n: 0x01020304 });
    expect(parseAddress('1:2:3:4:5:6:7:8:9')).toBeUndefined();
    expect(parseAddress('1::2::3')).toBeUndefined();
    expect(parseAddress(':1:2')).toBeUndefined();
    expect(parseAddress('01.2.3.4')).toBeUndefined();
  });

  it('itAgreesWithALinearScanOnRandomPrefixes', () => {
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const prefixes: { first: number; len: number; value: string }[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const len = 8 + Math.floor(rnd() * 25);
      const mask = len === 32 ? 0xffffffff : (0xffffffff << (32 - len)) >>> 0;
      const first = ((Math.floor(rnd() * 2 ** 32) & 0x0fffffff) & mask) >>> 0; // keep them clustered so they nest
      const key = `${first}/${len}`;
      if (seen.has(key)) continue;
      seen.add(key);
      prefixes.push({ first, len, value: `v${i % 7}` });
    }
    const fmt = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
    const t = buildPrefixTable(prefixes.map((p) => ({ prefix: `${fmt(p.first)}/${p.len}`, value: p.value })));
    for (let i = 0; i < 3000; i++) {
      const addr = i % 2 === 0 ? (Math.floor(rnd() * 2 ** 32) & 0x0fffffff) >>> 0 : prefixes[i % prefixes.length]!.first + (i % 3);
      let best: { len: number; value: string } | undefined;
      for (const p of prefixes) {
        const mask = p.len === 32 ? 0xffffffff : (0xffffffff << (32 - p.len)) >>> 0;
        if (((addr & mask) >>> 0) === p.first && (!best || p.len > best.len)) best = p;
      }
      expect(t.lookup(fmt(addr >>> 0))).toBe(best?.value);
    }
  });
});

import { describe, expect, it } from 'vitest';
import { formatCmsdDynamic, formatCmsdStatic, objectTypeOf } from '../../src/common/cmsd.js';

describe('CMSD', () => {
  it('formats CMSD-Static as an SF dictionary: tokens bare, strings quoted, numbers whole', () => {
    expect(formatCmsdStatic({ ot: 'v', st: 'v' })).toBe('ot=v,st=v');
    expect(formatCmsdStatic({ ot: 'm', sf: 'h', d: 4004.4, n: 'Reel "CDN"' })).toBe('ot=m,sf=h,d=4004,n="Reel \\"CDN\\""');
    expect(formatCmsdStatic({})).toBe('');
  });

  it('formats a CMSD-Dynamic member: the server id quoted, parameters after it', () => {
    expect(formatCmsdDynamic('edge-a')).toBe('"edge-a"');
    expect(formatCmsdDynamic('edge-a', { etp: 4200.6, du: true })).toBe('"edge-a";etp=4201;du');
    expect(formatCmsdDynamic('edge-a', { etp: 10, du: false })).toBe('"edge-a";etp=10');
    // Something an operator typed cannot break the header.
    expect(formatCmsdDynamic('é"\\x')).toBe('"?\\"\\\\x"');
  });

  it('types objects by name and content type', () => {
    expect(objectTypeOf('index_180p.m3u8')).toBe('m');
    expect(objectTypeOf('manifest.mpd')).toBe('m');
    expect(objectTypeOf('init_180p.mp4')).toBe('i');
    expect(objectTypeOf('init-2.m4s')).toBe('i');
    expect(objectTypeOf('subs/en.vtt')).toBe('c');
    expect(objectTypeOf('seg_180p_001.m4s')).toBe('av');
    expect(objectTypeOf('audio/seg_1.m4s')).toBe('a');
    expect(objectTypeOf('seg.m4a', 'audio/mp4')).toBe('a');
    expect(objectTypeOf('video_720p/seg_1.m4s')).toBe('v');
    expect(objectTypeOf('poster.jpg', 'image/jpeg')).toBe('o');
    // "initial" is not an init segment.
    expect(objectTypeOf('initial_cut/seg_1.ts')).toBe('av');
  });
});

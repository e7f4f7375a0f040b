import { describe, expect, it } from 'vitest';
import { Playback } from '../../bench/qoe-buffer.js';

const opts = { startS: 2, resumeS: 2, goalS: 30 };

describe('Playback', () => {
  it('starts once the start buffer is in: startup is the time from the first request', () => {
    const p = new Playback(opts);
    p.advanceTo(0.4);
    expect(p.state).toBe('startup');
    p.append(1.25, 2);
    expect(p.state).toBe('playing');
    expect(p.startupS).toBe(1.25);
    expect(p.stallS).toBe(0); // waiting to start is not rebuffering
  });

  it('drains while playing and stalls when the buffer runs dry, for the rest of the interval', () => {
    const p = new Playback(opts);
    p.append(1, 4);
    p.advanceTo(3);
    expect(p.bufferS).toBe(2);
    expect(p.playedS).toBe(2);
    p.advanceTo(6); // 2 s more played, then 1 s stalled
    expect(p.state).toBe('stalled');
    expect(p.playedS).toBe(4);
    expect(p.stallS).toBe(1);
    expect(p.stallCount).toBe(1);
    p.advanceTo(6.5);
    expect(p.stallS).toBe(1.5);
    p.append(6.5, 2);
    expect(p.state).toBe('playing');
    expect(p.stallCount).toBe(1);
  });

  it('needs the resume buffer to leave a stall', () => {
    const p = new Playback({ startS: 2, resumeS: 4, goalS: 30 });
    p.append(0, 2);
    p.advanceTo(3);
    p.append(3, 2);
    expect(p.state).toBe('stalled');
    p.append(3, 2);
    expect(p.state).toBe('playing');
  });

  it('reports a starved buffer once, on the next request', () => {
    const p = new Playback(opts);
    p.append(0, 2);
    expect(p.takeStarved()).toBe(false);
    p.advanceTo(5);
    expect(p.takeStarved()).toBe(true);
    expect(p.takeStarved()).toBe(false);
  });

  it('waits for room below the goal only while playing', () => {
    const p = new Playback(opts);
    p.append(0, 20);
    p.append(0, 10);
    expect(p.waitForRoomS(2)).toBe(2); // 30 + 2 − 30
    p.advanceTo(1.5);
    expect(p.waitForRoomS(2)).toBeCloseTo(0.5, 9);
    const starting = new Playback({ startS: 40, resumeS: 2, goalS: 30 });
    starting.append(0, 32);
    expect(starting.waitForRoomS(2)).toBe(0);
  });

  it('finish plays out what is buffered without a stall; time never goes back', () => {
    const p = new Playback(opts);
    p.append(1, 10);
    p.advanceTo(0.5);
    expect(p.playedS).toBe(0);
    p.finish(3);
    expect(p.playedS).toBe(10);
    expect(p.stallS).toBe(0);
    expect(p.bufferS).toBe(0);
  });

  it('a session that ends before its start buffer fills starts when it ends', () => {
    const p = new Playback({ startS: 4, resumeS: 2, goalS: 30 });
    p.append(1, 2);
    p.finish(1.5);
    expect(p.startupS).toBe(1.5);
    expect(p.playedS).toBe(2);
  });
});

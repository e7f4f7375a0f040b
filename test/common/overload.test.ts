import { describe, expect, it } from 'vitest';
import { type LoadState, type OverloadParams, initialOverload, stepOverload } from '../../src/common/overload.js';

const P: OverloadParams = { maxDelayMs: 250, overAfter: 3, okAfter: 2 };

/** Runs samples from ok and returns the state after each. */
function run(samples: number[], p = P): LoadState[] {
  let o = initialOverload();
  return samples.map((d) => (o = stepOverload(o, d, p)).state);
}

describe('overload state machine', () => {
  it.each<[string, number[], LoadState[]]>([
    ['stays ok within the budget', [10, 20, 250, 100], ['ok', 'ok', 'ok', 'ok']],
    ['stays ok over a single slow sample', [10, 300, 10, 10], ['ok', 'ok', 'ok', 'ok']],
    ['stays ok over two slow samples in a row', [300, 900, 10], ['ok', 'ok', 'ok']],
    ['stays ok when slow samples are not consecutive', [300, 300, 10, 300, 300, 10, 300], ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok']],
    ['turns overloaded on the third slow sample in a row', [300, 300, 300], ['ok', 'ok', 'overloaded']],
    ['stays overloaded over one good sample', [300, 300, 300, 10, 300], ['ok', 'ok', 'overloaded', 'overloaded', 'overloaded']],
    ['returns to ok after two good samples in a row', [300, 300, 300, 10, 10], ['ok', 'ok', 'overloaded', 'overloaded', 'ok']],
    ['needs a new sustained run to turn overloaded again', [300, 300, 300, 10, 10, 300, 300, 300], ['ok', 'ok', 'overloaded', 'overloaded', 'ok', 'ok', 'ok', 'overloaded']],
    ['treats exactly the budget as within it', [250, 250, 250], ['ok', 'ok', 'ok']],
  ])('%s', (_name, samples, states) => {
    expect(run(samples)).toEqual(states);
  });

  it('turnsOverloadedAtOnceWhenOverAfterIsOne', () => {
    expect(run([10, 260, 10], { maxDelayMs: 250, overAfter: 1, okAfter: 1 })).toEqual(['ok', 'overloaded', 'ok']);
  });

  it('countsRunsOfEachKind', () => {
    let o = initialOverload();
    for (const d of [300, 300, 10]) o = stepOverload(o, d, P);
    expect(o).toEqual({ state: 'ok', overRun: 0, okRun: 1 });
  });
});

/**
 * xorshift32: the same numbers for the same seed on every run and every machine, so benchmarks
 * load every target alike and tests can recompute what a generated file holds. Not for secrets.
 */
export function seededRandom(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** `bytes` of deterministic pseudo-random content (the low byte of each xorshift32 step). */
export function seededBytes(bytes: number, seed: number): Buffer {
  const data = Buffer.alloc(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = x & 0xff;
  }
  return data;
}

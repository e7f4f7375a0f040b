/**
 * When a disk read checks the slice's CRC-32. Checking every read cost a third of a disk hit;
 * what it buys after the first successful check is only the detection of bit rot that happens
 * while the slice sits on disk, which sampling catches too, later. See docs/architecture.md,
 * "Disk tier: integrity and durability", for what each check catches and misses.
 */
export class CrcPolicy {
  /**
   * @param sampleEvery a verified slice is checked again on about 1 read in `sampleEvery`
   *   (1: every read; 0: never again).
   * @param random injectable for tests; uniform in [0, 1).
   */
  constructor(
    private readonly sampleEvery: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** Whether this read of a slice checks its CRC: always until one check passed, then sampled. */
  mustCheck(verified: boolean): boolean {
    if (!verified || this.sampleEvery === 1) return true;
    if (this.sampleEvery <= 0) return false;
    // Random rather than every Nth read: a fixed stride could skip the same slices forever.
    return this.random() * this.sampleEvery < 1;
  }
}

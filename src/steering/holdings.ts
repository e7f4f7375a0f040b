/**
 * Which edges hold which titles whole and verified, as their fill agents report in /health
 * (`fill.heldTitles`). Ranking puts holders first, so a client lands where tonight's fill put
 * the title even when the ring's first choice was full. Kept as an inverted index, updated per poll.
 */
export class Holdings {
  private readonly byEdge = new Map<string, Set<string>>();
  private readonly byTitle = new Map<string, Set<string>>();

  /** Replaces what one edge holds (undefined: it reported nothing, e.g. an older version). */
  update(edgeId: string, titles: readonly string[] | undefined): void {
    const next = new Set(titles ?? []);
    const prev = this.byEdge.get(edgeId) ?? new Set<string>();
    for (const t of prev) {
      if (next.has(t)) continue;
      const s = this.byTitle.get(t);
      s?.delete(edgeId);
      if (s && s.size === 0) this.byTitle.delete(t);
    }
    for (const t of next) {
      if (prev.has(t)) continue;
      let s = this.byTitle.get(t);
      if (!s) this.byTitle.set(t, (s = new Set()));
      s.add(edgeId);
    }
    this.byEdge.set(edgeId, next);
  }

  holders(title: string): ReadonlySet<string> | undefined {
    return this.byTitle.get(title);
  }
}

/**
 * Which functions ran quick lately, by source, as engines say in their replies (`quick` in a
 * reply's metadata: the run took under a millisecond). Whoever places load-balanced tasks, the
 * hub's queue or a client under a lease, lets a quick function's tasks queue deeper on an engine
 * than others: what waits behind them waits well under a millisecond for each.
 */

/** Functions remembered (the most recently run). */
const KEPT = 1000;

/** See the file's comment. */
export class QuickFunctions {
  private readonly bySource = new Map<string, boolean>();

  /** Whether the latest run of `source` that replied was quick. */
  has(source: string): boolean {
    return this.bySource.get(source) === true;
  }

  /** A run of `source` replied, `quick` when it took under a millisecond. */
  ran(source: string, quick: boolean): void {
    // Set anew, so that the oldest entry is the one run least lately.
    this.bySource.delete(source);
    this.bySource.set(source, quick);
    if (this.bySource.size > KEPT)
      this.bySource.delete(this.bySource.keys().next().value as string);
  }
}

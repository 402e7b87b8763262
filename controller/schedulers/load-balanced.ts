/**
 * How the load-balanced scheduler picks an engine among those with room for another task.
 * Names follow ipyparallel's `schemes`; a new scheme is one entry in `schemes`.
 */

/** What a scheme may look at for one candidate engine. */
export interface EngineLoad {
  readonly id: number;
  /** Load-balanced tasks sent to it and not finished. */
  readonly load: number;
  /** Monotonic counter value when it was last given a task (0 if never). */
  readonly lastAssigned: number;
}

/** Picks one of the candidates, which may be any objects that tell their load. */
type Pick = <E extends EngineLoad>(candidates: readonly E[]) => E;

/** Ties go to the engine that waited longest, so equal engines take turns. */
function byLeastRecent<E extends EngineLoad>(a: E, b: E): E {
  return b.lastAssigned < a.lastAssigned ? b : a;
}

/** Each scheme: picks one engine among candidates that all have room. */
export const schemes = {
  leastload: (cs) =>
    cs.reduce((best, c) =>
      c.load < best.load ? c : c.load === best.load ? byLeastRecent(best, c) : best,
    ),
  lru: (cs) => cs.reduce(byLeastRecent),
  random: (cs) => cs[Math.floor(Math.random() * cs.length)],
  weighted: (cs) => {
    // An idle engine is several times likelier to be picked than a busy one.
    const weights = cs.map((c) => 1 / (1 + c.load));
    let r = Math.random() * weights.reduce((a, b) => a + b, 0);
    for (let i = 0; i < cs.length; i++) {
      r -= weights[i];
      if (r <= 0) return cs[i];
    }
    return cs[cs.length - 1];
  },
} satisfies Record<string, Pick>;

/** A scheme's name. */
export type Scheme = keyof typeof schemes;
/** The schemes, for option checks and help. */
export const schemeNames = Object.keys(schemes) as readonly Scheme[];

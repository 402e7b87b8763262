/**
 * How the load-balanced scheduler picks an engine among those with room for another task.
 * Names follow ipyparallel's `schemes`; a new scheme is one entry in `rooms`.
 *
 * Each scheme keeps the engines with room in a structure of its own (a `Room`), updated as an
 * engine's load changes, so that a pick costs O(log n) or less and not a pass over every engine:
 * with a thousand engines, a pass per task was most of the scheduler's time.
 */

/** What a scheme may look at for one candidate engine. */
export interface EngineLoad {
  readonly id: number;
  /** Load-balanced tasks sent to it and not finished. */
  readonly load: number;
  /** Monotonic counter value when it was last given a task (0 if never). */
  readonly lastAssigned: number;
}

/**
 * The engines with room for another task, kept in the order their scheme picks them. An engine
 * whose `load` or `lastAssigned` changed is `set` again before the next pick.
 */
export interface Room<E extends EngineLoad> {
  /** Engines in the room. */
  readonly size: number;
  /** Puts `e` in the room, or in its new place there after its load changed. */
  set(e: E): void;
  /** Takes `e` out of the room; nothing happens if it is not there. */
  delete(e: E): void;
  /** The engine the scheme picks, left in the room; `undefined` when the room is empty. */
  pick(): E | undefined;
}

/** Ties go to the engine that waited longest, so equal engines take turns; then the lower id. */
function leastRecent(a: EngineLoad, b: EngineLoad): boolean {
  return a.lastAssigned < b.lastAssigned || (a.lastAssigned === b.lastAssigned && a.id < b.id);
}

function leastLoaded(a: EngineLoad, b: EngineLoad): boolean {
  return a.load < b.load || (a.load === b.load && leastRecent(a, b));
}

/** Each scheme's room, empty. */
const rooms = {
  leastload: <E extends EngineLoad>(): Room<E> => new EngineHeap<E>(leastLoaded),
  lru: <E extends EngineLoad>(): Room<E> => new EngineHeap<E>(leastRecent),
  random: <E extends EngineLoad>(): Room<E> => new RandomRoom<E>(),
  // An idle engine is several times likelier to be picked than a busy one.
  weighted: <E extends EngineLoad>(): Room<E> => new WeightedRoom<E>((load) => 1 / (1 + load)),
};

/** A scheme's name. */
export type Scheme = keyof typeof rooms;
/** The schemes, for option checks and help. */
export const schemeNames = Object.keys(rooms) as readonly Scheme[];

/** An empty room for `scheme`'s picks. */
export function newRoom<E extends EngineLoad>(scheme: Scheme): Room<E> {
  return rooms[scheme]<E>();
}

/** Picks one of a few candidates, all with room, as `scheme` would (a task limited to some engines). */
type Pick = <E extends EngineLoad>(candidates: readonly E[]) => E;

/** Each scheme's pick among explicit candidates; throws on an empty list. */
export const schemes = Object.fromEntries(
  schemeNames.map((name): [Scheme, Pick] => [
    name,
    <E extends EngineLoad>(candidates: readonly E[]): E => {
      const room = newRoom<E>(name);
      for (const c of candidates) room.set(c);
      const picked = room.pick();
      if (picked === undefined) throw new RangeError('a scheme needs at least one candidate');
      return picked;
    },
  ]),
) as Record<Scheme, Pick>;

/** A binary min-heap of engines under `less`, which knows where each engine sits. */
class EngineHeap<E extends EngineLoad> implements Room<E> {
  private readonly items: E[] = [];
  private readonly at = new Map<E, number>();

  constructor(private readonly less: (a: E, b: E) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  set(e: E): void {
    let i = this.at.get(e);
    if (i === undefined) {
      i = this.items.length;
      this.items.push(e);
      this.at.set(e, i);
    }
    this.down(this.up(i));
  }

  delete(e: E): void {
    const i = this.at.get(e);
    if (i === undefined) return;
    this.at.delete(e);
    const last = this.items.pop() as E;
    if (i === this.items.length) return;
    this.items[i] = last;
    this.at.set(last, i);
    this.down(this.up(i));
  }

  pick(): E | undefined {
    return this.items[0];
  }

  /** Moves the item at `i` up while it is less than its parent; returns where it ends. */
  private up(i: number): number {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(this.items[i], this.items[parent])) break;
      this.swap(i, parent);
      i = parent;
    }
    return i;
  }

  private down(i: number): void {
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < this.items.length && this.less(this.items[left], this.items[least])) least = left;
      if (right < this.items.length && this.less(this.items[right], this.items[least]))
        least = right;
      if (least === i) return;
      this.swap(i, least);
      i = least;
    }
  }

  private swap(i: number, j: number): void {
    const a = this.items[i];
    const b = this.items[j];
    this.items[i] = b;
    this.items[j] = a;
    this.at.set(b, i);
    this.at.set(a, j);
  }
}

/** Engines in no order, each equally likely to be picked. */
class RandomRoom<E extends EngineLoad> implements Room<E> {
  private readonly items: E[] = [];
  private readonly at = new Map<E, number>();

  get size(): number {
    return this.items.length;
  }

  set(e: E): void {
    if (this.at.has(e)) return;
    this.at.set(e, this.items.length);
    this.items.push(e);
  }

  delete(e: E): void {
    const i = this.at.get(e);
    if (i === undefined) return;
    this.at.delete(e);
    const last = this.items.pop() as E;
    if (i === this.items.length) return;
    this.items[i] = last;
    this.at.set(last, i);
  }

  pick(): E | undefined {
    return this.items[Math.floor(Math.random() * this.items.length)];
  }
}

/**
 * Engines picked with a probability proportional to `weight(load)`: filed by load, so a pick
 * draws a load (as many kinds as there are distinct loads, at most the high-water mark) and then
 * an engine of that load.
 */
class WeightedRoom<E extends EngineLoad> implements Room<E> {
  private readonly byLoad = new Map<number, RandomRoom<E>>();
  /** The load each engine is filed under. */
  private readonly filed = new Map<E, number>();

  constructor(private readonly weight: (load: number) => number) {}

  get size(): number {
    return this.filed.size;
  }

  set(e: E): void {
    if (this.filed.get(e) === e.load) return;
    this.delete(e);
    this.filed.set(e, e.load);
    let same = this.byLoad.get(e.load);
    if (!same) this.byLoad.set(e.load, (same = new RandomRoom<E>()));
    same.set(e);
  }

  delete(e: E): void {
    const load = this.filed.get(e);
    if (load === undefined) return;
    this.filed.delete(e);
    const same = this.byLoad.get(load) as RandomRoom<E>;
    same.delete(e);
    if (same.size === 0) this.byLoad.delete(load);
  }

  pick(): E | undefined {
    let total = 0;
    for (const [load, same] of this.byLoad) total += same.size * this.weight(load);
    let r = Math.random() * total;
    let last: RandomRoom<E> | undefined;
    for (const [load, same] of this.byLoad) {
      last = same;
      r -= same.size * this.weight(load);
      if (r < 0) break;
    }
    return last?.pick();
  }
}

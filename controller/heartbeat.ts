/**
 * Notices engines that stopped beating. Engines beat from a thread of their own, so a busy
 * engine keeps beating and only a dead, stopped or unreachable one misses its deadline.
 */

/** Time and a repeating timer, given to the monitor so that a test can move time by hand. */
export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Calls `tick` every `ms` milliseconds until the returned function is called. */
  every(ms: number, tick: () => void): () => void;
}

/** The process's own clock; its timer does not keep the process alive. */
export const systemClock: Clock = {
  now: () => performance.now(),
  every: (ms, tick) => {
    const timer = setInterval(tick, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
};

/**
 * Watches engines' beats and calls `onDead` with those silent past the deadline, all that one
 * check finds together: the engines of a process stop beating at once (engine/shared-link.ts).
 */
export class HeartMonitor {
  private readonly lastBeat = new Map<number, number>();
  private stopTimer: (() => void) | undefined;
  private lastCheck = 0;

  constructor(
    /** Milliseconds between an engine's beats. */
    readonly period: number,
    /** Milliseconds without a beat after which an engine counts as dead. */
    readonly deadline: number,
    private readonly onDead: (ids: number[]) => void,
    private readonly clock: Clock = systemClock,
  ) {}

  start(): void {
    this.lastCheck = this.clock.now();
    this.stopTimer = this.clock.every(this.interval, () => this.check());
  }

  stop(): void {
    this.stopTimer?.();
    this.stopTimer = undefined;
  }

  beat(id: number): void {
    if (this.lastBeat.has(id)) this.lastBeat.set(id, this.clock.now());
  }

  /** Starts watching `id`; its first beat may come up to `grace` ms later than the others. */
  add(id: number, grace = 0): void {
    this.lastBeat.set(id, this.clock.now() + grace);
  }

  remove(id: number): void {
    this.lastBeat.delete(id);
  }

  private get interval(): number {
    return Math.max(10, Math.floor(this.period / 2));
  }

  private check(): void {
    const now = this.clock.now();
    // A check that comes late means this process was busy (a huge message, a stalled
    // machine): beats that arrived meanwhile are still unread, so the time it was not
    // listening does not count against any engine.
    const stalled = now - this.lastCheck - this.interval;
    this.lastCheck = now;
    if (stalled > 0) {
      for (const [id, at] of this.lastBeat) this.lastBeat.set(id, at + stalled);
    }
    const dead: number[] = [];
    for (const [id, at] of this.lastBeat) if (now - at > this.deadline) dead.push(id);
    for (const id of dead) this.lastBeat.delete(id);
    if (dead.length > 0) this.onDead(dead);
  }
}

import type { Clock } from '../../controller/heartbeat';

interface Timer {
  ms: number;
  due: number;
  tick: () => void;
}

/**
 * A clock moved by hand. `advance` runs each timer as it comes due; `stall` moves time without
 * running them, as a process blocked by a long job does, so a timer then fires once, late, as
 * `setInterval` does.
 */
export class ManualClock implements Clock {
  private time = 0;
  private readonly timers = new Set<Timer>();

  now(): number {
    return this.time;
  }

  every(ms: number, tick: () => void): () => void {
    const timer = { ms, due: this.time + ms, tick };
    this.timers.add(timer);
    return () => this.timers.delete(timer);
  }

  /** Moves time by `ms`, running every timer that comes due on the way, in order. */
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const next = [...this.timers].sort((a, b) => a.due - b.due)[0];
      if (next === undefined || Math.max(next.due, this.time) > until) break;
      this.time = Math.max(next.due, this.time);
      next.due = this.time + next.ms;
      next.tick();
    }
    this.time = until;
  }

  /** Moves time by `ms` without running any timer: the process was busy. */
  stall(ms: number): void {
    this.time += ms;
  }
}

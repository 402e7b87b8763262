/**
 * Notices engines that stopped beating. Engines beat from a thread of their own, so a busy
 * engine keeps beating and only a dead, stopped or unreachable one misses its deadline.
 */
export class HeartMonitor {
  private readonly lastBeat = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private lastCheck = 0;

  constructor(
    /** Milliseconds between an engine's beats. */
    readonly period: number,
    /** Milliseconds without a beat after which an engine counts as dead. */
    readonly deadline: number,
    private readonly onDead: (id: number) => void,
  ) {}

  start(): void {
    this.lastCheck = performance.now();
    this.timer = setInterval(() => this.check(), this.interval);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  beat(id: number): void {
    if (this.lastBeat.has(id)) this.lastBeat.set(id, performance.now());
  }

  /** Starts watching `id`; its first beat may come up to `grace` ms later than the others. */
  add(id: number, grace = 0): void {
    this.lastBeat.set(id, performance.now() + grace);
  }

  remove(id: number): void {
    this.lastBeat.delete(id);
  }

  private get interval(): number {
    return Math.max(10, Math.floor(this.period / 2));
  }

  private check(): void {
    const now = performance.now();
    // A check that comes late means this process was busy (a huge message, a stalled
    // machine): beats that arrived meanwhile are still unread, so the time it was not
    // listening does not count against any engine.
    const stalled = now - this.lastCheck - this.interval;
    this.lastCheck = now;
    if (stalled > 0) {
      for (const [id, at] of this.lastBeat) this.lastBeat.set(id, at + stalled);
    }
    for (const [id, at] of this.lastBeat) {
      if (now - at > this.deadline) {
        this.lastBeat.delete(id);
        this.onDead(id);
      }
    }
  }
}

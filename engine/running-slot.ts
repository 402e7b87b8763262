/**
 * The id of the task the engine's main thread runs, in memory shared with the heartbeat thread.
 * The heartbeat thread reads it when an abort arrives, at that moment, so it interrupts the task
 * that is really running and never the next one.
 */
const CAPACITY = 128;

/** Shared memory holding the running task's id; see the file's comment. */
export class RunningSlot {
  private readonly length: Int32Array;
  private readonly bytes: Uint8Array;

  constructor(readonly buffer = new SharedArrayBuffer(4 + CAPACITY)) {
    this.length = new Int32Array(buffer, 0, 1);
    this.bytes = new Uint8Array(buffer, 4, CAPACITY);
  }

  set(msgId: string | null): void {
    Atomics.store(this.length, 0, 0);
    if (msgId === null) return;
    const { written } = new TextEncoder().encodeInto(msgId, this.bytes);
    Atomics.store(this.length, 0, written);
  }

  get(): string | null {
    const n = Atomics.load(this.length, 0);
    return n === 0 ? null : new TextDecoder().decode(this.bytes.slice(0, n));
  }
}

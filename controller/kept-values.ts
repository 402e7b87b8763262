/**
 * The hub's count of who needs the values engines keep (large results stay on the engine that
 * made them; see `engine/kept-values.ts`). A value is needed while its client holds the task's
 * `AsyncResult` and while a task that takes it as an argument has not ended; once neither, the
 * engine keeping it is told to free it. Only tasks someone asked about have an entry.
 */

/** What the hub knows of one task's value. */
interface Entry {
  /** Tasks that take the value as an argument and have not ended. */
  dependants: number;
  /** Its client holds its `AsyncResult` no more. */
  released: boolean;
  /** The engine keeping the value, once the task ended with it kept. */
  keptOn: number | undefined;
  /** The task ended: its value is kept (`keptOn`), or nothing is. */
  ended: boolean;
}

/** Who needs which kept value; see the file's comment. */
export class KeptValueTable {
  private readonly entries = new Map<string, Entry>();

  constructor(
    /** Tells engine `engineId` to free the values of these tasks. */
    private readonly free: (engineId: number, msgIds: string[]) => void,
    /** Where a task's value is, as its record says, when the task ended before it got an entry. */
    private readonly endedAs: (msgId: string) => { keptOn: number | undefined } | undefined,
  ) {}

  /** A task that takes these tasks' values was submitted. */
  need(msgIds: readonly string[]): void {
    for (const id of msgIds) this.entry(id).dependants++;
  }

  /** A task that took these values ended. */
  needed(msgIds: readonly string[]): void {
    const freed = new Map<number, string[]>();
    for (const id of msgIds) {
      const e = this.entries.get(id);
      if (!e) continue;
      e.dependants--;
      this.settle(id, e, freed);
    }
    this.tell(freed);
  }

  /**
   * Task `msgId` ended: with its value kept on engine `keptOn`, or with nothing kept. A task
   * nobody asked about before gets an entry only when its value is kept.
   */
  ended(msgId: string, keptOn: number | undefined): void {
    const known = this.entries.get(msgId);
    if (!known && keptOn === undefined) return;
    const e = known ?? this.entry(msgId);
    e.ended = true;
    e.keptOn = keptOn;
    const freed = new Map<number, string[]>();
    this.settle(msgId, e, freed);
    this.tell(freed);
  }

  /** The client holds these tasks' results no more. */
  release(msgIds: readonly string[]): void {
    const freed = new Map<number, string[]>();
    for (const id of msgIds) {
      const e = this.entry(id);
      e.released = true;
      this.settle(id, e, freed);
    }
    this.tell(freed);
  }

  /** The tasks whose values are kept, or may yet be, for a client that holds them still. */
  *held(): IterableIterator<string> {
    for (const [id, e] of this.entries) if (!e.released) yield id;
  }

  /**
   * Engine `engineId` is gone, and the values it kept with it; returns the tasks whose lost
   * values waiting tasks still need.
   */
  engineLost(engineId: number): string[] {
    const needed: string[] = [];
    for (const [id, e] of this.entries) {
      if (e.keptOn !== engineId) continue;
      e.keptOn = undefined;
      if (e.dependants > 0) needed.push(id);
      this.settle(id, e, new Map());
    }
    return needed;
  }

  /** Task `msgId` runs again, to make the value its engine lost: it has not ended. */
  rerun(msgId: string): void {
    const e = this.entries.get(msgId);
    if (e) e.ended = false;
  }

  private entry(msgId: string): Entry {
    let e = this.entries.get(msgId);
    if (!e) {
      const ended = this.endedAs(msgId);
      e = { dependants: 0, released: false, keptOn: ended?.keptOn, ended: ended !== undefined };
      this.entries.set(msgId, e);
    }
    return e;
  }

  /**
   * Forgets an entry nobody needs any more, adding a kept value to what its engine frees; an
   * ended task whose value is not kept needs no entry once no dependant waits for it.
   */
  private settle(msgId: string, e: Entry, freed: Map<number, string[]>): void {
    if (e.dependants > 0) return;
    if (e.keptOn === undefined) {
      if (e.ended) this.entries.delete(msgId);
      return;
    }
    if (!e.released) return;
    this.entries.delete(msgId);
    freed.set(e.keptOn, [...(freed.get(e.keptOn) ?? []), msgId]);
  }

  private tell(freed: Map<number, string[]>): void {
    for (const [engineId, msgIds] of freed) this.free(engineId, msgIds);
  }
}

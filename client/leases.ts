/**
 * A client's leases (the hub's side is `controller/leases.ts`): load-balanced tasks go straight
 * to engines in the slots the hub lent this client, and wait here, in order, for a free slot
 * while the lease lasts; without a lease they go through the hub as ever. The lease is renewed
 * halfway through its term while tasks come; when the hub lends nothing (other clients' tasks
 * wait there), the waiting tasks go to the hub, behind those. A lease is given back as soon as
 * no task waits here or runs in its slots: the hub counts lent slots as busy, so an idle lease
 * would hold up every task sent through the hub, this client's too, until its term ran out.
 */
import type { IMessage, TaskRequestType } from '../protocol/messages';

/** Slots asked for on each engine; the hub lends fewer (see `LEASE_DEPTH` in its leases.ts). */
const SLOTS_WANTED = 16;

/** What the hub answered a lease request: slots by engine id, for `term` milliseconds. */
export interface Lent {
  leases: Record<string, number>;
  term: number;
}

type Task = IMessage<TaskRequestType>;

/** One client's leases; see the file's comment. */
export class Leases {
  /** Slots lent on each engine, by id. */
  private lent = new Map<number, number>();
  /** Tasks running in slots, by engine id; they may outlast the lease they were sent under. */
  private readonly busy = new Map<number, number>();
  /** The engine each task sent under a lease went to, until it ends. */
  private readonly placed = new Map<string, number>();
  /** When the lease ends on this client's clock: counted from the ask, so never after the hub's. */
  private ends = 0;
  private term = 0;
  private asking = false;
  /** The hub lent nothing at the last ask: until then, tasks go to it without asking again. */
  private refusedUntil = 0;
  private waiting: Task[] = [];
  /** `atTurnEnd` is due. */
  private turnEndDue = false;
  private expiry: NodeJS.Timeout | undefined;

  constructor(
    private readonly ask: (slots: number) => Promise<Lent>,
    /** Sends tasks straight to an engine, together; false when the client cannot reach it. */
    private readonly straight: (tasks: Task[], engineId: number) => boolean,
    private readonly viaHub: (task: Task) => void,
  ) {}

  /**
   * Takes a load-balanced task: sent in a leased slot, or kept for the next free one (or for
   * the lease being asked for: sent through the hub meanwhile, it would wait there behind the
   * very slots lent), or left to go through the hub (false) while the hub lends nothing.
   */
  submit(task: Task): boolean {
    if (performance.now() < this.refusedUntil) return false;
    this.waiting.push(task);
    this.drain();
    return true;
  }

  /**
   * Sends the tasks among `msgIds` that wait here through the hub now: a task taking their
   * results is about to reach the hub, which must know of them first.
   */
  sendThroughHub(msgIds: readonly string[]): void {
    const ids = new Set(msgIds);
    const leaving = this.waiting.filter((t) => ids.has(t.header.msg_id));
    if (leaving.length === 0) return;
    this.waiting = this.waiting.filter((t) => !ids.has(t.header.msg_id));
    for (const task of leaving) this.viaHub(task);
    this.giveBackIfIdle();
  }

  /** Tasks waiting here for a slot. */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Takes the tasks among `msgIds` that wait here out of the queue; returns their ids. */
  drop(msgIds: string[]): string[] {
    const ids = new Set(msgIds);
    const dropped = this.waiting.filter((t) => ids.has(t.header.msg_id));
    if (dropped.length > 0) this.waiting = this.waiting.filter((t) => !ids.has(t.header.msg_id));
    this.giveBackIfIdle();
    return dropped.map((t) => t.header.msg_id);
  }

  /** A task ended (its reply came, through either path): its slot is free. */
  done(msgId: string): void {
    const id = this.placed.get(msgId);
    if (id === undefined) return;
    this.placed.delete(msgId);
    this.busy.set(id, (this.busy.get(id) ?? 1) - 1);
    if (this.waiting.length > 0 || this.placed.size === 0) this.atTurnEnd();
  }

  /** The client closes: its lease is given back, whatever still runs in it. */
  close(): void {
    // Those waiting here fail with the client: none may leave after.
    this.waiting = [];
    this.giveBack();
  }

  /**
   * Fills the free slots with the waiting tasks, or gives the lease back when idle, at the end
   * of the turn: slots freed by replies that came together are filled together, with one
   * message per engine, and code that submits again as soon as its tasks end finds the lease
   * still held.
   */
  private atTurnEnd(): void {
    if (this.turnEndDue) return;
    this.turnEndDue = true;
    setImmediate(() => {
      this.turnEndDue = false;
      if (this.waiting.length > 0) this.drain();
      else this.giveBackIfIdle();
    });
  }

  /** Gives the lease back when no task waits here or runs in its slots (see the file's comment). */
  private giveBackIfIdle(): void {
    if (this.waiting.length === 0 && this.placed.size === 0 && !this.asking) this.giveBack();
  }

  private giveBack(): void {
    if (this.lent.size === 0) return;
    this.lent.clear();
    this.ends = 0;
    clearTimeout(this.expiry);
    // Nothing waits on the answer; one lost with the connection leaves the lease to its term.
    this.ask(0).catch(() => undefined);
  }

  /** Engine `id` left: no more tasks go there (the hub reruns or fails those that did). */
  forget(id: number): void {
    this.lent.delete(id);
  }

  /** Sends waiting tasks to free slots while the lease lasts; renews it as it runs out. */
  private drain(): void {
    const now = performance.now();
    if (now >= this.ends) {
      if (this.waiting.length > 0) this.renew();
      return;
    }
    if (now > this.ends - this.term / 2 && this.waiting.length > 0) this.renew();
    for (;;) {
      const byEngine = new Map<number, Task[]>();
      for (let id = this.place(); id !== undefined && this.waiting.length > 0; id = this.place()) {
        const task = this.waiting.shift() as Task;
        const tasks = byEngine.get(id);
        if (tasks) tasks.push(task);
        else byEngine.set(id, [task]);
        this.busy.set(id, (this.busy.get(id) ?? 0) + 1);
        this.placed.set(task.header.msg_id, id);
      }
      const unreachable = [...byEngine].filter(([id, tasks]) => !this.straight(tasks, id));
      if (unreachable.length === 0) return;
      // Those go to the other engines, in their order.
      for (const [id, tasks] of unreachable) {
        this.lent.delete(id);
        for (const t of tasks) this.placed.delete(t.header.msg_id);
        this.busy.set(id, (this.busy.get(id) ?? 0) - tasks.length);
      }
      this.waiting.unshift(...unreachable.flatMap(([, tasks]) => tasks));
    }
  }

  /** The leased engine with the most free slots, or `undefined` when none is free. */
  private place(): number | undefined {
    let best: number | undefined;
    let bestFree = 0;
    for (const [id, n] of this.lent) {
      const free = n - (this.busy.get(id) ?? 0);
      if (free > bestFree) [best, bestFree] = [id, free];
    }
    return best;
  }

  /**
   * Asks the hub for a lease, replacing the one held; once at a time. `stale`: asked again as
   * the answer to the last ask came too late to use.
   */
  private renew(stale = false): void {
    if (this.asking) return;
    this.asking = true;
    const askedAt = performance.now();
    this.ask(SLOTS_WANTED).then(
      ({ leases, term }) => {
        this.asking = false;
        this.term = term;
        this.lent = new Map(Object.entries(leases).map(([id, n]) => [Number(id), n]));
        this.ends = askedAt + term;
        if (this.lent.size > 0 && performance.now() >= this.ends && !stale) {
          // The answer waited here past its term (the code submitting kept this process busy
          // longer than that): it says nothing of the hub, so it is asked once more.
          this.renew(true);
          return;
        }
        if (this.lent.size === 0 || performance.now() >= this.ends) {
          this.refused(term);
          return;
        }
        // Tasks still waiting when the lease runs out must not wait for a reply to move on.
        clearTimeout(this.expiry);
        this.expiry = setTimeout(() => this.drain(), this.ends - performance.now());
        this.expiry.unref();
        this.drain();
        // The tasks it was asked for may have gone in the old lease's slots and ended meanwhile.
        this.giveBackIfIdle();
      },
      () => {
        this.asking = false;
        this.refused(0);
      },
    );
  }

  /** No lease: what waits goes through the hub, and no lease is asked for `ms`. */
  private refused(ms: number): void {
    this.ends = 0;
    this.lent.clear();
    this.refusedUntil = performance.now() + ms;
    const waiting = this.waiting;
    this.waiting = [];
    for (const task of waiting) this.viaHub(task);
  }
}

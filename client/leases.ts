/**
 * A client's leases (the hub's side is `controller/leases.ts`): load-balanced tasks go straight
 * to engines in the slots the hub lent this client, and wait here, in order, for a free slot
 * while the lease lasts; without a lease they go through the hub as ever. The lease is renewed
 * halfway through its term while tasks come; when the hub lends nothing (other clients' tasks
 * wait there), the waiting tasks go to the hub, behind those. A lease is given back as soon as
 * no task waits here or runs in its slots: the hub counts lent slots as busy, so an idle lease
 * would hold up every task sent through the hub, this client's too, until its term ran out.
 *
 * Tasks are placed as the hub's queue places them: on the engine with the most free slots, and
 * beyond the hub's high-water mark only a task whose function is known to run under a
 * millisecond, behind such tasks only, so that a long task holds up no other (with the mark at
 * 1, a task not known quick waits here until an engine is free, as in ipyparallel).
 */
import type { IMessage, TaskRequestType } from '../protocol/messages';
import { QuickFunctions } from '../protocol/quick-functions';

/** Slots asked for on each engine; the hub lends fewer (see its leases.ts). */
export const SLOTS_WANTED = 64;

/**
 * What the hub answered a lease request: slots by engine id, for `term` milliseconds, and its
 * high-water mark.
 */
export interface Lent {
  leases: Record<string, number>;
  term: number;
  mark: number;
}

/** A task sent in a leased slot, until it ends. */
interface Placed {
  engineId: number;
  source: string | undefined;
  /** Its function was known to run quick when it was sent. */
  quick: boolean;
}

type Task = IMessage<TaskRequestType>;

/** One client's leases; see the file's comment. */
export class Leases {
  /** Slots lent on each engine, by id. */
  private lent = new Map<number, number>();
  /** Tasks running in slots, by engine id; they may outlast the lease they were sent under. */
  private readonly busy = new Map<number, number>();
  /** Tasks sent under a lease, until they end. */
  private readonly placed = new Map<string, Placed>();
  /** Tasks running in slots whose functions were not known quick when sent, by engine id. */
  private readonly unsure = new Map<number, number>();
  private readonly quickFunctions = new QuickFunctions();
  /** When each engine was last given a task, counted in placements. */
  private readonly used = new Map<number, number>();
  private placements = 0;
  /** The hub's high-water mark, as the last lease told. */
  private mark = 1;
  /** When the lease ends on this client's clock: counted from the ask, so never after the hub's. */
  private ends = 0;
  private term = 0;
  private asking = false;
  /** Asks made; an answer to one before the last `hubRestarted` is left unread. */
  private asks = 0;
  /** The hub lent nothing at the last ask: until then, tasks go to it without asking again. */
  private refusedUntil = 0;
  private waiting: Task[] = [];
  /** Tasks waiting here that the hub counts: as many as waited when the lease was asked for. */
  private told = 0;
  /** `atTurnEnd` is due. */
  private turnEndDue = false;
  private expiry: NodeJS.Timeout | undefined;

  constructor(
    /** Asks for `slots` on each engine, telling the tasks `waiting` here. */
    private readonly ask: (slots: number, waiting: number) => Promise<Lent>,
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

  /** The ids of the tasks waiting here for a slot. */
  waitingIds(): Set<string> {
    return new Set(this.waiting.map((t) => t.header.msg_id));
  }

  /** How many more tasks wait here for a slot than the hub counts (fewer when negative). */
  get untold(): number {
    // The hub counts them for as long as the lease lasts.
    return this.waiting.length - (performance.now() < this.ends ? this.told : 0);
  }

  /** Takes the tasks among `msgIds` that wait here out of the queue; returns their ids. */
  drop(msgIds: string[]): string[] {
    const ids = new Set(msgIds);
    const dropped = this.waiting.filter((t) => ids.has(t.header.msg_id));
    if (dropped.length > 0) this.waiting = this.waiting.filter((t) => !ids.has(t.header.msg_id));
    this.giveBackIfIdle();
    return dropped.map((t) => t.header.msg_id);
  }

  /**
   * A task ended (its reply came, through either path; `quick` when its engine says it ran
   * under a millisecond): its slot is free.
   */
  done(msgId: string, quick: boolean): void {
    const placed = this.unplace(msgId);
    if (!placed) return;
    if (placed.source !== undefined) this.quickFunctions.ran(placed.source, quick);
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
    this.forgetLease();
    // Nothing waits on the answer; one lost with the connection leaves the lease to its term.
    this.ask(0, 0).catch(() => undefined);
  }

  /**
   * The hub restarted: it lent this client nothing, and an ask made of the old one may never be
   * answered. What waits here asks it anew.
   */
  hubRestarted(): void {
    this.forgetLease();
    this.asking = false;
    this.asks++;
    if (this.waiting.length > 0) this.drain();
  }

  /** Holds no lease from here on: no slots, no term, nothing told. */
  private forgetLease(): void {
    this.lent.clear();
    this.ends = 0;
    this.told = 0;
    clearTimeout(this.expiry);
  }

  /** Engine `id` left: no more tasks go there (the hub reruns or fails those that did). */
  forget(id: number): void {
    this.lent.delete(id);
  }

  /**
   * Sends waiting tasks to free slots while the lease lasts; renews it halfway through its term
   * while tasks come (telling the hub how many still wait), and asks anew once it ended.
   */
  private drain(): void {
    const now = performance.now();
    const wanted = this.waiting.length > 0;
    if (now < this.ends) this.fill();
    if (wanted && now > this.ends - this.term / 2) this.renew();
  }

  /** Sends waiting tasks to free slots, one message per engine. */
  private fill(): void {
    for (;;) {
      const byEngine = new Map<number, Task[]>();
      // In order: a task that finds no slot holds back those behind it.
      for (let id: number | undefined; this.waiting.length > 0; ) {
        const task = this.waiting[0];
        const source = 'source' in task.content ? task.content.source : undefined;
        const quick = source !== undefined && this.quickFunctions.has(source);
        id = this.place(quick);
        if (id === undefined) break;
        this.waiting.shift();
        const tasks = byEngine.get(id);
        if (tasks) tasks.push(task);
        else byEngine.set(id, [task]);
        this.busy.set(id, (this.busy.get(id) ?? 0) + 1);
        if (!quick) this.unsure.set(id, (this.unsure.get(id) ?? 0) + 1);
        this.placed.set(task.header.msg_id, { engineId: id, source, quick });
      }
      const unreachable = [...byEngine].filter(([id, tasks]) => !this.straight(tasks, id));
      if (unreachable.length === 0) return;
      // Those go to the other engines, in their order.
      for (const [id, tasks] of unreachable) {
        this.lent.delete(id);
        for (const t of tasks) this.unplace(t.header.msg_id);
      }
      this.waiting.unshift(...unreachable.flatMap(([, tasks]) => tasks));
    }
  }

  /**
   * The leased engine with the most free slots for a task, `quick` when its function is known
   * to run quick (see the file's comment), or `undefined` when none has room for it.
   */
  private place(quick: boolean): number | undefined {
    let best: number | undefined;
    let bestFree = 0;
    for (const [id, n] of this.lent) {
      const busy = this.busy.get(id) ?? 0;
      // Beyond the mark, only quick tasks queue, and only behind quick ones.
      if (busy >= this.mark && (!quick || (this.unsure.get(id) ?? 0) > 0)) continue;
      const free = n - busy;
      // Of engines as free, the one used last: it is awake and its code compiled, so a task
      // sent after one ended runs sooner there (as Ray reuses a leased worker): round trips
      // one at a time took 0.6 ms where alternating engines took 0.8-0.9.
      const later = best !== undefined && this.lastUsed(id) > this.lastUsed(best);
      if (free > bestFree || (free === bestFree && later)) [best, bestFree] = [id, free];
    }
    if (best !== undefined) this.used.set(best, ++this.placements);
    return best;
  }

  private lastUsed(id: number): number {
    return this.used.get(id) ?? 0;
  }

  /** Stops counting task `msgId` in its slot; returns how it was placed, if it was. */
  private unplace(msgId: string): Placed | undefined {
    const placed = this.placed.get(msgId);
    if (!placed) return undefined;
    this.placed.delete(msgId);
    const id = placed.engineId;
    this.busy.set(id, (this.busy.get(id) ?? 1) - 1);
    if (!placed.quick) this.unsure.set(id, (this.unsure.get(id) ?? 1) - 1);
    return placed;
  }

  /**
   * Asks the hub for a lease, replacing the one held; once at a time. `stale`: asked again as
   * the answer to the last ask came too late to use.
   */
  private renew(stale = false): void {
    if (this.asking) return;
    this.asking = true;
    const askedAt = performance.now();
    const ask = ++this.asks;
    this.told = this.waiting.length;
    this.ask(SLOTS_WANTED, this.told).then(
      ({ leases, term, mark }) => {
        if (ask !== this.asks) return;
        this.asking = false;
        this.term = term;
        this.mark = mark;
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
        if (ask !== this.asks) return;
        this.asking = false;
        this.refused(0);
      },
    );
  }

  /** No lease: what waits goes through the hub, and no lease is asked for `ms`. */
  private refused(ms: number): void {
    this.forgetLease();
    this.refusedUntil = performance.now() + ms;
    const waiting = this.waiting;
    this.waiting = [];
    for (const task of waiting) this.viaHub(task);
  }
}

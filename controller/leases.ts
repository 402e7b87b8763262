/**
 * Capacity the hub lends clients on engines (leases), so that a client's load-balanced tasks go
 * straight to engines while several clients still share them fairly: a leased slot counts as
 * load for the hub's scheduler (`RegisteredEngine.load`), a lease lasts one term unless renewed
 * or given back (its client does so once idle, see `client/leases.ts`), and the hub lends
 * nothing while tasks wait in its own queue, so a client that sends through the hub is never
 * starved by one that holds leases: at its next renewal, the holder is refused and sends
 * through the hub too, behind the tasks already waiting there.
 *
 * A lease lends as many slots on an engine as the hub itself would fill there with tasks known
 * to run under a millisecond (`quickDepth`, or the high-water mark where that is higher), and
 * tells the mark: its client queues no deeper than the mark a task not known quick, nor anything
 * behind one (see `client/leases.ts`), as the hub's queue does. Leases place by least load, so a
 * hub told another scheme lends none: every task then goes through its scheduler.
 */
import type { EngineRegistry } from './engine-registry';
import type { Clock } from './heartbeat';
import type { Scheme } from './schedulers/load-balanced';

/**
 * One client's lease: slots by engine id, when it ends on the hub's clock, and the tasks waiting
 * in the client for a slot when it asked.
 */
interface Lease {
  slots: Map<number, number>;
  ends: number;
  waiting: number;
}

/** Leases by client; see the file's comment. */
export class LeaseTable {
  /** By the client's ROUTER identity (hex). */
  private readonly byClient = new Map<string, Lease>();

  constructor(
    private readonly engines: EngineRegistry,
    /** The hub's settings: how long a lease lasts (a client renews it halfway through). */
    private readonly settings: {
      scheme: Scheme;
      hwm: number;
      quickDepth: number;
      leaseTerm: number;
    },
    private readonly clock: Clock,
  ) {}

  /** What a lease's client is told besides its slots: the term, and the high-water mark. */
  get terms(): { term: number; mark: number } {
    return { term: this.settings.leaseTerm, mark: this.settings.hwm };
  }

  /**
   * Replaces `client`'s lease with one of up to `slots` on each engine with room below the
   * lease's depth (its own old slots counting as room), for one term; lends nothing while
   * `queued` tasks wait in the hub's queue, or under a scheme other than least load. `waiting`:
   * the client's tasks waiting for a slot. Returns the slots lent, by engine id.
   */
  grant(client: Buffer, slots: number, queued: number, waiting: number): Record<string, number> {
    const key = client.toString('hex');
    const old = this.byClient.get(key);
    const { scheme, hwm, quickDepth } = this.settings;
    const depth = Math.max(hwm, quickDepth);
    const room = (id: number, committed: number): number =>
      depth - committed + (old?.slots.get(id) ?? 0);
    const lent = new Map<number, number>();
    if (queued === 0 && slots > 0 && scheme === 'leastload') {
      for (const e of this.engines.values()) {
        const n = Math.min(slots, room(e.id, e.committed));
        if (n > 0 && e.info.direct) lent.set(e.id, n);
      }
    }
    this.end(key);
    if (lent.size > 0) {
      for (const [id, n] of lent) this.engines.get(id)?.lease(n);
      const ends = this.clock.now() + this.settings.leaseTerm;
      this.byClient.set(key, { slots: lent, ends, waiting });
    }
    return Object.fromEntries(lent);
  }

  /** Tasks waiting in clients for a leased slot, as each client last told. */
  get waiting(): number {
    let n = 0;
    for (const lease of this.byClient.values()) n += lease.waiting;
    return n;
  }

  /** True while `client` holds a lease on engine `id`. */
  holds(client: Buffer, id: number): boolean {
    return this.byClient.get(client.toString('hex'))?.slots.has(id) ?? false;
  }

  /** `client` is gone: its slots are the scheduler's again at once. */
  clientGone(client: Buffer): void {
    this.end(client.toString('hex'));
  }

  /** Ends the leases past their term: their slots are the scheduler's again. */
  expire(): void {
    const now = this.clock.now();
    for (const [key, lease] of this.byClient) if (lease.ends <= now) this.end(key);
  }

  private end(key: string): void {
    const lease = this.byClient.get(key);
    if (!lease) return;
    this.byClient.delete(key);
    // A dropped engine took its slots with it.
    for (const [id, n] of lease.slots) this.engines.get(id)?.lease(-n);
  }
}

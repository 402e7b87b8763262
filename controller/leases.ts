/**
 * Capacity the hub lends clients on engines (leases), so that a client's load-balanced tasks go
 * straight to engines while several clients still share them fairly: a leased slot counts as
 * load for the hub's scheduler (`RegisteredEngine.load`), a lease lasts one term unless renewed
 * or given back (its client does so once idle, see `client/leases.ts`), and the hub lends
 * nothing while tasks wait in its own queue, so a client that sends through the hub is never
 * starved by one that holds leases: at its next renewal, the holder is refused and sends
 * through the hub too, behind the tasks already waiting there.
 */
import type { EngineRegistry } from './engine-registry';
import type { Clock } from './heartbeat';

/**
 * Slots a lease may fill on one engine where the high-water mark is lower. A leased task is
 * one its client chose to send straight for speed, so it may wait on its engine behind a few
 * others: with one slot, an engine idles for a whole round trip between tiny tasks, while with
 * several its next task is there when one ends, and tasks and replies that meet in one turn
 * travel together. A slow leased task holds up at most the few behind it on its engine.
 */
export const LEASE_DEPTH = 8;

/** One client's lease: slots by engine id, and when it ends on the hub's clock. */
interface Lease {
  slots: Map<number, number>;
  ends: number;
}

/** Leases by client; see the file's comment. */
export class LeaseTable {
  /** By the client's ROUTER identity (hex). */
  private readonly byClient = new Map<string, Lease>();

  constructor(
    private readonly engines: EngineRegistry,
    /** The high-water mark, and how long a lease lasts (a client renews it halfway through). */
    private readonly settings: { hwm: number; leaseTerm: number },
    private readonly clock: Clock,
  ) {}

  get term(): number {
    return this.settings.leaseTerm;
  }

  /**
   * Replaces `client`'s lease with one of up to `slots` on each engine with room below the
   * high-water mark or `LEASE_DEPTH`, whichever is higher (its own old slots counting as room),
   * for one term; lends nothing while `waiting` tasks wait in the hub's queue. Returns the slots
   * lent, by engine id.
   */
  grant(client: Buffer, slots: number, waiting: number): Record<string, number> {
    const key = client.toString('hex');
    const old = this.byClient.get(key);
    const depth = Math.max(this.settings.hwm, LEASE_DEPTH);
    const room = (id: number, committed: number): number =>
      depth - committed + (old?.slots.get(id) ?? 0);
    const lent = new Map<number, number>();
    if (waiting === 0 && slots > 0) {
      for (const e of this.engines.values()) {
        const n = Math.min(slots, room(e.id, e.committed));
        if (n > 0 && e.info.direct) lent.set(e.id, n);
      }
    }
    this.end(key);
    if (lent.size > 0) {
      for (const [id, n] of lent) this.engines.get(id)?.lease(n);
      this.byClient.set(key, { slots: lent, ends: this.clock.now() + this.term });
    }
    return Object.fromEntries(lent);
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

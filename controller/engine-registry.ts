/**
 * The engines the hub knows: those that registered and await their first heartbeat, those that
 * joined, and why recently dropped ones were dropped. Each engine keeps its own counts of the
 * tasks it holds, changed only by `take` and `release`, which tell the registry's watcher (the
 * load-balanced queue, whose room for picks follows every change).
 */
import type { ContentMap, EngineInfo, EngineUsage, QueueCounts } from '../protocol/messages';
import { declaredResources, shortOf, type Resources } from '../protocol/resources';
import type { EngineLoad } from './schedulers/load-balanced';

/** Dropped engines whose reason the registry remembers. */
const DROPPED_MEMORY = 1000;
/** Quick replies an engine must give after a slow one before it counts as quick again. */
const QUICK_AFTER_SLOW = 8;

/**
 * How an engine came to hold a task: sent to it by name (a direct view), placed by the hub's
 * scheduler, or sent straight by a client under a lease (see `leases.ts`).
 */
export type Hold = 'named' | 'balanced' | 'leased';

/** One registered engine and the tasks it holds; what a scheduling scheme looks at. */
export class RegisteredEngine implements EngineLoad {
  /** Tasks sent to the engine and not finished, in the order sent, each with how. */
  private readonly held = new Map<string, Hold>();
  private readonly holding: Record<Hold, number> = { named: 0, balanced: 0, leased: 0 };
  /** Slots on it that clients hold leases on. */
  private leasedSlots = 0;
  /** Tasks it holds that were not known to be quick when sent. */
  private readonly unsure = new Set<string>();
  /** Quick replies still to come before a slow one is forgotten. */
  private slowLately = 0;
  private replied = 0;
  private lastTaken = 0;
  /** What the engine's latest heartbeat said of its process. */
  private usage: EngineUsage | undefined;
  /**
   * The identities its heartbeats come with, which route control messages to it: its own
   * identity, or behind its process's when it shares the process's link (engine/shared-link.ts).
   */
  controlRoute: Buffer[];
  /** The resources each held task that asked for some occupies. */
  private readonly occupying = new Map<string, Resources>();
  /** Their sum, by name; a name leaves when nothing occupies it. */
  private readonly inUse: Resources = {};

  constructor(
    readonly info: EngineInfo,
    /** The identities the engine's messages come with, which route the hub's to it. */
    readonly route: Buffer[],
    /** Told after each change of the engine's load. */
    private readonly changed: (engine: RegisteredEngine) => void,
  ) {
    this.controlRoute = [this.uuid];
  }

  get id(): number {
    return this.info.id;
  }
  /** The engine's own identity, as its heartbeats carry it (see `engineIdentity`). */
  get uuid(): Buffer {
    return engineIdentity(this.route);
  }
  /**
   * Load-balanced tasks it holds, counting its leased slots as busy: tasks under a lease fill
   * those slots, and outlast them when the lease ended first.
   */
  get load(): number {
    return this.holding.balanced + Math.max(this.leasedSlots, this.holding.leased);
  }
  /**
   * What leases may not lend on it: the load-balanced tasks the hub placed there and the slots
   * lent already. Leased tasks in flight are not counted: the hub learns of them and of their
   * replies late, from two processes apart, so its count of them runs ahead of the truth while
   * a client keeps its slots full, and they are bounded by the slots they were sent under.
   */
  get committed(): number {
    return this.holding.balanced + this.leasedSlots;
  }
  get lastAssigned(): number {
    return this.lastTaken;
  }
  /**
   * Whether every task it holds was known to be quick when sent and its recent replies were
   * quick too: a task queued behind those waits well under a millisecond for each.
   */
  get quick(): boolean {
    return this.unsure.size === 0 && this.slowLately === 0;
  }
  /** Tasks it holds, in the order sent. */
  get outstanding(): string[] {
    return [...this.held.keys()];
  }
  /** Its numbers for `queue_status_request`. */
  get counts(): QueueCounts {
    return {
      queue: this.held.size,
      completed: this.replied,
      tasks: this.holding.balanced + this.holding.leased,
      usage: this.usage,
      ...(this.occupying.size > 0 && { resources_in_use: { ...this.inUse } }),
    };
  }

  /** What the engine declared it holds. */
  get resources(): Resources {
    return this.info.resources;
  }

  /** The names of `asked` that the engine does not have free now; empty when it fits. */
  notFree(asked: Resources): string[] {
    const free: Resources = { ...this.resources };
    for (const name in this.inUse) free[name] -= this.inUse[name];
    return shortOf(free, asked);
  }

  /**
   * A heartbeat came with `identities` (see `controlRoute`), reporting `usage` of the engine's
   * CPU and memory.
   */
  beat(identities: Buffer[], usage: EngineUsage | undefined): void {
    this.controlRoute = identities;
    if (usage) this.usage = usage;
  }

  /**
   * Counts a task sent to it, occupying `resources` until it ends; `order` says how recent (see
   * `EngineLoad.lastAssigned`), `quick` whether its function is known to run quick.
   */
  take(msgId: string, hold: Hold, order: number, resources?: Resources, quick = false): void {
    this.held.set(msgId, hold);
    this.holding[hold]++;
    if (!quick) this.unsure.add(msgId);
    if (resources && Object.keys(resources).length > 0) {
      this.occupying.set(msgId, resources);
      for (const name in resources) this.inUse[name] = (this.inUse[name] ?? 0) + resources[name];
    }
    this.lastTaken = order;
    this.changed(this);
  }

  /** Lends (`slots` > 0) or takes back leased slots on it. */
  lease(slots: number): void {
    this.leasedSlots += slots;
    this.changed(this);
  }

  /**
   * Stops counting a task: it answered (`replied`, `quick` when its engine said it ran under a
   * millisecond), or the hub ended it.
   */
  release(msgId: string, replied: boolean, quick = false): void {
    const hold = this.held.get(msgId);
    if (hold === undefined) return;
    this.held.delete(msgId);
    this.holding[hold]--;
    this.unsure.delete(msgId);
    if (replied) {
      this.replied++;
      this.slowLately = quick ? Math.max(0, this.slowLately - 1) : QUICK_AFTER_SLOW;
    }
    const resources = this.occupying.get(msgId);
    if (resources) {
      this.occupying.delete(msgId);
      for (const name in resources) {
        const left = this.inUse[name] - resources[name];
        // Fractions (gpu=0.1) need not sum back to exactly 0.
        if (left > 1e-9) this.inUse[name] = left;
        else delete this.inUse[name];
      }
    }
    this.changed(this);
  }
}

/**
 * An engine's own identity among the identities its messages on the task socket come with: the
 * last. Lightweight engines hosted in one process share its connection (see
 * engine/shared-link.ts), whose identity comes first.
 */
export function engineIdentity(route: Buffer[]): Buffer {
  return route[route.length - 1];
}

/** Told of a live engine (`live`) when it joins and whenever its load changes, and of its drop. */
export type EngineWatcher = (engine: RegisteredEngine, live: boolean) => void;

/** The hub's engines, by id and by ROUTER identity; see the file's comment. */
export class EngineRegistry {
  private readonly live = new Map<number, RegisteredEngine>();
  /** Joined engines' ids by identity (hex). */
  private readonly byKey = new Map<string, number>();
  /** Engines that registered and have not sent their first heartbeat yet, by identity. */
  private readonly joining = new Map<string, RegisteredEngine>();
  /** Why recently dropped engines were dropped, by identity, to tell them when they beat again. */
  private readonly dropped = new Map<string, string>();
  private sent = 0;
  private watcher: EngineWatcher = () => {};

  /** Live engines by id, in the order they joined. */
  values(): IterableIterator<RegisteredEngine> {
    return this.live.values();
  }
  get size(): number {
    return this.live.size;
  }
  get ids(): number[] {
    return [...this.live.keys()];
  }
  get(id: number): RegisteredEngine | undefined {
    return this.live.get(id);
  }
  has(id: number): boolean {
    return this.live.has(id);
  }
  /** Live engines, ascending by id. */
  get infos(): EngineInfo[] {
    return [...this.live.values()].map((e) => e.info).sort((a, b) => a.id - b.id);
  }

  /** Tells `watcher` of the live engines now, and from now on of every change (one watcher). */
  watch(watcher: EngineWatcher): void {
    this.watcher = watcher;
    for (const e of this.live.values()) watcher(e, true);
  }

  /** The id of the joined engine with this identity. */
  joinedId(identity: Buffer): number | undefined {
    return this.byKey.get(identity.toString('hex'));
  }

  /** The id of the engine with this identity, joined or still joining. */
  idOf(identity: Buffer): number | undefined {
    const key = identity.toString('hex');
    return this.byKey.get(key) ?? this.joining.get(key)?.id;
  }

  /**
   * The engine registering from `route` (see `RegisteredEngine.route`): the one already known
   * there, or a new one that joins at its first heartbeat (`isNew`), with id `newId()`.
   */
  register(
    route: Buffer[],
    content: ContentMap['registration_request'],
    newId: () => number,
    registered: string,
  ): { engine: RegisteredEngine; isNew: boolean } {
    const key = engineIdentity(route).toString('hex');
    const known = this.joining.get(key) ?? this.live.get(this.byKey.get(key) ?? -1);
    if (known) return { engine: known, isNew: false };
    const { uuid, pid, hostname, engine_set, mpi, shared_memory, direct } = content;
    const info = {
      id: newId(),
      uuid,
      pid,
      hostname,
      registered,
      engine_set,
      mpi,
      shared_memory,
      direct,
      resources: declaredResources(content.resources),
    };
    const engine = new RegisteredEngine(info, route, (e) => {
      if (this.live.get(e.id) === e) this.watcher(e, true);
    });
    this.dropped.delete(key);
    this.joining.set(key, engine);
    return { engine, isNew: true };
  }

  /** The engine joining from `identity`, now joined; `undefined` if none was joining there. */
  join(identity: Buffer): RegisteredEngine | undefined {
    const key = identity.toString('hex');
    const engine = this.joining.get(key);
    if (!engine) return undefined;
    this.joining.delete(key);
    this.live.set(engine.id, engine);
    this.byKey.set(key, engine.id);
    this.watcher(engine, true);
    return engine;
  }

  /** Why the engine at `identity` was dropped, if it was lately. */
  droppedReason(identity: Buffer): string | undefined {
    return this.dropped.get(identity.toString('hex'));
  }

  /**
   * Counts a task sent to `engine`, and the resources it occupies there; `quick` when its
   * function is known to run quick.
   */
  assign(
    engine: RegisteredEngine,
    msgId: string,
    hold: Hold,
    resources?: Resources,
    quick = false,
  ): void {
    engine.take(msgId, hold, ++this.sent, resources, quick);
  }

  /**
   * Forgets engine `id`, remembering why; returns it if it had joined (an engine that never
   * beat holds no tasks and nobody was told it joined).
   */
  drop(id: number, reason: string): RegisteredEngine | undefined {
    for (const [key, e] of this.joining) {
      if (e.id !== id) continue;
      this.joining.delete(key);
      this.rememberDropped(key, id, reason);
    }
    const engine = this.live.get(id);
    if (!engine) return undefined;
    const key = engine.uuid.toString('hex');
    this.live.delete(id);
    this.byKey.delete(key);
    this.watcher(engine, false);
    this.rememberDropped(key, id, reason);
    return engine;
  }

  /** Keeps why an engine was dropped, to tell it if it beats again; bounded. */
  private rememberDropped(key: string, id: number, reason: string): void {
    this.dropped.set(key, `engine ${id} was dropped: ${reason}`);
    for (const k of this.dropped.keys()) {
      if (this.dropped.size <= DROPPED_MEMORY) break;
      this.dropped.delete(k);
    }
  }
}

/**
 * Load-balanced placement: tasks wait here, in submission order, until their `after` and
 * `follow` dependencies allow and an engine they may run on has room below the high-water mark
 * and, for a task that asks for resources, has them free; the scheme then picks the engine. A
 * task asking for more than any live engine holds fails with `ResourceError` at once, and again
 * when the engine that held it leaves (while no engine at all is registered, tasks wait). A task
 * whose engine died comes back here while it has retries left.
 *
 * Quick depth: with the high-water mark at 1, an engine waits a whole round trip through the hub
 * (about a millisecond) between two tiny tasks, which caps two engines near 2,000 tasks a second.
 * So while tasks wait and every engine is at the mark, a task whose function's latest run took
 * under a millisecond (its engine says so in the reply) may queue beyond the mark, up to
 * `quickDepth`, on an engine that holds only such tasks and replied slow to none of its latest
 * few: what it queues behind costs it well under a millisecond each. A task not known to be quick,
 * or one that asks for resources or particular engines, keeps the mark, and nothing queues beyond
 * the mark behind it.
 */
import type { ConditionName } from '../../protocol/errors';
import type { ErrorContent } from '../../protocol/messages';
import { QuickFunctions } from '../../protocol/quick-functions';
import { shortOf, unsatisfiable, type Resources } from '../../protocol/resources';
import type { EngineRegistry, RegisteredEngine } from '../engine-registry';
import { isFinal, type TaskRecord, type TaskRecordStore } from '../task-records';
import { newRoom, schemes, type Room, type Scheme } from './load-balanced';

/** What the queue does with a task it placed or gave up on. */
export interface Placement {
  /** Sends the task to `engine`. */
  send(r: TaskRecord, engine: RegisteredEngine): void;
  /** Ends the task with an error the hub raises, `cause` the error that made it. */
  fail(r: TaskRecord, ename: ConditionName, evalue: string, cause?: ErrorContent['cause']): void;
}

/** The waiting load-balanced tasks; see the file's comment. */
export class TaskQueue {
  private readonly waiting = new Map<string, TaskRecord>();
  /**
   * Direct tasks waiting for the tasks whose results they take: each goes to its one engine as
   * soon as those finish, whatever the load-balanced tasks' room.
   */
  private readonly waitingDirect = new Map<string, TaskRecord>();
  /**
   * Tasks whose dependencies have not all ended, with how many have not, kept out of the passes
   * (a long chain would make each pass look at every link); `ended` lets them in.
   */
  private readonly parked = new Map<string, { r: TaskRecord; unended: number }>();
  /** The parked tasks waiting for each task, by its id. */
  private readonly waitedFor = new Map<string, string[]>();
  /** The live engines with room below the high-water mark, as the scheme picks them. */
  private readonly room: Room<RegisteredEngine>;
  /** The live quick engines at or above the mark with room below `quickDepth` (see above). */
  private readonly deepRoom: Room<RegisteredEngine>;
  private readonly quickFunctions = new QuickFunctions();
  /**
   * An engine left, or a task failed, since the last pass: tasks asking for resources it held,
   * or waiting for the failed task, may now fail.
   */
  private recheck = false;
  /**
   * Within one pass, the resource requests (of tasks free to go anywhere) that found no engine
   * with them free: later tasks asking the same wait without a look at every engine.
   */
  private readonly blocked = new Set<string>();
  /** Within one pass, whether a quick task may still queue deep: no plain task had to wait. */
  private deepOpen = true;

  constructor(
    private readonly engines: EngineRegistry,
    private readonly records: TaskRecordStore,
    private readonly settings: { scheme: Scheme; hwm: number; quickDepth: number },
    private readonly placement: Placement,
  ) {
    this.room = newRoom(settings.scheme);
    this.deepRoom = newRoom(settings.scheme);
    engines.watch((e, live) => {
      if (live && e.load < settings.hwm) this.room.set(e);
      else this.room.delete(e);
      if (live && e.load >= settings.hwm && e.load < settings.quickDepth && e.quick) {
        this.deepRoom.set(e);
      } else {
        this.deepRoom.delete(e);
      }
      if (!live) this.recheck = true;
    });
  }

  /** Whether task `r`'s function is known to run quick: its latest run took under 1 ms. */
  isQuick(r: TaskRecord): boolean {
    const { content } = r.request;
    return 'source' in content && this.quickFunctions.has(content.source);
  }

  /** Task `r` ran on an engine, `quick` when its run took under a millisecond. */
  ran(r: TaskRecord, quick: boolean): void {
    const { content } = r.request;
    if ('source' in content) this.quickFunctions.ran(content.source, quick);
  }

  /** Tasks waiting for an engine or their dependencies. */
  get size(): number {
    return this.waiting.size + this.waitingDirect.size + this.parked.size;
  }

  /**
   * Queues a task that has not run; it is placed at the next `schedule` once the tasks it
   * depends on have ended.
   */
  add(r: TaskRecord): void {
    const unended = [...(r.options.after ?? []), ...(r.options.follow ?? [])].filter((dep) => {
      const d = this.records.get(dep);
      return d !== undefined && !isFinal(d.state);
    });
    if (unended.length === 0) {
      this.ready(r);
      return;
    }
    this.parked.set(r.msgId, { r, unended: unended.length });
    for (const dep of unended) {
      const waiting = this.waitedFor.get(dep);
      if (waiting) waiting.push(r.msgId);
      else this.waitedFor.set(dep, [r.msgId]);
    }
  }

  /** Task `msgId` ended: the parked tasks that waited for it alone are placed from now on. */
  ended(msgId: string): void {
    const waiting = this.waitedFor.get(msgId);
    if (!waiting) return;
    this.waitedFor.delete(msgId);
    for (const id of waiting) {
      const p = this.parked.get(id);
      if (p && --p.unended === 0) {
        this.parked.delete(id);
        this.ready(p.r);
      }
    }
  }

  private ready(r: TaskRecord): void {
    (r.options.balanced ? this.waiting : this.waitingDirect).set(r.msgId, r);
  }

  /** Takes a waiting task out of the queue; false if it was not waiting. */
  remove(msgId: string): boolean {
    return (
      this.waiting.delete(msgId) || this.waitingDirect.delete(msgId) || this.parked.delete(msgId)
    );
  }

  /** A task failed or was aborted: the tasks waiting for it fail at the next pass. */
  dependencyFailed(): void {
    this.recheck = true;
  }

  /**
   * A task whose engine is gone, or whose controller was: queued again, spending a retry, when
   * it is load-balanced and has one left; otherwise failed with `EngineError` saying `why`.
   */
  retryOrFail(r: TaskRecord, why: string): void {
    if (r.options.balanced && r.retriesLeft > 0) {
      this.records.requeue(r);
      this.waiting.set(r.msgId, r);
    } else {
      this.placement.fail(r, 'EngineError', why);
    }
  }

  /** Places waiting tasks on engines with room, in submission order. */
  schedule(): void {
    const recheck = this.recheck;
    this.recheck = false;
    this.blocked.clear();
    this.deepOpen = true;
    for (const r of this.waitingDirect.values()) {
      if (this.tryPlace(r) !== undefined) this.waitingDirect.delete(r.msgId);
    }
    for (const r of this.waiting.values()) {
      // Once no engine has room, nothing further down the queue can be placed: stop looking, so
      // that a long queue costs nothing per finished task; unless an engine left, as tasks
      // asking for what it held must fail now. A quick task may still queue deep, but no task
      // overtakes one that may not.
      const deep = this.deepOpen && this.deepRoom.size > 0 && this.mayGoDeep(r);
      if (this.room.size === 0 && !recheck && !deep) break;
      if (this.tryPlace(r) !== undefined) this.waiting.delete(r.msgId);
    }
  }

  /**
   * The engine the task was sent to, `null` when it failed for good (both leave the queue), or
   * `undefined` when it must wait.
   */
  private tryPlace(r: TaskRecord): RegisteredEngine | null | undefined {
    const deps = [...(r.options.after ?? []), ...(r.options.follow ?? [])];
    for (const dep of deps) {
      const d = this.records.get(dep);
      if (!d) {
        this.placement.fail(r, 'DependencyError', `dependency ${dep} is unknown to the hub`);
        return null;
      }
      if (d.state === 'failed' || d.state === 'aborted') {
        const reply = d.reply?.content;
        const cause = reply?.status === 'error' ? causeOf(reply) : undefined;
        this.placement.fail(
          r,
          'DependencyError',
          `dependency ${dep} did not succeed (${d.state}${cause ? `: ${cause.ename}: ${cause.evalue}` : ''})`,
          cause,
        );
        return null;
      }
      if (d.state !== 'completed') return undefined;
    }
    if (!r.options.balanced) {
      // A direct task whose dependencies are met goes to its one engine.
      const id = r.options.targets?.[0];
      const engine = id === undefined ? undefined : this.engines.get(id);
      if (!engine) {
        this.placement.fail(
          r,
          'EngineError',
          `engine ${String(id)} is not registered; live engines: ${this.engines.ids.join(', ') || 'none'}`,
        );
        return null;
      }
      this.placement.send(r, engine);
      return engine;
    }
    let allowed: Set<number> | undefined = r.options.targets
      ? new Set(r.options.targets)
      : undefined;
    for (const dep of r.options.follow ?? []) {
      const at = this.records.get(dep)?.engineId;
      allowed = new Set([...(allowed ?? [at as number])].filter((id) => id === at));
    }
    if (allowed && ![...allowed].some((id) => this.engines.has(id))) {
      if (r.options.follow?.length || this.engines.size > 0) {
        this.placement.fail(
          r,
          'DependencyError',
          `none of the engines this task may run on (${[...allowed].join(', ')}) is alive`,
        );
        return null;
      }
      return undefined;
    }
    const asked = r.options.resources;
    const wants = asked && Object.keys(asked).length > 0 ? asked : undefined;
    if (!allowed && !wants) {
      let chosen = this.room.pick();
      if (!chosen && this.deepOpen && this.isQuick(r)) chosen = this.deepRoom.pick();
      if (chosen) this.placement.send(r, chosen);
      else this.deepOpen = false;
      return chosen;
    }
    const shape = !allowed && wants ? JSON.stringify(wants) : undefined;
    if (shape !== undefined && this.blocked.has(shape)) return undefined;
    const live: RegisteredEngine[] = [];
    for (const id of allowed ?? this.engines.ids) {
      const e = this.engines.get(id);
      if (e) live.push(e);
    }
    if (wants && this.engines.size > 0 && this.failsIfUnholdable(r, wants, live)) return null;
    const { hwm, scheme } = this.settings;
    const candidates = live.filter(
      (e) => e.load < hwm && (!wants || e.notFree(wants).length === 0),
    );
    if (candidates.length === 0) {
      if (shape !== undefined) this.blocked.add(shape);
      return undefined;
    }
    const chosen = schemes[scheme](candidates);
    this.placement.send(r, chosen);
    return chosen;
  }

  /** Whether task `r` may queue beyond the mark: quick, and free to go to any engine. */
  private mayGoDeep(r: TaskRecord): boolean {
    const { targets, follow, resources } = r.options;
    return (
      !targets && !follow?.length && Object.keys(resources ?? {}).length === 0 && this.isQuick(r)
    );
  }

  /**
   * Fails task `r` with `ResourceError` when none of the live engines it may run on holds what
   * it asks, even with nothing else running; true when it did.
   */
  private failsIfUnholdable(r: TaskRecord, asked: Resources, live: RegisteredEngine[]): boolean {
    if (live.some((e) => shortOf(e.resources, asked).length === 0)) return false;
    // Name what no engine holds enough of; when each is somewhere, but never together, all.
    const nowhere = Object.keys(asked).filter((name) =>
      live.every((e) => shortOf(e.resources, { [name]: asked[name] }).length > 0),
    );
    const short = nowhere.length > 0 ? nowhere : Object.keys(asked);
    this.placement.fail(r, 'ResourceError', unsatisfiable(asked, short, live));
    return true;
  }
}

/** A failed dependency's error, as the cause of its dependant's. */
function causeOf(reply: ErrorContent): ErrorContent['cause'] {
  const { ename, evalue, traceback, engine_id, cause } = reply;
  return {
    ename,
    evalue,
    traceback,
    ...(engine_id !== undefined && { engine_id }),
    ...(cause && { cause }),
  };
}

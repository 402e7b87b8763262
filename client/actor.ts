/**
 * Actors (Ray's): an instance of a class that lives on one engine between calls. The class
 * travels as source and its constructor runs once, on the engine the view places it on; each
 * method call is a task sent straight to that engine, which runs its tasks one at a time in the
 * order they arrive, so the calls run in call order and each sees the state the ones before it
 * left. The engine's side is engine/actors.ts; the views make actors through an `ActorPort`.
 */
import { randomUUID } from 'node:crypto';
import {
  ActorReleasedError,
  CompositeError,
  DependencyError,
  EngineError,
} from '../protocol/errors';
import {
  AsyncResult,
  joins,
  resultAwaited,
  type ResultOptions,
  type TaskState,
} from './async-result';

/** What an actor's handle has besides the methods of its class. */
export interface ActorHandle {
  /** The engine the instance lives on; another one after a restart. */
  readonly engineId: number;
  /** The class's name. */
  readonly className: string;
  /**
   * Drops the instance on its engine, after the calls made before; a call made after fails with
   * `ActorReleasedError`. Resolves once the engine dropped it (at once if the engine is gone).
   */
  release(): Promise<void>;
}

/**
 * The result of another task as an argument: an `AsyncResult`, or an actor's call. The task
 * waits for it and gets its value, which goes engine to engine (or from the client, for a value
 * the client assembles anyway: see `AsyncResult.asArgument`).
 */
export type TaskResult<T> = AsyncResult<T> | ActorCall<T>;

/** A call's arguments: each may be the result of another task, whose value the method gets. */
export type ActorArgs<A extends unknown[]> = { [K in keyof A]: A[K] | TaskResult<A[K]> };

/**
 * The public methods of `T`, each calling the instance on its engine: `(...a) => R` becomes
 * `(...a) => ActorCall<Awaited<R>>` (a promise), any argument of which may be the result of
 * another task or call. A method named
 * like a member of `ActorHandle`, or `then` (which would make the handle look like a promise),
 * cannot be called through it.
 */
export type ActorMethods<T> = {
  [K in keyof T as T[K] extends (...args: never[]) => unknown
    ? Exclude<K, keyof ActorHandle | 'then'>
    : never]: T[K] extends (...args: infer A) => infer R
    ? (...args: ActorArgs<A>) => ActorCall<Awaited<R>>
    : never;
};

/**
 * An instance of `T` on one engine, from `lv.actor(Class, ...args)` or `dv.actor(...)`. Calls
 * may be made without awaiting the ones before: they still run in call order. A call given the
 * result of another task waits for it (a `DependencyError` if it failed), and the calls after it
 * wait for that call, so that none passes another; the value goes to the engine as for `apply`.
 * A call's own result may be an argument of other tasks and calls (see `ActorCall`). A method that
 * throws rejects with `RemoteError`, and the actor lives on. If its engine dies, pending and
 * later calls reject with `EngineError`, unless the view has `restarts`: then a fresh instance
 * is built elsewhere (its constructor run again with the same arguments; the state is lost),
 * and the calls that were pending run on it again, in order, before the later ones.
 * @example const counter = await lv.actor(Counter, 10); await counter.add(5); // 15
 */
export type Actor<T> = ActorMethods<T> & ActorHandle;

/** What the panel shows of an actor, live as calls finish and restarts move it. */
export interface ActorInfo {
  readonly className: string;
  readonly engineId: number;
  /** Calls that finished, well or not. */
  readonly callsDone: number;
}

/** What an actor needs of the view that made it. */
export interface ActorPort {
  /** Sends `fn(...args)` as a task to the engine the view places it on (a direct view's target). */
  place(fn: (...args: never[]) => unknown, args: unknown[]): TaskState;
  /** Sends `fn(...args)` as a task straight to engine `engineId`, as one of `actor`'s tasks. */
  call(
    actor: ActorInfo,
    engineId: number,
    fn: (...args: never[]) => unknown,
    args: unknown[],
  ): TaskState;
  /**
   * Resolves once this client knows engine `engineId`: calls sent before it did would go
   * through the hub and later ones straight to the engine, and could pass each other.
   */
  learn(engineId: number): Promise<void>;
  /** How a call's task, once awaited, is aborted and shown in a notebook: the view's way. */
  readonly results: ResultOptions;
}

/**
 * Builds an actor of `Class` where `port` places it; rejects with the constructor's error, or
 * `TypeError` for something that is not a class.
 */
export async function makeActor<A extends unknown[], T extends object>(
  port: ActorPort,
  Class: new (...args: A) => T,
  args: A,
  restarts: number,
): Promise<Actor<T>> {
  const name = Class.name || '(anonymous class)';
  const core = new ActorCore(port, name, classSource(Class), args, restarts);
  await core.build();
  return handleOf<T>(core);
}

/**
 * Actors of `Class`, one per port (one per target of a direct view), built together. When some
 * fail, the others are released and the failure thrown (a `CompositeError` for several ports).
 */
export async function makeActors<A extends unknown[], T extends object>(
  ports: ActorPort[],
  Class: new (...args: A) => T,
  args: A,
): Promise<Actor<T>[]> {
  const built = await Promise.allSettled(ports.map((port) => makeActor(port, Class, args, 0)));
  const errors = built.flatMap((b) => (b.status === 'rejected' ? [b.reason as Error] : []));
  const actors = built.flatMap((b) => (b.status === 'fulfilled' ? [b.value] : []));
  if (errors.length === 0) return actors;
  await Promise.allSettled(actors.map((a) => a.release()));
  throw ports.length === 1 ? errors[0] : new CompositeError(errors);
}

/** The source an engine evaluates to `Class`; refuses what is not a class. */
function classSource(Class: unknown): string {
  const src = typeof Class === 'function' ? Function.prototype.toString.call(Class) : '';
  if (!/^class\b/.test(src)) {
    const what =
      typeof Class === 'function' ? `function ${Class.name || '(anonymous)'}` : typeof Class;
    throw new TypeError(
      `actor needs a class, e.g. lv.actor(class Counter { n = 0; add(k: number) { return (this.n += k); } }), got ${what}`,
    );
  }
  return src;
}

/** One call of an actor, kept until it ends; `method` undefined stands for the release. */
interface Call {
  /** Call order, which a restart keeps when it sends pending calls again. */
  seq: number;
  method: string | undefined;
  args: unknown[];
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  /** The call's task while it is sent; cleared when its engine died and a restart sends it again. */
  attempt: AsyncResult<unknown> | undefined;
  /**
   * What a task taking this call's result waits for: the call's task once it is the one the call
   * ends with (sent where no restart could send it again, or ended), or the error such a task
   * fails with when the call ended without one. Set once; `settled` is told then.
   */
  final: AsyncResult<unknown> | DependencyError | undefined;
  settled: (() => void)[];
  /** Code awaits the call's promise: its task brings the value back (see `TaskState.asked`). */
  asked: boolean;
  /** Settles the promise with the value, once the call ended well and code awaits it. */
  deliver: (() => void) | undefined;
}

/**
 * What an actor's method call returns: a promise of the method's value, which may also be an
 * argument of other tasks and calls as an `AsyncResult` may (`lv.apply(fn, counter.add(1))`):
 * they wait for the call, and its value goes engine to engine. Awaiting it announces the call's
 * task on `resultAwaited`, as awaiting an `AsyncResult` does: a notebook shows its progress, and
 * aborts it when the cell is interrupted.
 */
export class ActorCall<T> extends Promise<T> {
  // The promises `then` makes are plain ones: only the call's own announces.
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  private call: Call | undefined;
  private progress = true;

  /** Announces `call`'s task when this promise is awaited; `progress`: the view's option. */
  watch(call: Call, progress: boolean): void {
    this.call = call;
    this.progress = progress;
  }

  override then<A = T, B = never>(
    onfulfilled?: ((value: T) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    const call = this.call;
    if (call && !call.asked) {
      call.asked = true;
      call.attempt?.ask();
      call.deliver?.();
    }
    const result = call?.attempt;
    if (result && !result.ready()) resultAwaited.announce({ result, progress: this.progress });
    return super.then(onfulfilled, onrejected);
  }

  /**
   * The call's task as another task's argument: its result once it is the task the call ends
   * with, a promise of it until then (a call held behind others, or on an actor that a restart
   * may rebuild, is not sent, or not for good, yet), rejected with `DependencyError` when the
   * call ended without a task. The promise holds it in an object: a promise resolved with an
   * `AsyncResult`, a thenable, would wait for its value instead.
   * @internal
   */
  asResult(): AsyncResult<T> | Promise<{ result: AsyncResult<T> }> {
    const call = this.call as Call;
    if (call.final instanceof AsyncResult) return call.final as AsyncResult<T>;
    return new Promise((resolve, reject) => {
      const told = (): void =>
        call.final instanceof AsyncResult
          ? resolve({ result: call.final as AsyncResult<T> })
          : reject(call.final);
      if (call.final) told();
      else call.settled.push(told);
    });
  }
}

/** An actor's state on this side: where it lives, its calls in flight, its restarts. */
class ActorCore implements ActorInfo {
  /** The instance's id on its engine; a rebuilt instance has a new one. */
  private id = '';
  engineId = -1;
  callsDone = 0;
  private nextSeq = 0;
  private readonly inFlight = new Set<Call>();
  /** Calls waiting for the rebuilt instance, while `rebuilding`. */
  private held: Call[] = [];
  /**
   * The engine died and a restart is under way: `waiting` for the calls sent to it to end,
   * then `building` the new instance.
   */
  private rebuilding: 'waiting' | 'building' | undefined;
  private released = false;
  /** Set once the engine died and no restart is left (or one failed): every later call fails. */
  private lost: Error | undefined;
  /**
   * A call given results goes through the hub, which holds it until they are ready, while other
   * calls go straight to the engine: it goes alone, once the calls before it ended, and the calls
   * after it wait in `held` until it ends.
   */
  private alone: Call | undefined;

  constructor(
    private readonly port: ActorPort,
    readonly className: string,
    private readonly source: string,
    /** The constructor's arguments, kept while a restart may need them. */
    private args: unknown[] | undefined,
    private restartsLeft: number,
  ) {}

  /** Builds an instance where the port places it and makes it this actor's. */
  async build(): Promise<void> {
    const id = randomUUID();
    const task = this.port.place(createOnEngine, [id, this.source, this.args ?? []]);
    await task.whenFinished;
    if (task.error) throw task.error;
    const engineId = task.metadata.engineId as number;
    await this.port.learn(engineId);
    this.id = id;
    this.engineId = engineId;
    if (this.restartsLeft === 0) this.args = undefined;
  }

  call(method: string, args: unknown[]): ActorCall<unknown> {
    return this.enqueue(method, args);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.lost) return;
    await this.enqueue(undefined, []);
  }

  private enqueue(method: string | undefined, args: unknown[]): ActorCall<unknown> {
    // The executor runs at once, so `settle` is set when the constructor returns.
    let settle!: Pick<Call, 'resolve' | 'reject'>;
    const promise = new ActorCall((resolve, reject) => (settle = { resolve, reject }));
    const call: Call = {
      seq: this.nextSeq++,
      method,
      args,
      ...settle,
      attempt: undefined,
      final: undefined,
      settled: [],
      asked: false,
      deliver: undefined,
    };
    promise.watch(call, this.port.results.progress !== false);
    if (this.released && method !== undefined) {
      this.refuse(
        call,
        new ActorReleasedError(
          `${this.className}.${method}: the actor was released; make a new one with view.actor(...)`,
        ),
      );
    } else if (this.lost) {
      this.refuse(call, this.lost);
    } else {
      this.dispatch(call);
    }
    return promise;
  }

  private dispatch(call: Call): void {
    if (this.rebuilding) {
      this.held.push(call);
      this.rebuildWhenIdle();
      return;
    }
    if (this.lost) {
      this.end(call, this.lost);
      return;
    }
    if (
      this.alone === undefined &&
      call.args.some((a) => a instanceof AsyncResult || a instanceof ActorCall)
    ) {
      this.alone = call;
    }
    const alone = this.alone;
    if (alone && (call.seq > alone.seq || (call === alone && this.inFlight.size > 0))) {
      this.held.push(call);
      return;
    }
    let task: TaskState;
    try {
      task =
        call.method === undefined
          ? this.port.call(this, this.engineId, releaseOnEngine, [this.id])
          : this.port.call(this, this.engineId, callOnEngine, [this.id, call.method, ...call.args]);
    } catch (e) {
      // Arguments that cannot travel fail their call only.
      this.end(call, e as Error);
      this.sendHeldAfterAlone();
      return;
    }
    task.asked = call.asked;
    call.attempt = new AsyncResult([task], joins.one, this.port.results);
    // No restart can send it again: tasks taking its result may go.
    if (this.restartsLeft === 0) this.settle(call, call.attempt);
    this.inFlight.add(call);
    task.onFinish(() => this.finished(call, task));
  }

  private finished(call: Call, task: TaskState): void {
    this.inFlight.delete(call);
    const error = task.error;
    if (error instanceof EngineError && call.method === undefined) {
      // Released with its engine: there is nothing left to drop.
      this.end(call, undefined);
    } else if (error instanceof EngineError && (this.rebuilding || this.restartsLeft > 0)) {
      call.attempt = undefined;
      this.held.push(call);
      this.engineLost(error);
    } else {
      if (error instanceof EngineError) this.engineLost(error);
      this.end(call, error);
    }
    this.sendHeldAfterAlone();
    this.rebuildWhenIdle();
  }

  /** Sends the calls held for `alone` once it has ended, or once the calls before it have. */
  private sendHeldAfterAlone(): void {
    if (this.rebuilding || this.held.length === 0) return;
    if (this.alone === undefined || this.inFlight.size === 0) this.sendHeld();
  }

  private end(call: Call, error: Error | undefined): void {
    if (this.alone === call) this.alone = undefined;
    if (call.method !== undefined) this.callsDone += 1;
    if (error) {
      this.refuse(call, error);
      return;
    }
    const result = call.attempt;
    this.settle(call, result as AsyncResult<unknown>);
    // Read as `await` reads any task's value, through its result (`get`), and only once code
    // awaits the call: a value that only other tasks take never comes here.
    call.deliver = () => {
      call.deliver = undefined;
      // A release has no value (and its engine may be gone with the instance).
      call.resolve(call.method === undefined ? undefined : result?.get());
    };
    if (call.asked) call.deliver();
  }

  /** Rejects `call` with `error`; tasks taking its result fail too. */
  private refuse(call: Call, error: Error): void {
    this.settle(
      call,
      call.attempt ??
        new DependencyError(
          `dependency ${this.className}.${call.method ?? 'release'} (an actor call) did not succeed (${error.name}: ${error.message})`,
          { cause: error },
        ),
    );
    call.reject(error);
  }

  /** Sets what tasks taking `call`'s result wait for (see `Call.final`), once. */
  private settle(call: Call, final: NonNullable<Call['final']>): void {
    if (call.final) return;
    call.final = final;
    for (const told of call.settled.splice(0)) told();
  }

  /** The instance's engine is gone: rebuild it elsewhere if a restart is left, else lose it. */
  private engineLost(error: EngineError): void {
    if (this.rebuilding || this.lost) return;
    if (this.restartsLeft === 0) {
      this.lost = new EngineError(
        `actor ${this.className} is lost with engine ${this.engineId} (${error.message}); ` +
          'make a new one, or use lv.withOptions({ restarts: n }).actor(...) to have it rebuilt',
        this.engineId,
        { cause: error },
      );
      return;
    }
    this.restartsLeft -= 1;
    this.rebuilding = 'waiting';
  }

  /**
   * Rebuilds once every call sent to the dead instance has ended, so that those that failed go
   * to the new one first, in call order, and the calls held meanwhile after them.
   */
  private rebuildWhenIdle(): void {
    if (this.rebuilding !== 'waiting' || this.inFlight.size > 0) return;
    this.rebuilding = 'building';
    const from = this.engineId;
    this.build().then(
      () => {
        this.rebuilding = undefined;
        this.sendHeld();
      },
      (e: Error) => {
        this.rebuilding = undefined;
        this.lost = new EngineError(
          `actor ${this.className} could not be rebuilt after engine ${from} died: ${e.message}`,
          from,
          { cause: e },
        );
        this.sendHeld();
      },
    );
  }

  private sendHeld(): void {
    const held = this.held.sort((a, b) => a.seq - b.seq);
    this.held = [];
    for (const call of held) this.dispatch(call);
  }
}

/** The handle the user holds: the `ActorHandle` members, and any other name calls a method. */
function handleOf<T>(core: ActorCore): Actor<T> {
  const own: ActorHandle = Object.create(null, {
    engineId: { get: () => core.engineId, enumerable: true },
    className: { value: core.className, enumerable: true },
    release: { value: () => core.release() },
  }) as ActorHandle;
  return new Proxy(own, {
    get: (target, key) => {
      if (key in target) return target[key as keyof ActorHandle];
      if (typeof key === 'symbol' || key === 'then') return undefined;
      return (...args: unknown[]) => core.call(key, args);
    },
  }) as Actor<T>;
}

// These run on the engines, where the actor table is a global under Symbol.for('tsparallel.actors')
// (`ACTORS` of engine/actors.ts); they travel as source, so they name the key rather than import it.

/** The engine's actor table, as the functions below use it. */
interface EngineActors {
  create(id: string, source: string, args: unknown[]): void;
  call(id: string, method: string, args: unknown[]): unknown;
  release(id: string): void;
}

function createOnEngine(id: string, source: string, args: unknown[]): void {
  (globalThis as unknown as Record<symbol, EngineActors>)[Symbol.for('tsparallel.actors')].create(
    id,
    source,
    args,
  );
}

// The arguments come one by one, so that results among them are taken as `apply` takes them.
function callOnEngine(id: string, method: string, ...args: unknown[]): unknown {
  return (globalThis as unknown as Record<symbol, EngineActors>)[
    Symbol.for('tsparallel.actors')
  ].call(id, method, args);
}

function releaseOnEngine(id: string): void {
  (globalThis as unknown as Record<symbol, EngineActors>)[Symbol.for('tsparallel.actors')].release(
    id,
  );
}

/**
 * The handle to tasks in flight. An `AsyncResult` is thenable (`await ar` gives the value) and
 * also shows progress, timing, output as it streams, and per-task metadata, as ipyparallel's
 * does. It never rejects on its own: an error surfaces only where the result is awaited.
 */
import { randomUUID } from 'node:crypto';
import {
  CompositeError,
  DependencyError,
  errorFromWire,
  ReleasedError,
  TimeoutError,
} from '../protocol/errors';
import type { ErrorContent, ResultArg } from '../protocol/messages';
import { AsyncQueue } from '../protocol/async-queue';
import { processHook } from './process-hook';

/** Output of one task, in arrival order. */
export type TaskOutput =
  | { type: 'stream'; name: 'stdout' | 'stderr'; text: string }
  | { type: 'display_data'; data: Record<string, string> }
  | { type: 'execute_result'; data: Record<string, string>; executionCount: number };

/** One task's placement, timing and status, filled in as its messages arrive. */
export interface TaskMetadata {
  msgId: string;
  engineId: number | null;
  status: 'pending' | 'ok' | 'error';
  submitted: Date;
  started: Date | null;
  completed: Date | null;
  received: Date | null;
  /** True when the result came from the result cache and no engine ran the task. */
  cached: boolean;
}

/** What `DirectView.execute` gives per engine. */
export interface ExecuteReply {
  engineId: number;
  executionCount: number;
  /** The cell's last expression as the engine printed it, if it had one. */
  result: string | undefined;
}

/** Data a task published, with the engine it came from. */
interface PublishedData {
  value: unknown;
  engineId: number;
  /** Arrival order among all tasks' data in this process, so the latest of several is known. */
  order: number;
}
let publishedCount = 0;

/** One task's state, filled in by the client as messages arrive. */
export class TaskState {
  readonly metadata: TaskMetadata;
  readonly outputs: TaskOutput[] = [];
  value: unknown;
  error: Error | undefined;
  private done = false;
  private readonly listeners: (() => void)[] = [];
  readonly outputListeners: ((o: TaskOutput) => void)[] = [];
  /** The latest data the task published (`publish(data)` on its engine), if any. */
  data: PublishedData | undefined;
  readonly dataListeners: ((data: unknown, engineId: number) => void)[] = [];
  /**
   * Another task takes the value as an argument (see `AsyncResult.asArgument`). If that is so
   * when the task leaves, and code has not `asked` for the value by then, the value is an
   * intermediate: it stays on its engine, which sends only its size, so that a value only other
   * tasks take never comes here (as Dask keeps a future's data on its worker).
   */
  taken = false;
  /** Code awaits the value (`await`, `get`, `wait`, iterating a map): it comes with the reply. */
  asked = false;
  /**
   * Set while the task is an intermediate on its way through the hub: called when code asks for
   * the value after all, so that the hub's copy of it comes with the reply (see `Client.want`).
   */
  whenAsked: (() => void) | undefined;
  /**
   * Bytes of the value when it stayed on its engine (an intermediate, or too large to send
   * unasked):
   * `load` brings it here when it is awaited. Set for good, as the engine keeps it until
   * released.
   */
  keptBytes: number | undefined;
  /** Brings the kept value from its engine, until it is here. */
  private fetchKept: (() => Promise<unknown>) | undefined;
  private loading: Promise<void> | undefined;
  /** `ar.release()` let the value go; one still on its engine can no longer be fetched. */
  released = false;

  constructor(msgId: string, engineId: number | null) {
    this.metadata = {
      msgId,
      engineId,
      status: 'pending',
      submitted: new Date(),
      started: null,
      completed: null,
      received: null,
      cached: false,
    };
  }

  /**
   * A task finished before it began: its value came from the result cache. Its message id is
   * this client's own; the controller never heard of it.
   */
  static fromCache(value: unknown): TaskState {
    const t = new TaskState(randomUUID(), null);
    t.metadata.cached = true;
    t.metadata.status = 'ok';
    t.metadata.received = new Date();
    t.value = value;
    t.done = true;
    return t;
  }

  get finished(): boolean {
    return this.done;
  }

  /** Finished, with its value (or error) here: nothing left to fetch from its engine. */
  get loaded(): boolean {
    return this.done && this.fetchKept === undefined;
  }

  /**
   * Brings a value kept on its engine here (see `keptBytes`); a value that cannot be fetched
   * becomes the task's error. Nothing to do for any other task.
   */
  load(): Promise<void> {
    const fetch = this.fetchKept;
    if (fetch === undefined) return Promise.resolve();
    if (this.released) {
      this.fetchKept = undefined;
      this.fail(
        new ReleasedError(
          `the value of task ${this.metadata.msgId} stayed on engine ${this.metadata.engineId} ` +
            'and was released (ar.release()) before it was awaited',
        ),
        true,
      );
      return Promise.resolve();
    }
    this.loading ??= fetch().then(
      (value) => {
        this.value = value;
        this.fetchKept = undefined;
      },
      (e: unknown) => {
        this.fetchKept = undefined;
        this.fail(e as Error, true);
      },
    );
    return this.loading;
  }

  /** Code now awaits the value (see `asked`). */
  ask(): void {
    if (this.asked) return;
    this.asked = true;
    this.whenAsked?.();
    this.whenAsked = undefined;
  }

  addOutput(o: TaskOutput): void {
    this.outputs.push(o);
    for (const l of this.outputListeners) l(o);
  }

  /** Data the task published while it runs; it replaces the data published before. */
  addData(value: unknown, engineId: number): void {
    this.data = { value, engineId, order: ++publishedCount };
    for (const l of this.dataListeners) l(value, engineId);
  }

  /** Ends the task with a value, or with the error an error reply describes. */
  finish(
    reply: { status: 'ok'; kept?: number } | ErrorContent,
    metadata: Record<string, unknown>,
    value: () => unknown,
    fetchKept?: () => Promise<unknown>,
  ): void {
    if (this.done) return;
    if (reply.status === 'ok' && reply.kept !== undefined) {
      this.keptBytes = reply.kept;
      if (fetchKept) {
        this.fetchKept = fetchKept;
        value = () => undefined;
      }
    }
    const m = this.metadata;
    if (typeof metadata.engine_id === 'number') m.engineId = metadata.engine_id;
    m.started = dateOrNull(metadata.started);
    m.completed = dateOrNull(metadata.completed);
    m.received = new Date();
    if (reply.status === 'ok') {
      try {
        this.value = value();
        m.status = 'ok';
      } catch (e) {
        this.error = e as Error;
        m.status = 'error';
      }
    } else {
      this.error = errorFromWire(reply, m.engineId);
      m.status = 'error';
    }
    this.done = true;
    this.whenAsked = undefined;
    for (const l of this.listeners.splice(0)) l();
  }

  /**
   * Ends the task with an error raised on this side (a closed client, a refused request);
   * `afterValue`: a finished task whose kept value could not be fetched.
   */
  fail(error: Error, afterValue = false): void {
    if (this.done && !afterValue) return;
    this.error = error;
    this.metadata.status = 'error';
    this.metadata.received = new Date();
    this.done = true;
    this.whenAsked = undefined;
    for (const l of this.listeners.splice(0)) l();
  }

  onFinish(listener: () => void): void {
    if (this.done) listener();
    else this.listeners.push(listener);
  }

  private settled: Promise<void> | undefined;
  /** Resolves when the task finishes, one promise however often it is asked for. */
  get whenFinished(): Promise<void> {
    this.settled ??= new Promise((resolve) => this.onFinish(resolve));
    return this.settled;
  }
}

function dateOrNull(v: unknown): Date | null {
  return typeof v === 'string' ? new Date(v) : null;
}

/** How an `AsyncResult` waits and aborts, given by its view. */
export interface ResultOptions {
  /** Milliseconds `await ar` waits before rejecting with `TimeoutError`. */
  timeout?: number;
  /** Abort these tasks (as `ar.abort()` does). */
  abort: (msgIds: string[]) => Promise<void>;
  /** False: a notebook kernel shows no progress bar while it is awaited (the view's option). */
  progress?: boolean;
  /**
   * Tells the hub that these tasks' values are no longer held here, so that engines may free
   * what they keep of them (batched by the client).
   */
  release?: (msgIds: string[]) => void;
}

/**
 * The ways `await` joins tasks' values that an engine can repeat for a dependant (see
 * `ResultArg`); a view gives one of these as its result's `combine` when it is one of them.
 */
export const joins = {
  one: (values: unknown[]): unknown => values[0],
  array: (values: unknown[]): unknown => values,
  flat: (values: unknown[]): unknown => (values as unknown[][]).flat(),
} satisfies Record<ResultArg['combine'], (values: unknown[]) => unknown>;
const joinNames = new Map<unknown, ResultArg['combine']>(
  Object.entries(joins).map(([name, join]) => [join, name as ResultArg['combine']]),
);

/** What a dropped result lets go: its tasks' ids, told to the hub through `release`. */
interface Held {
  tasks: readonly TaskState[];
  release: (msgIds: string[]) => void;
}
/** Results dropped without `release()` let their engines' kept values go all the same. */
const dropped = new FinalizationRegistry<Held>(({ tasks, release }) =>
  releaseTasks(tasks, release),
);

/** Releases the tasks whose values may still be kept on engines (the others have nothing). */
function releaseTasks(tasks: readonly TaskState[], release: (msgIds: string[]) => void): void {
  const ids = tasks
    .filter((t) => !t.metadata.cached && (!t.finished || t.keptBytes !== undefined))
    .map((t) => t.metadata.msgId);
  if (ids.length > 0) release(ids);
}

/** An unfinished result that code began to await, as {@link resultAwaited} tells of it. */
export interface AwaitedResult {
  readonly result: AsyncResult<unknown>;
  /** Whether its view wants progress shown (`withOptions({ progress: false })` says no). */
  readonly progress: boolean;
}

/**
 * Told of each unfinished result as code begins to await it (`await ar`, `ar.get()`), so that
 * whatever embeds the package learns what a notebook cell waits for: the tsparallel kernel
 * shows a progress bar for it and aborts it when the cell is interrupted.
 */
export const resultAwaited = processHook<AwaitedResult>('tsparallel.result-awaited');

/**
 * Tasks in flight. `await ar` waits for all of them and gives `combine` of their values, or
 * throws: the task's error for a single task, a `CompositeError` for several.
 */
export class AsyncResult<T> implements PromiseLike<T> {
  constructor(
    protected readonly tasks: readonly TaskState[],
    protected readonly combine: (values: unknown[]) => T,
    protected readonly options: ResultOptions,
  ) {
    if (options.release) dropped.register(this, { tasks, release: options.release }, this);
  }

  /**
   * Lets the value go: the engine that keeps it (a large result stays where it was made until
   * awaited) frees it once no task waiting for it needs it. A value already awaited stays here;
   * one not yet fetched can no longer be (`ReleasedError`), nor be another task's argument.
   * Dropping the result does the same, when it is garbage collected.
   */
  release(): void {
    dropped.unregister(this);
    for (const t of this.tasks) t.released = true;
    if (this.options.release) releaseTasks(this.tasks, this.options.release);
  }

  /**
   * This result as another task's argument: its tasks and how their values join, when engines
   * can join them as `await` does (the value then goes engine to engine); else its value, here
   * already (served from the cache), or `later`, once its tasks are done and it is assembled
   * here, as `await` does it (a gather, `mapBatches`, a map partly served from the cache, an
   * execute). `later` rejects with the `DependencyError` the task taking it fails with.
   * @internal
   */
  asArgument():
    | { msgIds: string[]; combine: ResultArg['combine'] }
    | { value: T }
    | { later: Promise<T> } {
    if (this.cached) return { value: this.combine(this.tasks.map((t) => t.value)) };
    if (this.tasks.some((t) => t.released)) {
      throw new ReleasedError(
        'this AsyncResult was released (ar.release()), so it cannot be an argument any more',
      );
    }
    const combine = this.joinName;
    if (combine !== undefined && !this.tasks.some((t) => t.metadata.cached)) {
      for (const t of this.tasks) t.taken = true;
      return { msgIds: this.msgIds, combine };
    }
    return {
      later: this.wait().then(() => this.loadedValue().catch((e) => this.dependencyFailed(e))),
    };
  }

  /**
   * Throws the `DependencyError` a task taking this result fails with when awaiting it threw
   * `error`: caused by its first failed task's own error, as when engines join values, or by
   * `error` when no task failed (`combine` threw, as for a `mapBatches` batch that is no table).
   */
  private dependencyFailed(error: unknown): never {
    const task = this.tasks.find((t) => t.error !== undefined);
    const cause = task?.error ?? (error as Error);
    const ids = task ? task.metadata.msgId : this.msgIds.join(', ');
    throw new DependencyError(
      `dependency ${ids} did not succeed (${cause.name}: ${cause.message})`,
      { cause },
    );
  }

  /** The name of the way `combine` joins values, when an engine can repeat it. */
  protected get joinName(): ResultArg['combine'] | undefined {
    return joinNames.get(this.combine);
  }

  /** The tasks' message ids, for `rc.abort`, `rc.result` and `after`/`follow`. */
  get msgIds(): string[] {
    return this.tasks.map((t) => t.metadata.msgId);
  }

  /** Where each task ran (`null` until a load-balanced task's reply arrives). */
  get engineIds(): (number | null)[] {
    return this.tasks.map((t) => t.metadata.engineId);
  }

  /** Per task: placement, timing and status. */
  get metadata(): TaskMetadata[] {
    return this.tasks.map((t) => t.metadata);
  }

  /** True when every value came from the result cache (`withOptions({ cache })`): no engine ran. */
  get cached(): boolean {
    return this.tasks.length > 0 && this.tasks.every((t) => t.metadata.cached);
  }

  /** Number of tasks. */
  get length(): number {
    return this.tasks.length;
  }

  /** Number of tasks finished. */
  get progress(): number {
    return this.tasks.filter((t) => t.finished).length;
  }

  /** Per task, everything it printed to stdout so far. */
  get stdout(): string[] {
    return this.tasks.map((t) => streamText(t.outputs, 'stdout'));
  }

  /** Per task, everything it printed to stderr so far. */
  get stderr(): string[] {
    return this.tasks.map((t) => streamText(t.outputs, 'stderr'));
  }

  /** Rich output (display data and execute results) per task. */
  get outputs(): TaskOutput[][] {
    return this.tasks.map((t) => t.outputs.filter((o) => o.type !== 'stream'));
  }

  /** Seconds from submission until the last result arrived (or until now). */
  get elapsed(): number {
    if (this.tasks.length === 0) return 0;
    const start = Math.min(...this.tasks.map((t) => t.metadata.submitted.getTime()));
    const end = this.ready()
      ? Math.max(...this.tasks.map((t) => t.metadata.received?.getTime() ?? 0))
      : Date.now();
    return (end - start) / 1000;
  }

  /** Seconds the engines spent on the tasks, summed. */
  get serialTime(): number {
    return this.tasks.reduce((sum, t) => {
      const { started, completed } = t.metadata;
      return sum + (started && completed ? (completed.getTime() - started.getTime()) / 1000 : 0);
    }, 0);
  }

  /** Seconds from the first task starting to the last one completing, on the engines. */
  get wallTime(): number {
    const starts = this.tasks.flatMap((t) => t.metadata.started?.getTime() ?? []);
    const ends = this.tasks.flatMap((t) => t.metadata.completed?.getTime() ?? []);
    return starts.length && ends.length ? (Math.max(...ends) - Math.min(...starts)) / 1000 : 0;
  }

  /** True when every task finished, well or not. */
  ready(): boolean {
    return this.tasks.every((t) => t.finished);
  }

  /** True when every task finished without error; throws if they are not all finished yet. */
  successful(): boolean {
    if (!this.ready())
      throw new Error('successful() needs finished tasks: check ready() or await first');
    return this.tasks.every((t) => t.metadata.status === 'ok');
  }

  /** Waits up to `ms` milliseconds (forever if omitted); true when all tasks finished. */
  async wait(ms?: number): Promise<boolean> {
    this.ask();
    if (ms === undefined) {
      await this.allFinished();
      return true;
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => (timer = setTimeout(r, ms)));
    await Promise.race([this.allFinished(), timeout]);
    clearTimeout(timer);
    return this.ready();
  }

  /** The value; with `timeout` (ms) rejects `TimeoutError` if not ready in time, task still running. */
  async get(options: { timeout?: number } = {}): Promise<T> {
    this.ask();
    if (!this.ready()) {
      resultAwaited.announce({ result: this, progress: this.options.progress !== false });
      const timeout = options.timeout ?? this.options.timeout;
      if (timeout === undefined) await this.allFinished();
      else if (!(await this.wait(timeout))) {
        throw new TimeoutError(
          `${this.length - this.progress} of ${this.length} tasks not finished after ${timeout} ms; ` +
            'they keep running: await again, or abort them with ar.abort()',
        );
      }
    }
    // Values here already are given without waiting for more turns.
    return this.tasks.every((t) => t.loaded) ? this.value() : this.loadedValue();
  }

  /**
   * Resolves once every task finished: one task's own promise, as going through `Promise.all`
   * or `wait` would cost a round trip's `await` more turns of the microtask queue.
   */
  private allFinished(): Promise<unknown> {
    return this.tasks.length === 1
      ? this.tasks[0].whenFinished
      : Promise.all(this.tasks.map((t) => t.whenFinished));
  }

  /** The value of finished tasks, once those kept on their engines are here. */
  private async loadedValue(): Promise<T> {
    await Promise.all(this.tasks.map((t) => t.load()));
    return this.value();
  }

  /** Makes `await ar` give the value, or throw the error (see `get`). */
  then<A = T, B = never>(
    onfulfilled?: ((value: T) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.get().then(onfulfilled, onrejected);
  }

  /**
   * The values are wanted here: tasks not sent yet bring them back with their replies.
   * @internal
   */
  ask(): void {
    for (const t of this.tasks) t.ask();
  }

  /** Calls `listener` with every output as it arrives, from all tasks. */
  onOutput(listener: (output: TaskOutput, taskIndex: number) => void): void {
    this.tasks.forEach((t, i) => {
      for (const o of t.outputs) listener(o, i);
      t.outputListeners.push((o) => listener(o, i));
    });
  }

  /**
   * The latest data any of the tasks published with `publish(data)` while running, or
   * `undefined` before any did. (A map's result gives one entry per task instead.)
   */
  get data(): unknown {
    let latest: PublishedData | undefined;
    for (const { data } of this.tasks) if (data && data.order > (latest?.order ?? 0)) latest = data;
    return latest?.value;
  }

  /**
   * Calls `listener` with each data a task publishes while it runs, and the engine it runs on;
   * first with the latest data of each task that published before.
   * @example lv.apply(() => { publish({ step: 1 }); return 'done'; }).onData((d, engine) => log(d, engine));
   */
  onData(listener: (data: unknown, engineId: number) => void): void {
    for (const t of this.tasks) {
      if (t.data) listener(t.data.value, t.data.engineId);
      t.dataListeners.push(listener);
    }
  }

  /** Drops queued tasks and interrupts running ones; they end with `TaskAbortedError`. */
  async abort(): Promise<void> {
    await this.options.abort(this.msgIds.filter((_, i) => !this.tasks[i].finished));
  }

  protected value(): T {
    const errors = this.tasks.flatMap((t) => t.error ?? []);
    if (errors.length > 0) throw this.tasks.length === 1 ? errors[0] : new CompositeError(errors);
    return this.combine(this.tasks.map((t) => t.value));
  }
}

/**
 * Where each task's results go in a map's output when not one after another: `positions[t]` are
 * the output indices of task `t`'s results, in order. A map with cached elements has one: the
 * cached values in one finished task, the rest in the tasks that ran.
 */
export interface MapLayout {
  total: number;
  positions: readonly (readonly number[])[];
}

/**
 * The result of `map`: one task per chunk. Awaiting gives the flat list of results; iterating
 * with `for await` gives each result as soon as it (and, when ordered, all before it) arrived.
 */
export class AsyncMapResult<R> extends AsyncResult<R[]> implements AsyncIterable<R> {
  constructor(
    tasks: readonly TaskState[],
    options: ResultOptions,
    private readonly ordered: boolean,
    private readonly layout?: MapLayout,
  ) {
    super(
      tasks,
      (chunks) => (layout ? merge(chunks as R[][], layout) : (chunks as R[][]).flat()),
      options,
    );
  }

  protected override get joinName(): ResultArg['combine'] | undefined {
    return this.layout ? undefined : 'flat';
  }

  /**
   * Per task (chunk) of the map, in task order: the latest data it published, or `undefined`
   * where it published none yet.
   */
  override get data(): unknown[] {
    return this.tasks.map((t) => t.data?.value);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<R> {
    this.ask();
    const finished = new AsyncQueue<TaskState>();
    let count = 0;
    for (const t of this.tasks) {
      // A value kept on its engine is fetched before it counts as there.
      t.onFinish(
        () =>
          void t.load().then(() => {
            finished.push(t);
            if (++count === this.tasks.length) finished.end();
          }),
      );
    }
    if (this.tasks.length === 0) finished.end();
    if (this.ordered && this.layout) {
      yield* this.inLayoutOrder(finished, this.layout);
      return;
    }
    let next = 0; // in order: the first task whose results were not given yet
    for await (const t of finished) {
      const ready = this.ordered ? [] : [t];
      while (this.ordered && next < this.tasks.length && this.tasks[next].loaded) {
        ready.push(this.tasks[next++]);
      }
      for (const done of ready) {
        if (done.error) throw done.error;
        yield* done.value as R[];
      }
    }
  }

  /** Results in output order, each as soon as its task and all before it are done. */
  private async *inLayoutOrder(
    finished: AsyncIterable<TaskState>,
    layout: MapLayout,
  ): AsyncGenerator<R> {
    const owner = new Array<[task: TaskState, offset: number]>(layout.total);
    layout.positions.forEach((ps, t) => ps.forEach((p, k) => (owner[p] = [this.tasks[t], k])));
    let next = 0;
    const drain = function* (): Generator<R> {
      while (next < layout.total && owner[next][0].loaded) {
        const [task, offset] = owner[next++];
        if (task.error) throw task.error;
        yield (task.value as R[])[offset];
      }
    };
    yield* drain();
    for await (const task of finished) {
      // After a drain the task owning `next` is unfinished: only its end lets more out.
      if (task === owner[next]?.[0]) yield* drain();
    }
  }
}

/** The output of a map whose tasks' results go where `layout` says. */
function merge<R>(chunks: R[][], layout: MapLayout): R[] {
  const out = new Array<R>(layout.total);
  layout.positions.forEach((ps, t) => ps.forEach((p, k) => (out[p] = chunks[t][k])));
  return out;
}

/** What a task printed on `name`, from its outputs. */
export function streamText(outputs: readonly TaskOutput[], name: 'stdout' | 'stderr'): string {
  return outputs.map((o) => (o.type === 'stream' && o.name === name ? o.text : '')).join('');
}

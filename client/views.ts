/**
 * Views: how a call reaches engines. A `DirectView` runs each call on every one of its targets;
 * a `LoadBalancedView` runs it once, where the controller's scheduler sends it. Both infer
 * argument and result types from the function given.
 */
import {
  defineOptions,
  flag,
  identifier,
  integer,
  nonNegative,
  resolveOptions,
  string,
  type Kind,
  type SpecsOf,
} from '../options/schema';
import type { Table } from 'apache-arrow';
import { isArrowTable } from '../protocol/arrow-kind';
import { ResourceError } from '../protocol/errors';
import type { ContentMap, EngineInfo, ResultArg, TaskOptions } from '../protocol/messages';
import { resourcesOption, shortOf, unsatisfiable, type Resources } from '../protocol/resources';
import { decodeValue, encodeValue } from '../protocol/serialize';
import {
  AsyncMapResult,
  AsyncResult,
  joins,
  type ExecuteReply,
  type ResultOptions,
  type TaskState,
} from './async-result';
import { CachedCall, type CacheClient } from './cached-call';
import {
  chunk,
  chunkRanges,
  concat,
  partition,
  partitionRows,
  toSliceable,
  type Sequence,
} from './partition';
import {
  ActorCall,
  makeActor,
  makeActors,
  type Actor,
  type ActorInfo,
  type ActorPort,
  type TaskResult,
} from './actor';
import { Reference } from './reference';
import { resolveCache, type CacheOption, type ResultCache } from './result-cache';

/** The view a task was sent through, as `task:submit` events name it. */
export interface TaskSource {
  readonly options: ViewOptions;
  /** For the tasks of an actor (its method calls): the actor. */
  readonly actorInfo?: ActorInfo;
}

/** One `map` call, shared by the `task:submit` events of its tasks. */
export interface MapCall {
  /** How many tasks the map sends. */
  readonly tasks: number;
}

/** What a task's request carries. */
export type TaskContent = ContentMap['apply_request'] | ContentMap['execute_request'];

/** A task's request as a view makes it: its content and its arguments' encoded frames. */
export interface TaskRequest {
  content: TaskContent;
  buffers: Buffer[];
}

/**
 * What a view needs of its client. The client hands it to the views it makes; it is no part of
 * the public `Client`.
 */
export interface ViewClient extends CacheClient {
  /**
   * Sends one task for `view`; its state fills in as replies and output arrive. A promise of
   * its request: the task is sent once it resolves (it fails with its rejection). `awaited`:
   * its result is wanted at once, even one its engine keeps (see `Reader` in shared-memory.ts).
   */
  submit(
    view: TaskSource,
    type: 'apply_request' | 'execute_request',
    request: TaskRequest | Promise<TaskRequest>,
    map?: MapCall,
    awaited?: boolean,
  ): TaskState;
  /** Live ids for `targets`; throws `EngineError` when there are none. */
  liveTargets(targets: Targets): number[];
  /** Live engine `id` as the hub described it. */
  engine(id: number): EngineInfo | undefined;
  /** Asks the hub for its live engines now. */
  updateEngines(): Promise<number[]>;
  abort(msgIds: string[]): Promise<unknown>;
  /** This client's handle on the result cache in `dir`, which counts its hits and misses. */
  resultCache(dir: string): ResultCache;
  /** True for the id of a task served from the cache, which the controller never heard of. */
  isCached(msgId: string): boolean;
  /** Tells the hub these tasks' values are held here no more (batched). */
  release(msgIds: string[]): void;
}

/** A task, its message id, or a list of either. */
export type Dependencies = AsyncResult<unknown> | string | (AsyncResult<unknown> | string)[];

/** `'all'`, one engine id, or a list of them. */
export type Targets = 'all' | number | number[];

const isDependency = (x: unknown): boolean =>
  typeof x === 'string' || (typeof x === 'object' && x !== null && 'msgIds' in x);

const dependencies: Kind<Dependencies> = {
  expected: 'a task, its message id, or a list of either',
  is: (v): v is Dependencies => (Array.isArray(v) ? v.every(isDependency) : isDependency(v)),
};

const targets: Kind<Targets> = {
  expected: "'all', an engine id or a list of ids",
  is: (v): v is Targets => v === 'all' || typeof v === 'number' || Array.isArray(v),
  allows: (v) => v === 'all' || [v].flat().every((id) => Number.isInteger(id) && id >= 0),
};

const cache: Kind<CacheOption> = {
  expected: 'true, false, a directory, or { dir?, maxBytes? } with maxBytes > 0',
  is: (v): v is CacheOption => {
    if (typeof v === 'boolean' || typeof v === 'string') return true;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
    const { dir, maxBytes, ...rest } = v as Record<string, unknown>;
    return (
      Object.keys(rest).length === 0 &&
      (dir === undefined || typeof dir === 'string') &&
      (maxBytes === undefined || typeof maxBytes === 'number')
    );
  },
  allows: (v) => (typeof v === 'object' ? v.dir !== '' && (v.maxBytes ?? 1) > 0 : v !== ''),
};

/**
 * Options of a view, set with `withOptions`; each is checked where it enters, and a bad one is a
 * `TypeError` or `RangeError` naming it.
 * @example const lv = rc.loadBalancedView().withOptions({ retries: 2, chunkSize: 10 });
 */
export interface ViewOptions {
  /** Milliseconds `await` waits for a result before `TimeoutError`; the task keeps running. */
  timeout?: number;
  /** Load-balanced: how many times a task reruns on another engine when its engine dies. */
  retries?: number;
  /**
   * Load-balanced `actor`: how many times an actor is built again on another engine when its
   * engine dies (its constructor runs again with the same arguments; its state is lost).
   */
  restarts?: number;
  /** Tasks (or their message ids) that must succeed before these start. */
  after?: Dependencies;
  /** Tasks whose engine these must run on, after they succeed. */
  follow?: Dependencies;
  /** Load-balanced `map`: elements per task (default 1). */
  chunkSize?: number;
  /** `imap` and `for await` over a map result: in input order (default) or as they finish. */
  ordered?: boolean;
  /** A name for the tasks, shown in the controller's records and the panel. */
  label?: string;
  /** The engines a direct view runs on; for a load-balanced view, the engines it may use. */
  targets?: Targets;
  /**
   * Keep results on disk, keyed by the function's source and its arguments' bytes, and serve a
   * call made before from there without any engine (`ar.cached`): `true` for
   * `$TSPARALLEL_DIR/cache`, a directory, or `{ dir, maxBytes }` to evict the least recently
   * used results past a size. `map` caches each element. Failures are not cached; calls with a
   * `Reference` argument cannot be. Lookups and stores are synchronous file reads and writes.
   */
  cache?: CacheOption;
  /**
   * Load-balanced: send tasks straight to engines, in slots the controller lends this client
   * for a while (a lease), as Ray's owners do, instead of through the controller's scheduler;
   * default false. Tasks that wait for a slot wait in the client; the controller still records,
   * aborts and reruns them. It lends nothing while tasks wait in its own queue (other clients'
   * go first) or under a scheme other than `leastload`; the client gives the lease back once
   * none of its tasks waits or runs in it. Tasks with `after`, `follow`, `targets` or
   * `resources` always go through the controller.
   */
  lease?: boolean;
  /**
   * What each task occupies on its engine while it runs, as Ray's `num_gpus`: `{ gpu: 1 }`.
   * Load-balanced tasks wait until an engine has that much free; a request no live engine holds
   * fails with `ResourceError` at once. A direct view's targets must each hold it. Default
   * nothing: a task asks for no resources unless told.
   */
  resources?: Resources;
  /** In the tsparallel kernel, a progress bar for a call a cell awaits over a second (default true). */
  progress?: boolean;
}

const viewOptions = defineOptions<SpecsOf<ViewOptions>>('view', {
  timeout: {
    kind: nonNegative('<ms>'),
    help: 'milliseconds `await` waits for a result before `TimeoutError` (the task keeps running)',
  },
  retries: {
    kind: integer(0),
    help: 'load-balanced: reruns on another engine when the engine dies, this many times',
  },
  restarts: {
    kind: integer(0),
    help: 'load-balanced actors: rebuilt on another engine when the engine dies, this many times',
  },
  after: {
    kind: dependencies,
    help: 'tasks (or their message ids) that must succeed before these start',
  },
  follow: { kind: dependencies, help: 'tasks whose engine these must run on, after they succeed' },
  chunkSize: { kind: integer(1), help: 'load-balanced `map`: elements per task (default 1)' },
  ordered: {
    kind: flag,
    help: '`imap` and `for await` over a map result: in input order (default) or as they finish',
  },
  label: { kind: string(), help: "a name for the tasks, shown in the controller's records" },
  targets: { kind: targets, help: 'the engines a direct view runs on' },
  cache: { kind: cache, help: 'keep results on disk and serve repeated calls from there' },
  lease: {
    kind: flag,
    help: 'load-balanced: send tasks straight to engines, in slots the controller lends this client',
  },
  resources: resourcesOption(
    'what each task occupies on its engine while it runs, e.g. { gpu: 1 }',
  ),
  progress: {
    kind: flag,
    help: 'in the tsparallel kernel, a progress bar for a call a cell awaits over a second (default true)',
  },
});

/**
 * Each argument may also be a `Reference` to a variable on the engine, or the result of another
 * task (an `AsyncResult`, or an actor's call): the task waits for it and gets its value.
 */
export type Args<A extends unknown[]> = {
  [K in keyof A]: A[K] | Reference<A[K]> | TaskResult<A[K]>;
};
/** One sequence per parameter of the mapped function; elements may be results of tasks too. */
export type Seqs<A extends unknown[]> = { [K in keyof A]: Sequence<A[K] | TaskResult<A[K]>> };

const sources = new WeakMap<object, string>();

/** The source an engine compiles for `fn`; refuses what cannot travel as source. */
export function functionSource(fn: (...args: never[]) => unknown): string {
  if (typeof fn !== 'function') throw new TypeError(`expected a function, got ${typeof fn}`);
  const cached = sources.get(fn);
  if (cached !== undefined) return cached;
  const src = Function.prototype.toString.call(fn);
  const name = fn.name || '(anonymous)';
  if (/\{\s*\[native code\]\s*\}$/.test(src)) {
    throw new TypeError(
      `cannot send built-in or bound function ${name}: wrap it, e.g. (x) => Math.sqrt(x)`,
    );
  }
  if (/^class\b/.test(src))
    throw new TypeError(`cannot apply class ${name}; send a function that uses it`);
  // Method shorthand (`f(x) { }`, `async f() { }`, `*g() { }`) is not an expression on its own.
  const source = [src, asFunctionExpression(src)].find(isExpression);
  if (source === undefined) {
    throw new TypeError(
      `cannot send ${name}: its source is not a function expression (a method with a computed or quoted name?); use a function or an arrow function`,
    );
  }
  sources.set(fn, source);
  return source;
}

function asFunctionExpression(method: string): string {
  const [prefix, isAsync, star] = /^(async\s+)?(\*\s*)?/.exec(method) as RegExpExecArray;
  return `${isAsync ? 'async ' : ''}function${star ? '*' : ''} ${method.slice(prefix.length)}`;
}

function isExpression(source: string): boolean {
  try {
    new Function(`return (${source}\n);`);
    return true;
  } catch {
    return false;
  }
}

abstract class View {
  constructor(
    protected readonly client: ViewClient,
    readonly options: ViewOptions,
  ) {
    resolveOptions(viewOptions, options);
  }

  /** A view of the same kind with these options changed. */
  withOptions(options: ViewOptions): this {
    const Kind = this.constructor as new (client: ViewClient, options: ViewOptions) => this;
    return new Kind(this.client, { ...this.options, ...options });
  }

  abstract map<A extends unknown[], R>(
    fn: (...args: A) => R,
    ...seqs: Seqs<A>
  ): AsyncMapResult<Awaited<R>>;

  /** `map`'s results as an async iterable, in order unless `{ ordered: false }`. */
  imap<A extends unknown[], R>(fn: (...args: A) => R, ...seqs: Seqs<A>): AsyncIterable<Awaited<R>> {
    return this.map(fn, ...seqs);
  }

  protected taskOptions(balanced: boolean, targets?: number[]): TaskOptions {
    // A task served from the cache succeeded before it began, on no engine: nothing to wait for.
    const ids = (deps?: Dependencies): string[] | undefined =>
      deps === undefined
        ? undefined
        : (Array.isArray(deps) ? deps : [deps])
            .flatMap((x) => (typeof x === 'string' ? x : x.msgIds))
            .filter((id) => !this.client.isCached(id));
    const o: TaskOptions = { balanced };
    if (targets) o.targets = targets;
    const after = ids(this.options.after);
    const follow = ids(this.options.follow);
    // An actor's calls are direct tasks of a load-balanced view: these are not theirs.
    if (balanced && after?.length) o.after = after;
    if (balanced && follow?.length) o.follow = follow;
    if (balanced && this.options.retries) o.retries = this.options.retries;
    if (this.options.label !== undefined) o.label = this.options.label;
    const resources = this.options.resources;
    if (resources && Object.keys(resources).length > 0) o.resources = resources;
    return o;
  }

  /** The cache as a call of `source` uses it, when the view has the `cache` option. */
  protected cachedCall(source: string): CachedCall | undefined {
    const settings =
      this.options.cache === undefined ? undefined : resolveCache(this.options.cache);
    return (
      settings &&
      new CachedCall(this.client.resultCache(settings.dir), settings.maxBytes, source, this.client)
    );
  }

  protected resultOptions(): ResultOptions {
    return {
      timeout: this.options.timeout,
      abort: async (msgIds) => void (await this.client.abort(msgIds)),
      progress: this.options.progress,
      release: (msgIds) => this.client.release(msgIds),
    };
  }

  /**
   * How an actor this view makes sends its tasks: `place` builds the instance, and its method
   * calls go straight to its engine, asking the view's resources while they run.
   */
  protected actorPort(place: ActorPort['place']): ActorPort {
    let view: TaskSource | undefined;
    return {
      place,
      call: (actor, engineId, fn, args) => {
        view ??= { options: this.options, actorInfo: actor };
        const options = this.taskOptions(false, [engineId]);
        return this.sendApply(functionSource(fn), 'call', args, options, undefined, view);
      },
      results: this.resultOptions(),
      learn: async (id) => {
        if (this.client.engine(id) === undefined) await this.client.updateEngines();
      },
    };
  }

  /** Sends `fn` with encoded arguments as one task; shared by every apply-like call. */
  protected sendApply(
    source: string,
    mode: 'call' | 'map',
    args: unknown[],
    options: TaskOptions,
    map?: MapCall,
    view: TaskSource = this,
    awaited = false,
  ): TaskState {
    const refs: number[] = [];
    const results: ResultArg[] = [];
    // Values assembled here (see `asArgument`), with their places, once they are.
    const assembled: AssembledValue[] = [];
    // What the task waits for here before it is sent: actor calls whose task is not known yet,
    // and values assembled here. Each counts as handled: when an argument below cannot be sent,
    // the call throws and no task hears of their failures.
    const waits: Promise<void>[] = [];
    const waitFor = (wait: Promise<void>): void => {
      wait.catch(() => {});
      waits.push(wait);
    };
    // A result's place holds null; the engine puts its value there, or this side before sending.
    const placeholder = (r: TaskResult<unknown>, path: number[]): unknown => {
      const ar = r instanceof ActorCall ? r.asResult() : r;
      if (ar instanceof Promise) {
        // A call's value is made by its one task on its engine: its place stays null.
        waitFor(ar.then(({ result }) => void placeholder(result, path)));
        return null;
      }
      const arg = ar.asArgument();
      if ('value' in arg) return arg.value;
      if ('later' in arg) waitFor(arg.later.then((value) => void assembled.push({ path, value })));
      else results.push({ path, msg_ids: arg.msgIds, combine: arg.combine });
      return null;
    };
    const plain = args.map((a, i) => {
      if (a instanceof Reference) {
        refs.push(i);
        return a.name;
      }
      if (isTaskResult(a)) return placeholder(a, [i]);
      // A map's chunk: its elements may be results.
      if (mode === 'map' && Array.isArray(a) && a.some(isTaskResult)) {
        return a.map((x: unknown, j) => (isTaskResult(x) ? placeholder(x, [i, j]) : x));
      }
      return a;
    });
    // Encoded at the call, as any task's arguments: a later change to them does not reach it.
    const buffers = encodeValue(plain, 'args');
    const content = (): ContentMap['apply_request'] => {
      if (results.length === 0) return { source, mode, refs, options };
      // The task waits for them as for `after`, and fails as it does if one fails.
      const after = new Set([...(options.after ?? []), ...results.flatMap((r) => r.msg_ids)]);
      return { source, mode, refs, options: { ...options, after: [...after] }, results };
    };
    const request = (): TaskRequest => ({
      content: content(),
      buffers: assembled.length === 0 ? buffers : withAssembled(buffers, assembled),
    });
    const ready = waits.length === 0 ? request() : Promise.all(waits).then(request);
    return this.client.submit(view, 'apply_request', ready, map, awaited);
  }
}

/** A result's value assembled here, and its place in a task's arguments (see `ResultArg`). */
interface AssembledValue {
  path: number[];
  value: unknown;
}

/** Arguments encoded as `buffers`, with the values assembled here put in their places. */
function withAssembled(buffers: Buffer[], values: readonly AssembledValue[]): Buffer[] {
  const args = decodeValue(buffers) as unknown[];
  for (const { path, value } of values) {
    const [i, j] = path;
    if (j === undefined) args[i] = value;
    else (args[i] as unknown[])[j] = value;
  }
  return encodeValue(args, 'args');
}

function isTaskResult(x: unknown): x is TaskResult<unknown> {
  return x instanceof AsyncResult || x instanceof ActorCall;
}

/** Runs every call on each of its targets; results come back as an array in target order. */
export class DirectView extends View {
  constructor(client: ViewClient, options: ViewOptions) {
    super(client, options);
    for (const key of ['after', 'follow', 'retries', 'chunkSize', 'restarts'] as const) {
      if (options[key] !== undefined) {
        throw new TypeError(
          `view option ${key} applies to load-balanced views only (rc.loadBalancedView())`,
        );
      }
    }
  }

  /** Live engine ids this view runs on now. */
  get targets(): number[] {
    return this.client.liveTargets(this.options.targets ?? 'all');
  }

  /**
   * The targets a call's tasks go to. A direct task occupies the resources it asks on its engine,
   * so every target must hold them: else the call fails at once, before any task is sent.
   */
  private runTargets(): number[] {
    const ids = this.targets;
    const asked = this.options.resources;
    if (!asked) return ids;
    for (const id of ids) {
      const resources = this.client.engine(id)?.resources ?? {};
      const short = shortOf(resources, asked);
      if (short.length > 0)
        throw new ResourceError(unsatisfiable(asked, short, [{ id, resources }], id));
    }
    return ids;
  }

  /**
   * Calls `fn(...args)` on every target. Returns at once; `await` gives one result per target.
   * @example const pids = await rc.directView().apply(() => process.pid);
   */
  apply<A extends unknown[], R>(
    fn: (...args: A) => R,
    ...args: Args<A>
  ): AsyncResult<Awaited<R>[]> {
    const combine = joins.array as (v: unknown[]) => Awaited<R>[];
    const call = this.cachedCall(functionSource(fn));
    if (!call) return this.applyEach(fn, () => args, combine);
    // Every target's call has the same key: one result on disk serves them all.
    const key = call.key(args);
    const found = call.lookup(key);
    if (found) {
      const tasks = this.targets.map(() => call.cached(found.value));
      return new AsyncResult(tasks, combine, this.resultOptions());
    }
    return this.applyEach(fn, () => args, combine, {
      track: (task) => call.storeWhenDone(task, 'call', [key]),
    });
  }

  /**
   * Calls `fn` on every target with that target's arguments; `awaited`: the results are wanted
   * at once (see `ViewClient.submit`).
   */
  private applyEach<T>(
    fn: (...args: never[]) => unknown,
    argsFor: (index: number) => unknown[],
    combine: (values: unknown[]) => T,
    {
      track = (task) => task,
      awaited = false,
    }: { track?: (task: TaskState) => TaskState; awaited?: boolean } = {},
  ): AsyncResult<T> {
    const source = functionSource(fn);
    const tasks = this.runTargets().map((id, i) =>
      track(
        this.sendApply(
          source,
          'call',
          argsFor(i),
          this.taskOptions(false, [id]),
          undefined,
          this,
          awaited,
        ),
      ),
    );
    return new AsyncResult(tasks, combine, this.resultOptions());
  }

  /** `(...args) => this.apply(fn, ...args)`, for calling a remote function like a local one. */
  remote<A extends unknown[], R>(
    fn: (...args: A) => R,
  ): (...args: Args<A>) => AsyncResult<Awaited<R>[]> {
    functionSource(fn);
    return (...args) => this.apply(fn, ...args);
  }

  /**
   * Splits the sequences into one contiguous part per target and maps `fn` over each part there.
   * @example const squares = await dv.map((x: number) => x * x, [1, 2, 3, 4, 5]);
   */
  map<A extends unknown[], R>(fn: (...args: A) => R, ...seqs: Seqs<A>): AsyncMapResult<Awaited<R>> {
    const source = functionSource(fn);
    const all = equalLength(seqs);
    const plan = this.cachedCall(source)?.planMap(all);
    const columns = plan?.columns ?? all;
    const targets = this.runTargets();
    const n = Math.min(targets.length, columns[0]?.length ?? 0);
    const parts = columns.map((c) => partition(c, n));
    const map: MapCall = { tasks: n };
    let begin = 0;
    const tasks = targets.slice(0, n).map((id, i) => {
      const task = this.sendApply(
        source,
        'map',
        parts.map((p) => p[i]),
        this.taskOptions(false, [id]),
        map,
      );
      const count = parts[0][i].length;
      begin += count;
      return plan ? plan.track(task, begin - count, count) : task;
    });
    const ordered = this.options.ordered ?? true;
    return plan
      ? plan.result(tasks, this.resultOptions(), ordered)
      : new AsyncMapResult(tasks, this.resultOptions(), ordered);
  }

  /**
   * Builds an instance of `Class` with `args` on each target, for method calls there; see
   * `Actor`. Resolves once every constructor returned, one actor per target in target order;
   * when some fail, the others are released and the error thrown.
   * @example const counters = await dv.actor(Counter, 0); await counters[0].add(1);
   */
  actor<A extends unknown[], T extends object>(
    Class: new (...args: A) => T,
    ...args: A
  ): Promise<Actor<T>[]> {
    const ports = this.runTargets().map((id) =>
      this.actorPort((fn, a) =>
        this.sendApply(functionSource(fn), 'call', a, this.taskOptions(false, [id])),
      ),
    );
    return makeActors(ports, Class, args);
  }

  /** Runs TypeScript `code` in each target's namespace; declarations persist for later calls. */
  execute(code: string, options: { silent?: boolean } = {}): AsyncResult<ExecuteReply[]> {
    if (typeof code !== 'string')
      throw new TypeError(`execute needs TypeScript source as a string, got ${typeof code}`);
    const tasks = this.runTargets().map((id) =>
      this.client.submit(this, 'execute_request', {
        content: { code, silent: options.silent ?? false, options: this.taskOptions(false, [id]) },
        buffers: [],
      }),
    );
    return new AsyncResult(tasks, (v) => v as ExecuteReply[], this.resultOptions());
  }

  /** Sets variables in each target's namespace; functions travel as source. */
  push(namespace: Record<string, unknown>): AsyncResult<void[]> {
    if (Object.prototype.toString.call(namespace) !== '[object Object]') {
      throw new TypeError('push needs a plain object of names and values, e.g. dv.push({ a: 1 })');
    }
    const data: Record<string, unknown> = {};
    const functions: Record<string, string> = {};
    for (const [name, value] of Object.entries(namespace)) {
      if (typeof value === 'function') functions[name] = functionSource(value as () => unknown);
      else data[name] = value;
    }
    return this.applyEach(
      pushToNamespace,
      () => [data, functions],
      () => [],
    );
  }

  /** One value per target: of `name`, or an array of values for a list of names. */
  pull<T = unknown>(name: string): AsyncResult<T[]>;
  pull<T extends unknown[] = unknown[]>(names: string[]): AsyncResult<T[]>;
  pull(names: string | string[]): AsyncResult<unknown[]> {
    return this.applyEach(
      pullFromNamespace,
      () => [names],
      joins.array as (v: unknown[]) => unknown[],
      { awaited: true },
    );
  }

  /**
   * Splits `seq` into contiguous parts and sets `name` to one part on each target. An Arrow
   * `Table` is split by rows, each target getting a `Table` of its rows.
   * @example await dv.scatter('part', table); const n = await dv.apply(() => part.numRows);
   */
  scatter<T>(name: string, seq: Sequence<T> | Table): AsyncResult<void[]> {
    checkName(name);
    const n = this.targets.length;
    const parts = isArrowTable(seq) ? partitionRows(seq, n) : partition(toSliceable(seq), n);
    return this.applyEach(
      pushToNamespace,
      (i) => [{ [name]: parts[i] }],
      () => [],
    );
  }

  /** Pulls `name` from every target and joins the parts, as made by `scatter` (tables into one). */
  gather<T = unknown>(name: string): AsyncResult<T> {
    return this.applyEach(
      pullFromNamespace,
      () => [name],
      (parts) => concat(parts) as T,
      { awaited: true },
    );
  }
}

/**
 * A direct view for calls that go to many engines at once. Results are those of a
 * `DirectView`; it exists so code written for ipyparallel's `broadcast_view` keeps working.
 */
export class BroadcastView extends DirectView {}

/** Runs every call once, on the engine the controller's scheduler picks. */
export class LoadBalancedView extends View {
  private get allowed(): number[] | undefined {
    const t = this.options.targets;
    return t === undefined || t === 'all' ? undefined : typeof t === 'number' ? [t] : t;
  }

  /**
   * Calls `fn(...args)` once on some engine. Returns at once; `await` gives the result.
   * @example const r = await rc.loadBalancedView().apply((a: number, b: number) => a + b, 1, 2);
   */
  apply<A extends unknown[], R>(fn: (...args: A) => R, ...args: Args<A>): AsyncResult<Awaited<R>> {
    const source = functionSource(fn);
    const combine = joins.one as (v: unknown[]) => Awaited<R>;
    const call = this.cachedCall(source);
    const key = call?.key(args);
    const found = key === undefined ? undefined : call?.lookup(key);
    if (call && found)
      return new AsyncResult([call.cached(found.value)], combine, this.resultOptions());
    const task = this.sendApply(source, 'call', args, this.taskOptions(true, this.allowed));
    if (call && key !== undefined) call.storeWhenDone(task, 'call', [key]);
    return new AsyncResult([task], combine, this.resultOptions());
  }

  /**
   * One task per `chunkSize` elements, each placed by the scheduler; results in input order.
   * @example const r = await lv.withOptions({ chunkSize: 10 }).map((x: number) => x * 2, xs);
   */
  map<A extends unknown[], R>(fn: (...args: A) => R, ...seqs: Seqs<A>): AsyncMapResult<Awaited<R>> {
    const source = functionSource(fn);
    const all = equalLength(seqs);
    const plan = this.cachedCall(source)?.planMap(all);
    const size = this.options.chunkSize ?? 1;
    const columns = (plan?.columns ?? all).map((c) => chunk(c, size));
    const count = columns[0]?.length ?? 0;
    const map: MapCall = { tasks: count };
    const tasks: TaskState[] = [];
    for (let i = 0; i < count; i++) {
      const task = this.sendApply(
        source,
        'map',
        columns.map((c) => c[i]),
        this.taskOptions(true, this.allowed),
        map,
      );
      tasks.push(plan ? plan.track(task, i * size, columns[0][i].length) : task);
    }
    const ordered = this.options.ordered ?? true;
    return plan
      ? plan.result(tasks, this.resultOptions(), ordered)
      : new AsyncMapResult(tasks, this.resultOptions(), ordered);
  }

  /**
   * Runs `fn` on consecutive row batches of `table` (`rows` each; by default four batches per
   * engine), each batch a task placed by the scheduler, and joins the tables `fn` returns in
   * the input's row order. Returns at once; `ar.progress` counts finished batches. A `fn` that
   * returns anything but an Arrow `Table` makes `await` throw a `TypeError` naming the batch.
   * @example const scaled = await lv.mapBatches(t, (b: Table) => b.select(['x']), { rows: 10_000 });
   */
  mapBatches(
    table: Table,
    fn: (batch: Table) => Table | Promise<Table>,
    options: { rows?: number } = {},
  ): AsyncResult<Table> {
    if (!isArrowTable(table)) {
      throw new TypeError(`mapBatches needs an Arrow Table, got ${describeValue(table)}`);
    }
    const rows = options.rows ?? defaultBatchRows(table.numRows, this.client.liveTargets('all'));
    if (!Number.isSafeInteger(rows) || rows < 1) {
      throw new RangeError(`mapBatches option rows must be a positive integer, got ${rows}`);
    }
    const source = functionSource(fn);
    // An empty table still makes one batch, so that the result has the schema fn gives.
    const ranges = table.numRows === 0 ? [[0, 0]] : chunkRanges(table.numRows, rows);
    const map: MapCall = { tasks: ranges.length };
    const tasks = ranges.map(([begin, end]) =>
      this.sendApply(
        source,
        'call',
        [table.slice(begin, end)],
        this.taskOptions(true, this.allowed),
        map,
      ),
    );
    return new AsyncResult(tasks, (values) => joinBatches(values, ranges), this.resultOptions());
  }

  /**
   * Builds an instance of `Class` with `args` on one engine the scheduler picks (one that holds
   * the view's `resources`, among its `targets`), for method calls there; see `Actor`. Resolves
   * once the constructor returned; rejects with its error. With `restarts`, the actor is built
   * again elsewhere when its engine dies.
   * @example const counter = await lv.actor(Counter, 10); await counter.add(5);
   */
  actor<A extends unknown[], T extends object>(
    Class: new (...args: A) => T,
    ...args: A
  ): Promise<Actor<T>> {
    const port = this.actorPort((fn, a) =>
      this.sendApply(functionSource(fn), 'call', a, this.taskOptions(true, this.allowed)),
    );
    return makeActor(port, Class, args, this.options.restarts ?? 0);
  }

  /** `(seq) => this.map(fn, seq)`: a function that maps over its input in parallel. */
  parallel<T, R>(fn: (x: T) => R): (seq: Sequence<T>) => AsyncMapResult<Awaited<R>> {
    functionSource(fn);
    return (seq) => this.map(fn, seq);
  }
}

function equalLength(
  seqs: readonly Sequence<unknown>[],
): ReturnType<typeof toSliceable<unknown>>[] {
  if (seqs.length === 0) throw new TypeError('map needs at least one sequence');
  const columns = seqs.map((s) => toSliceable(s));
  const lengths = columns.map((c) => c.length);
  if (lengths.some((l) => l !== lengths[0])) {
    throw new RangeError(`map's sequences must have equal lengths; got ${lengths.join(', ')}`);
  }
  return columns;
}

/** Four batches per engine: enough to balance uneven batches and to show progress. */
function defaultBatchRows(numRows: number, engines: readonly number[]): number {
  return Math.max(1, Math.ceil(numRows / (4 * Math.max(1, engines.length))));
}

/** The tables `mapBatches`' tasks returned, in order, as one; each checked to be a table. */
function joinBatches(values: unknown[], ranges: readonly (readonly number[])[]): Table {
  const columns = (t: Table): string =>
    t.schema.fields.map((f) => `${f.name}: ${String(f.type)}`).join(', ');
  values.forEach((v, i) => {
    const [begin, end] = ranges[i];
    const batch = `batch ${i} (rows ${begin} to ${end})`;
    if (!isArrowTable(v)) {
      throw new TypeError(
        `mapBatches: fn returned ${describeValue(v)} for ${batch}; it must return an Arrow Table ` +
          '(new Table(recordBatch) wraps a RecordBatch)',
      );
    }
    if (i > 0 && columns(v) !== columns(values[0] as Table)) {
      throw new TypeError(
        `mapBatches: fn returned columns (${columns(v)}) for ${batch} but (${columns(values[0] as Table)}) ` +
          'for batch 0; every batch must give the same columns',
      );
    }
  });
  return concat(values) as Table;
}

/** `a number`, `an array`, `an object`, `a Vector`: what a user's value was. */
function describeValue(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  const name =
    typeof v === 'object'
      ? ((v as { constructor?: { name?: string } }).constructor?.name ?? '')
      : '';
  const what = name === '' || name === 'Object' ? typeof v : name;
  return `${/^[aeiou]/i.test(what) ? 'an' : 'a'} ${what}`;
}

const variableName = identifier();

function checkName(name: unknown): void {
  if (!variableName.is(name) || !variableName.allows!(name)) {
    throw new TypeError(`a variable name must be a JavaScript identifier, got ${String(name)}`);
  }
}

// These run on the engines, where `globalThis` is the engine's namespace.
function pushToNamespace(
  ns: Record<string, unknown>,
  functions: Record<string, string> = {},
): void {
  Object.assign(globalThis, ns);
  // Indirect eval compiles in the engine's global scope, where the function then lives.
  for (const [name, source] of Object.entries(functions)) {
    (globalThis as Record<string, unknown>)[name] = (0, eval)(`(${source})`);
  }
}

function pullFromNamespace(names: string | string[]): unknown {
  const get = (n: string): unknown => {
    if (!(n in globalThis)) {
      throw new ReferenceError(`${n} is not defined on this engine; push or execute it first`);
    }
    return (globalThis as Record<string, unknown>)[n];
  };
  return Array.isArray(names) ? names.map(get) : get(names);
}

/**
 * What an engine does with a task, without sockets: runs TypeScript cells and shipped functions
 * in one persistent namespace, captures their output, and turns their values and exceptions
 * into reply content. `engine-server.ts` feeds it requests and sends its output.
 *
 * The namespace is the engine process's own global object, as a notebook kernel's is: values
 * that arrive as arguments or by `push` are then of the same realm as user code, so
 * `x instanceof Map` holds. One engine per process.
 */
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { inspect } from 'node:util';
import * as vm from 'node:vm';
import { InterruptedError, type ConditionName } from '../protocol/errors';
import {
  isMsg,
  type ContentMap,
  type ErrorContent,
  type IMessage,
  type Message,
} from '../protocol/messages';
import { decodeValue, encodeValue } from '../protocol/serialize';
import { hasSegment, SHARED_MEMORY_THRESHOLD, type SharedMemory } from '../protocol/shared-memory';
import { ACTORS, processActors } from './actors';
import { transformCell } from './cell-transform';
import {
  fillResults,
  gatherResults,
  KEEP_BYTES,
  type KeptValues,
  type PeerValues,
} from './kept-values';
import { runBreakingOnSigint } from './sigint-thread';

/** Output a running task produces, sent to the client as it happens. */
export type OutputEvent =
  | { type: 'stream'; content: ContentMap['stream'] }
  | { type: 'display_data'; content: ContentMap['display_data'] }
  | { type: 'execute_result'; content: ContentMap['execute_result'] }
  | { type: 'data_message'; content: ContentMap['data_message']; buffers: Buffer[] };

/** A task's reply content and result frames. */
export interface TaskOutcome<C> {
  content: C;
  /** Result value frames for `apply`. */
  buffers: Buffer[];
  /**
   * Reply metadata: the shared memory segment holding the result frames instead, or that the
   * task failed gathering its inputs (`inputs_failed`).
   */
  metadata?: Record<string, unknown>;
}

/** An apply's outcome. */
type ApplyOutcome = TaskOutcome<ContentMap['apply_reply']>;

/** A value, or a promise of one: what a step that ends at once when it can gives. */
export type MaybePromise<T> = T | Promise<T>;

/** tsparallel's compiled code, whose frames a user's traceback leaves out. */
const OWN_CODE = resolve(__dirname, '..');
const INTERRUPTED_BY_SIGINT = 'ERR_SCRIPT_EXECUTION_INTERRUPTED';
/** A function whose latest call took less (in milliseconds) is quick; see `isQuick`. */
const QUICK_MS = 1;
/**
 * How long the latest call of each function took in this process, in milliseconds, by source:
 * the lightweight engines of a process know a function quick once one of them ran it, so that
 * their first calls of it do not send their replies alone (see `EngineServer.handle`).
 */
const lastRunMs = new Map<string, number>();
/** Runs `invoking` through the namespace, so that `breakOnSigint` covers shipped functions too. */
const invokeScript = new vm.Script('__tspInvoke()', { filename: 'tsparallel:invoke' });
/**
 * The call `invokeScript` makes, set for the length of one run. The global that calls it is
 * defined once: a global added and deleted at each task made each run of the script several
 * times slower.
 */
let invoking: (() => unknown) | undefined;
const invokeCurrent = (): unknown => (invoking as () => unknown)();

/** Runs tasks in the namespace; see the file's comment. */
export class EngineKernel {
  readonly namespace = globalThis as unknown as Record<string, unknown>;
  private executionCount = 0;
  private readonly functions = new Map<string, (...args: unknown[]) => unknown>();
  /** Rejects the current wait when SIGINT arrives while user code is awaiting something. */
  private interruptWaiting: ((e: Error) => void) | undefined;
  private interruptPending = false;

  /**
   * `signals` says whether SIGINT can interrupt user code here (`breakOnSigint`): not in a
   * lightweight engine, which shares its process and is interrupted by its own heartbeat
   * instead, and where each run under `breakOnSigint` would start and join a watchdog thread.
   */
  constructor(
    private id: number,
    private readonly emit: (event: OutputEvent) => void,
    private readonly sharedMemory: SharedMemory,
    /**
     * Results kept here, the way to those other engines keep, and whether clients can fetch
     * what is kept here (the engine has a direct socket); otherwise only large values stay.
     */
    private readonly values: { kept: KeptValues; peers: PeerValues; fetchable: boolean },
    private readonly signals = true,
  ) {
    Object.assign(this.namespace, this.makeGlobals());
    Object.defineProperty(this.namespace, '__tspInvoke', {
      value: invokeCurrent,
      configurable: true,
    });
    (globalThis as Record<symbol, unknown>)[ACTORS] = processActors;
  }

  /**
   * Whether `request` calls a function whose latest call in this process took under
   * `QUICK_MS`, so that what waits for it (replies ready to leave together with its own) waits
   * about that long.
   */
  isQuick(request: Message): boolean {
    if (!isMsg(request, 'apply_request')) return false;
    return (lastRunMs.get(request.content.source) ?? Infinity) < QUICK_MS;
  }

  /** The id the controller gave this engine; it changes when the engine registers again. */
  get engineId(): number {
    return this.id;
  }

  set engineId(id: number) {
    this.id = id;
    this.namespace.engineId = id;
  }

  /**
   * Ends the running task's wait with `error`, for faults it caused outside its own call stack
   * (an unhandled rejection). False when no task is waiting.
   */
  failWaitingTask(error: Error): boolean {
    if (!this.interruptWaiting) return false;
    this.interruptWaiting(error);
    return true;
  }

  /**
   * Call on SIGINT outside a synchronous run (which `breakOnSigint` handles by itself). A
   * signal that comes while a task is being prepared (compiled, decoded) is kept for it.
   */
  interrupt(): void {
    if (!this.failWaitingTask(new InterruptedError('interrupted by SIGINT'))) {
      this.interruptPending = true;
    }
  }

  /** Call when a task starts: a signal that came before it was meant for an earlier one. */
  private beginTask(): void {
    this.interruptPending = false;
  }

  /** Runs user code, where SIGINT may interrupt it (see `signals`). */
  private runUserCode(script: vm.Script): unknown {
    return this.signals ? runBreakingOnSigint(script) : script.runInThisContext();
  }

  private throwIfInterrupted(): void {
    if (this.interruptPending) throw new InterruptedError('interrupted by SIGINT');
  }

  async execute(code: string, silent: boolean): Promise<TaskOutcome<ContentMap['execute_reply']>> {
    const count = silent ? this.executionCount : ++this.executionCount;
    this.beginTask();
    try {
      const cell = transformCell(code, `[engine ${this.engineId}] cell ${count}`);
      const script = new vm.Script(cell.code, {
        filename: `[engine ${this.engineId}] cell ${count}`,
        importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
      });
      this.throwIfInterrupted();
      let value = this.runUserCode(script);
      if (cell.isAsync) value = await this.interruptible(value);
      if (value !== undefined && !silent) {
        this.emit({
          type: 'execute_result',
          content: { data: { 'text/plain': repr(value) }, metadata: {}, execution_count: count },
        });
      }
      return { content: { status: 'ok', execution_count: count }, buffers: [] };
    } catch (e) {
      return { content: this.errorContent(e, false), buffers: [] };
    }
  }

  /**
   * Calls a function shipped as source. In `map` mode the arguments are equal-length chunks of
   * each sequence and the result is the array of per-element results. A task that waits for
   * nothing (results of other tasks, arguments in shared memory, a promise its function
   * returns) ends in the turn it arrived in: its outcome is no promise.
   */
  apply(request: IMessage<'apply_request'>): MaybePromise<ApplyOutcome> {
    this.beginTask();
    if (request.content.sources === undefined && !hasSegment(request.metadata)) {
      return this.call(request, request.buffers);
    }
    return this.inputs(request).then(
      ({ argFrames, values }) => this.call(request, argFrames, values),
      (e: unknown) => {
        // Not the user's error: the client rebuilds it as the condition it names. None of the
        // task's code ran, which `inputs_failed` tells the hub: it may run the task again.
        const { name: ename, message: evalue, cause } = e as Error;
        const error: ErrorContent = { status: 'error', ename, evalue, traceback: [] };
        if (cause instanceof Error)
          error.cause = { ename: cause.name, evalue: cause.message, traceback: [] };
        return {
          content: { ...error, engine_id: this.engineId },
          buffers: [],
          metadata: { inputs_failed: true },
        };
      },
    );
  }

  /** The arguments of a task taking results of other tasks, or arguments in shared memory. */
  private async inputs(
    request: IMessage<'apply_request'>,
  ): Promise<{ argFrames: Buffer[]; values?: Map<string, unknown> }> {
    let argFrames = request.buffers;
    let values: Map<string, unknown> | undefined;
    if (request.content.sources !== undefined) {
      // Other engines' values may take a while to come: an abort interrupts the wait.
      const gathered = (await this.interruptible(
        gatherResults(request, this.values.kept, this.values.peers),
      )) as Awaited<ReturnType<typeof gatherResults>>;
      values = gathered.values;
      argFrames = gathered.argFrames;
    }
    if (hasSegment(request.metadata)) {
      argFrames = await this.sharedMemory.read(argFrames, request.metadata);
    }
    return { argFrames, values };
  }

  /** Runs the task's function on its arguments; see `apply`. */
  private call(
    request: IMessage<'apply_request'>,
    argFrames: Buffer[],
    values?: Map<string, unknown>,
  ): MaybePromise<ApplyOutcome> {
    const { source, mode, refs, results } = request.content;
    try {
      const fn = this.compile(source);
      const args = decodeValue(argFrames) as unknown[];
      for (const i of refs) args[i] = this.lookup(String(args[i]));
      if (results) fillResults(args, results, values ?? new Map());
      const thunk =
        mode === 'call'
          ? () => fn(...args)
          : () => {
              // Chunks may be typed arrays, whose own map would coerce results to numbers.
              const seqs = args as ArrayLike<unknown>[];
              const out = Array.from(seqs[0], (_, i) => fn(...seqs.map((s) => s[i])));
              return out.some(isThenable) ? Promise.all(out) : out;
            };
      this.throwIfInterrupted();
      invoking = thunk;
      const started = performance.now();
      const ran = (): void => void lastRunMs.set(source, performance.now() - started);
      let value: unknown;
      try {
        value = this.runUserCode(invokeScript);
      } finally {
        invoking = undefined;
        // Returned at once, or thrown: the run is over.
        if (!isThenable(value)) ran();
      }
      if (!isThenable(value)) return this.result(request, value);
      return this.interruptible(value).then(
        (v) => {
          ran();
          return this.result(request, v);
        },
        (e: unknown) => {
          ran();
          return this.failed(e);
        },
      );
    } catch (e) {
      return this.failed(e);
    }
  }

  /** The outcome of a task whose code threw `e`. */
  private failed(e: unknown): ApplyOutcome {
    return { content: this.errorContent(e, true), buffers: [] };
  }

  /** The outcome of a task whose function gave `value`: sent, or kept here (see kept-values.ts). */
  private result(request: IMessage<'apply_request'>, value: unknown): ApplyOutcome {
    try {
      const frames = encodeValue(value, 'result');
      // A reader on this host that awaits the value now takes it through shared memory, with
      // the reply; so that the hub needs no copy, it stays here as a large one does.
      const reader = this.sharedMemory.readerOf(request.metadata);
      const awaited = reader?.awaited === true;
      // An intermediate value (other tasks take it, its client does not await it yet) stays
      // here until asked for (nothing to keep of `undefined`), and a large one in any case
      // (see kept-values.ts).
      const intermediate =
        request.metadata.intermediate === true && value !== undefined && this.values.fetchable;
      const kept = this.values.kept.keep(
        request.header.msg_id,
        frames,
        awaited ? SHARED_MEMORY_THRESHOLD : intermediate ? 0 : KEEP_BYTES,
      );
      if (kept === undefined) return { content: { status: 'ok' }, buffers: frames };
      if (awaited) {
        const segment = this.sharedMemory.write(frames, reader.host, reader.pid);
        return { content: { status: 'ok', kept }, buffers: [], metadata: segment };
      }
      // A small one goes to the hub all the same, for the tasks that take it; the client's copy
      // of the reply goes without it (see `EngineServer.reply`).
      return { content: { status: 'ok', kept }, buffers: kept < KEEP_BYTES ? frames : [] };
    } catch (e) {
      return this.failed(e);
    }
  }

  /** The error reply for an exception thrown by user code, whatever it threw. */
  errorContent(e: unknown, shipped: boolean): ErrorContent {
    try {
      return this.describeError(e, shipped);
    } catch {
      // A thrown object whose properties throw on access must not take the engine down.
      return {
        status: 'error',
        ename: 'Error',
        evalue: 'the task threw a value that cannot be inspected',
        traceback: [],
        engine_id: this.engineId,
      };
    }
  }

  private describeError(e: unknown, shipped: boolean): ErrorContent {
    const err = e as { name?: unknown; message?: unknown; stack?: unknown; code?: unknown };
    const isErrorLike = typeof e === 'object' && e !== null && typeof err.message === 'string';
    let ename = isErrorLike && typeof err.name === 'string' ? err.name : 'Error';
    let evalue = isErrorLike ? String(err.message) : `uncaught value: ${repr(e)}`;
    if (err?.code === INTERRUPTED_BY_SIGINT || e instanceof InterruptedError) {
      ename = 'InterruptedError' satisfies ConditionName;
      evalue = 'the task was interrupted by SIGINT';
    }
    const missing = /^(\S+) is not defined$/.exec(evalue);
    if (shipped && ename === 'ReferenceError' && missing) {
      evalue =
        `${missing[1]} is not defined on engine ${this.engineId}: the function uses a variable of ` +
        `the code that sent it, and functions travel without their closures. Push it first ` +
        `(view.push({ ${missing[1]} })) or pass it as an argument.`;
    }
    const stack = isErrorLike && typeof err.stack === 'string' ? err.stack : `${ename}: ${evalue}`;
    return {
      status: 'error',
      ename,
      evalue,
      traceback: cleanStack(stack, ename, evalue),
      engine_id: this.engineId,
    };
  }

  private compile(source: string): (...args: unknown[]) => unknown {
    let fn = this.functions.get(source);
    if (!fn) {
      const script = new vm.Script(`(${source})`, {
        filename: `[engine ${this.engineId}] function`,
        importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
      });
      const compiled = script.runInThisContext() as unknown;
      if (typeof compiled !== 'function') {
        throw new TypeError('apply needs a function; the source sent does not evaluate to one');
      }
      fn = compiled as (...args: unknown[]) => unknown;
      this.functions.set(source, fn);
    }
    return fn;
  }

  private lookup(name: string): unknown {
    if (!(name in this.namespace)) {
      throw new ReferenceError(
        `Reference('${name}'): ${name} is not defined on engine ${this.engineId}; push or execute it first`,
      );
    }
    return this.namespace[name];
  }

  /** Awaits `value` unless SIGINT arrives first. */
  private async interruptible(value: unknown): Promise<unknown> {
    if (!isThenable(value)) return value;
    try {
      return await new Promise((resolve, reject) => {
        this.interruptWaiting = reject;
        (value as PromiseLike<unknown>).then(resolve, reject);
      });
    } finally {
      this.interruptWaiting = undefined;
    }
  }

  /** What user code finds in the namespace besides Node's own globals. */
  private makeGlobals(): Record<string, unknown> {
    const emit = this.emit;
    const show = (data: Record<string, string>): void =>
      emit({ type: 'display_data', content: { data, metadata: {} } });
    const base64 = (b: Uint8Array | string): string =>
      typeof b === 'string'
        ? b
        : Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
    /** `display(value)` shows a value; `display.html(...)` and friends show rich output. */
    const display = Object.assign((value: unknown) => show({ 'text/plain': repr(value) }), {
      text: (s: string) => show({ 'text/plain': s }),
      html: (s: string) => show({ 'text/html': s }),
      markdown: (s: string) => show({ 'text/markdown': s }),
      svg: (s: string) => show({ 'image/svg+xml': s }),
      json: (v: unknown) => show({ 'application/json': JSON.stringify(v) }),
      png: (b: Uint8Array | string) => show({ 'image/png': base64(b) }),
      jpeg: (b: Uint8Array | string) => show({ 'image/jpeg': base64(b) }),
    });
    // Functions written in a tslab notebook refer to earlier cells' names as `exports.NAME`.
    const exportsView = new Proxy(
      {},
      {
        get: (_t, name) => {
          if (typeof name === 'string' && !(name in this.namespace)) {
            throw new ReferenceError(`${name} is not defined`);
          }
          return this.namespace[name as string];
        },
        set: (_t, name, value) => {
          this.namespace[name as string] = value;
          return true;
        },
      },
    );
    /** `publish(data)` sends provisional data to the task's client while the task runs. */
    const publish = (data: unknown): void =>
      emit({ type: 'data_message', content: {}, buffers: encodeValue(data, 'data') });
    return {
      require: createRequire(join(process.cwd(), '[engine]')),
      display,
      publish,
      exports: exportsView,
      engineId: this.engineId,
    };
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    (typeof v === 'object' || typeof v === 'function') &&
    v !== null &&
    typeof (v as { then?: unknown }).then === 'function'
  );
}

/** The text a notebook shows for a value. */
function repr(value: unknown): string {
  return inspect(value, { depth: 4, colors: false });
}

/** Drops frames of tsparallel's own code, so a traceback shows the user's code only. */
function cleanStack(stack: string, ename: string, evalue: string): string[] {
  const lines = stack.split('\n');
  const frames = lines.filter(
    (l) => /^\s+at /.test(l) && !l.includes(OWN_CODE) && !/tsparallel:invoke|\(node:/.test(l),
  );
  return [`${ename}: ${evalue}`, ...frames];
}

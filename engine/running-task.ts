/**
 * The task the engine runs, and the one place that says which task that is. Everything that
 * belongs to a task lives on its `RunningTask`, made when the task starts; `RunningSlot.run`
 * puts it in place and takes it out in one step, so nothing of one task is left to reset before
 * the next.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { IMessage } from '../protocol/messages';
import type { MaybePromise, OutputEvent } from './kernel';
import { TaskOutput } from './output';

/** A request that runs user code. */
export type TaskRequest = IMessage<'apply_request'> | IMessage<'execute_request'>;

/**
 * Where a task came from, and so where its reply and output go: the hub, or a client that sent
 * it straight to the engine's direct socket.
 */
export type TaskOrigin = 'hub' | 'client';

/** Everything that belongs to one task; see the file's comment. */
export class RunningTask {
  /** When the engine took the task up, for its reply's metadata. */
  readonly started = new Date().toISOString();
  readonly output: TaskOutput;
  /** The controller gave the task up (it failed or reran it elsewhere): nobody wants its reply. */
  abandoned = false;
  /** The task's run is over; code it left behind (a timer) no longer speaks for it. */
  ended = false;

  /** `sendOutput` delivers the task's output to the client. */
  constructor(
    readonly request: TaskRequest,
    readonly replyType: 'apply_reply' | 'execute_reply',
    readonly origin: TaskOrigin,
    sendOutput: (event: OutputEvent) => void,
  ) {
    this.output = new TaskOutput(sendOutput);
  }

  get id(): string {
    return this.request.header.msg_id;
  }
}

/** Longest task id the heartbeat thread can read; the ids the client makes are UUIDs. */
const ID_CAPACITY = 128;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
/**
 * The task whose code is running, for every engine of the process: one storage, as each
 * storage costs something at every promise made, and a process may host many lightweight
 * engines. A slot finds its own task there, or another engine's, which is not its own.
 */
const owner = new AsyncLocalStorage<RunningTask>();

/**
 * Which task runs now, as three readers need it: the engine's own code, the task's code (whose
 * output is credited to the task that wrote it, across its awaits and timers), and the heartbeat
 * thread, which reads the id from shared memory at the moment an abort arrives, so it interrupts
 * the task that really runs and never the next one.
 */
export class RunningSlot {
  private current: RunningTask | undefined;
  /** Memory shared with the heartbeat thread: the running task's id, its length first. */
  readonly buffer = new SharedArrayBuffer(4 + ID_CAPACITY);
  private readonly idLength = new Int32Array(this.buffer, 0, 1);
  private readonly idBytes = new Uint8Array(this.buffer, 4, ID_CAPACITY);

  /** The task running now. */
  get task(): RunningTask | undefined {
    return this.current;
  }

  /**
   * The task whose code calls, while it runs: also another engine's of the process, as
   * lightweight engines share one namespace and so one `publish` and `display`. Code of no task
   * gets this slot's running task; code a finished task left behind (a timer, an interrupted
   * promise) gets `undefined`, so it never writes into the next task's output.
   */
  callerTask(): RunningTask | undefined {
    const running = owner.getStore();
    return running === undefined ? this.current : running.ended ? undefined : running;
  }

  /**
   * Runs `task` by calling `run`, with the task in place until it settles: when the promise
   * `run` returns settles, or once what `run` gave at once has had a turn of the microtask
   * queue, so that the callbacks of promises its code settled and did not return still write
   * as the task.
   */
  run<T>(task: RunningTask, run: () => MaybePromise<T>): Promise<T> {
    this.put(task);
    const end = (): void => {
      task.ended = true;
      this.put(undefined);
    };
    let result: MaybePromise<T>;
    try {
      result = owner.run(task, run);
    } catch (e) {
      end();
      return Promise.reject(e as Error);
    }
    // One reaction, not an async function's and `finally`'s turns: each costs an engine more
    // (AsyncLocalStorage's hooks run at every promise).
    return Promise.resolve(result).then(
      (value) => {
        end();
        return value;
      },
      (e: unknown) => {
        end();
        throw e;
      },
    );
  }

  private put(task: RunningTask | undefined): void {
    this.current = task;
    Atomics.store(this.idLength, 0, 0);
    if (task === undefined) return;
    const { written } = encoder.encodeInto(task.id, this.idBytes);
    Atomics.store(this.idLength, 0, written);
  }
}

/** The id of the task a `RunningSlot` holds, read through its shared `buffer` in another thread. */
export function readRunningId(buffer: SharedArrayBuffer): string | null {
  const n = Atomics.load(new Int32Array(buffer, 0, 1), 0);
  return n === 0 ? null : decoder.decode(new Uint8Array(buffer, 4, n).slice());
}

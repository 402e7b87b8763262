/**
 * What an engine that has its process to itself takes over from Node: stdout and stderr (into
 * the running task's output), `process.exit` (so that the task calling it, and the controller,
 * learn why the engine left), errors nobody handled (which must not end the engine), and
 * SIGINT (which interrupts the task). A lightweight engine shares its process and takes none.
 */
import type { TaskOutput } from './output';
import { holdSigint } from './sigint-thread';

/** What the hooks ask of the engine that owns the process. */
export interface ProcessOwner {
  /** The output of the task the calling code belongs to; `undefined` when no task takes it. */
  callerOutput(): TaskOutput | undefined;
  /** Whether a task runs now. */
  taskRunning(): boolean;
  /** Ends the running task's wait with `error`; false when it is not waiting. */
  failWaitingTask(error: Error): boolean;
  /** SIGINT arrived outside a synchronous run of user code. */
  interrupt(): void;
  /** User code called `process.exit`: the last moment to answer its task and unregister. */
  exiting(code: number | string | null | undefined): void;
  log(line: string): void;
}

/** The process's own functions the hooks replaced, and what must wait for the engine to join. */
export interface ProcessHooks {
  /** Ends the process, bypassing the `process.exit` that user code reaches. */
  exit(code: number): never;
  /**
   * Hands SIGINT between tasks to a thread holding Node's watchdog (see sigint-thread.ts). Call
   * once the engine has joined: a thread starting beside the heartbeat thread can delay the
   * first beat past the controller's deadline on a loaded machine.
   */
  holdSigint(): void;
}

/** Takes the process over for `owner`; see the file's comment. Call once, after registering. */
export function hookProcess(owner: ProcessOwner): ProcessHooks {
  captureOutput(owner);
  reportStrayErrors(owner);
  const exit = process.exit.bind(process);
  process.exit = ((code?: number | string | null) => {
    owner.exiting(code);
    return exit(code);
  }) as typeof process.exit;
  const onSigint = (): void => owner.interrupt();
  process.on('SIGINT', onSigint);
  return { exit, holdSigint: () => holdSigint(onSigint) };
}

/**
 * Routes the process's stdout and stderr into the running task's output. Output of code a
 * finished task left behind goes where it would without the hook: the engine's log.
 */
function captureOutput(owner: ProcessOwner): void {
  for (const name of ['stdout', 'stderr'] as const) {
    const stream = process[name];
    const original = stream.write.bind(stream);
    stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      const output = owner.callerOutput();
      if (output === undefined) return original(chunk, ...(rest as []));
      output.write(name, typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
      const done = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      if (done) process.nextTick(done);
      return true;
    }) as typeof stream.write;
  }
}

/** Errors nobody awaited must not end the engine: they are reported where they can be seen. */
function reportStrayErrors(owner: ProcessOwner): void {
  const report = (what: string) => (e: unknown) => {
    const text = `${what}: ${e instanceof Error ? e.stack : String(e)}\n`;
    if (owner.taskRunning()) process.stderr.write(text);
    else owner.log(text.trimEnd());
  };
  process.on('uncaughtException', report('uncaught exception'));
  const reportRejection = report('unhandled promise rejection');
  process.on('unhandledRejection', (e: unknown) => {
    // A rejection nobody handled while a task awaits is that task's failure, as it would
    // have ended a plain Node program: the task ends with it instead of running on.
    if (!owner.taskRunning() || !owner.failWaitingTask(unhandledRejection(e))) reportRejection(e);
  });
}

/** The error a task fails with when a promise it made was rejected and nothing handled it. */
function unhandledRejection(e: unknown): Error {
  const cause = e instanceof Error ? e : new Error(String(e));
  const failure = new Error(
    `a promise the task created was rejected and nothing handled it: ${cause.name}: ${cause.message}`,
  );
  failure.name = 'UnhandledRejection';
  failure.stack = `UnhandledRejection: ${failure.message}\n${(cause.stack ?? '').split('\n').slice(1).join('\n')}`;
  return failure;
}

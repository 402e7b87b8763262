/**
 * Keeps Node's SIGINT watchdog running for the process's whole life (an engine's, or the
 * notebook kernel's). A task or cell runs under `vm`'s `breakOnSigint`, so that SIGINT
 * interrupts even a synchronous loop; but when no other watchdog is active, each such run
 * starts and joins the watchdog's thread, a cost paid by every task and larger under load, and
 * a SIGINT that comes while it stops is lost. This thread holds a watchdog of its own
 * (it waits inside a `breakOnSigint` run), so a task's watchdog only registers with the running
 * one and the most recent registration, the task's, receives the signal.
 *
 * Between tasks the held watchdog receives SIGINT instead; the thread reports it to the main
 * thread, which must then not listen for SIGINT itself: a listener reinstalls libuv's handler
 * over the watchdog's, and a signal during a task would then end the process.
 *
 * Once a signal ends its wait, the thread registers again; if a task's run began meanwhile, the
 * thread's registration would be the newer and would take every later SIGINT, leaving the task
 * uninterruptible. Runs made with `runBreakingOnSigint` say so in shared memory, and the thread
 * stands aside (unregistered) until such a run ends.
 */
import * as vm from 'node:vm';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

interface SigintThreadData {
  holdSigint: SharedArrayBuffer;
}

/** The two cells the threads share: the holder's state, and whether the main thread runs code. */
const STATE = 0;
const RUN = 1;
/** States of `STATE`. */
const STARTING = 0;
const HOLDING = 1;
const RELEASED = 2;

/** This thread's cells; the holder thread gets them at its start. */
const cells = new Int32Array(new SharedArrayBuffer(8));

/** The cells, for another thread to see whether the main thread runs code (`runsCode`). */
export const runCells = cells.buffer as SharedArrayBuffer;

/** Whether the main thread runs code under `runBreakingOnSigint` now; `buffer`: `runCells`. */
export function runsCode(buffer: SharedArrayBuffer): boolean {
  return Atomics.load(new Int32Array(buffer), RUN) !== 0;
}

/**
 * Runs `script` so that SIGINT interrupts it (`breakOnSigint`), with the holder thread, if any,
 * out of its way (see the file's comment).
 */
export function runBreakingOnSigint(script: vm.Script): unknown {
  Atomics.store(cells, RUN, 1);
  try {
    return script.runInThisContext({ breakOnSigint: true });
  } finally {
    Atomics.store(cells, RUN, 0);
    Atomics.notify(cells, RUN);
  }
}

/**
 * Starts the thread; `onSigint` runs on the main thread for each SIGINT that arrives while no
 * task runs under `breakOnSigint`. `onSigint` must be listening to the process's SIGINT already;
 * it goes on listening until the thread holds the watchdog, so no signal is lost. The thread
 * ends with the process.
 */
export function holdSigint(onSigint: () => void): void {
  const set = (state: number): void => {
    Atomics.store(cells, STATE, state);
    Atomics.notify(cells, STATE);
    Atomics.notify(cells, RUN);
  };
  const thread = new Worker(__filename, {
    workerData: { holdSigint: runCells } satisfies SigintThreadData,
  });
  thread.on('message', (m: 'ready' | 'SIGINT') => {
    if (m === 'SIGINT') {
      onSigint();
      return;
    }
    // The listener goes first: removing the last one resets the signal's handler, which must
    // not happen after the watchdog has installed its own.
    process.off('SIGINT', onSigint);
    set(HOLDING);
  });
  thread.unref(); // after adding the listener, which would otherwise keep the process alive
  process.on('exit', () => set(RELEASED));
}

function hold(data: SigintThreadData): void {
  const shared = new Int32Array(data.holdSigint);
  const holding = (): boolean => Atomics.load(shared, STATE) === HOLDING;
  parentPort?.postMessage('ready');
  Atomics.wait(shared, STATE, STARTING);
  (globalThis as { __tspCells?: Int32Array }).__tspCells = shared;
  // Registered first, then the run is looked at: a run seen idle began, if at all, after this
  // registration, and so is the newer one.
  const wait = new vm.Script(
    `Atomics.load(__tspCells, ${RUN}) === 0 && Atomics.wait(__tspCells, ${STATE}, ${HOLDING})`,
  );
  while (holding()) {
    try {
      wait.runInThisContext({ breakOnSigint: true });
    } catch {
      parentPort?.postMessage('SIGINT');
    }
    while (holding() && Atomics.load(shared, RUN) !== 0) Atomics.wait(shared, RUN, 1);
  }
}

if (!isMainThread && (workerData as Partial<SigintThreadData>)?.holdSigint) {
  hold(workerData as SigintThreadData);
}

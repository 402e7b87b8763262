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
 */
import * as vm from 'node:vm';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

interface SigintThreadData {
  holdSigint: SharedArrayBuffer;
}

/** States of the cell the two threads share. */
const STARTING = 0;
const HOLDING = 1;
const RELEASED = 2;

/**
 * Starts the thread; `onSigint` runs on the main thread for each SIGINT that arrives while no
 * task runs under `breakOnSigint`. `onSigint` must be listening to the process's SIGINT already;
 * it goes on listening until the thread holds the watchdog, so no signal is lost. The thread
 * ends with the process.
 */
export function holdSigint(onSigint: () => void): void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const set = (state: number): void => {
    Atomics.store(cell, 0, state);
    Atomics.notify(cell, 0);
  };
  const thread = new Worker(__filename, {
    workerData: { holdSigint: cell.buffer as SharedArrayBuffer } satisfies SigintThreadData,
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
  const cell = new Int32Array(data.holdSigint);
  parentPort?.postMessage('ready');
  Atomics.wait(cell, 0, STARTING);
  (globalThis as { __tspCell?: Int32Array }).__tspCell = cell;
  const wait = new vm.Script(`Atomics.wait(__tspCell, 0, ${HOLDING})`);
  while (Atomics.load(cell, 0) === HOLDING) {
    try {
      wait.runInThisContext({ breakOnSigint: true });
    } catch {
      parentPort?.postMessage('SIGINT');
    }
  }
}

if (!isMainThread && (workerData as Partial<SigintThreadData>)?.holdSigint) {
  hold(workerData as SigintThreadData);
}

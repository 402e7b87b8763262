/**
 * Ends the kernel when the Jupyter process that started it ends, as ipykernel's parent poller
 * does. A parent killed outright (`kill -9`) sends nothing; the kernel only sees that it was
 * re-parented, its parent pid changing. The check runs in a thread of its own, so that a cell
 * stuck in a loop does not keep the kernel and its cluster alive.
 */
import { writeSync } from 'node:fs';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

interface ParentWatchData {
  watchParentPid: number;
}

/** How often the thread looks at the parent pid, as often as ipykernel does. */
const POLL_MS = 1000;

/**
 * How long `stop` gets before the thread kills the process, for a cell that an interrupt does
 * not end. The cluster's controller and engines end by themselves when the kernel process does.
 */
const STOP_GRACE_MS = 10_000;

/**
 * Calls `stop` and exits once the parent process has gone, if Jupyter started this kernel as
 * one it owns (it names itself in `JPY_PARENT_PID`; a kernel started on its own is left alone).
 * Returns at once; the watching thread does not keep the process alive.
 * @example watchParent(() => kernel.close());
 */
export function watchParent(stop: () => Promise<void>): void {
  // An orphan from the start (parent pid 1) has no parent left to watch.
  if (!process.env.JPY_PARENT_PID || process.ppid === 1) return;
  const thread = new Worker(__filename, {
    workerData: { watchParentPid: process.ppid } satisfies ParentWatchData,
  });
  thread.once('message', () => {
    // fd 2 directly: during a cell process.stderr goes to the notebook, and there is none now.
    writeSync(2, 'tsparallel kernel: the process that started it ended; stopping\n');
    void stop().finally(() => process.exit(0));
  });
  thread.unref();
}

function watch({ watchParentPid }: ParentWatchData): void {
  const poll = setInterval(() => {
    if (process.ppid === watchParentPid) return;
    clearInterval(poll);
    parentPort?.postMessage('parent-gone');
    // Interrupts a running cell, as Jupyter does, so that the main thread gets to stop.
    process.kill(process.pid, 'SIGINT');
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), STOP_GRACE_MS);
  }, POLL_MS);
}

if (!isMainThread && (workerData as Partial<ParentWatchData> | undefined)?.watchParentPid) {
  watch(workerData as ParentWatchData);
}

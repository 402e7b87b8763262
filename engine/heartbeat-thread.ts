/**
 * The engine's heartbeat and control thread. It runs beside the main thread, so it keeps
 * beating and can deliver signals while user code blocks the main thread in a loop.
 */
import { isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { isMsg, type EngineUsage } from '../protocol/messages';
import { Session } from '../protocol/session';
import type { curveClientOptions } from '../protocol/connection';
import { keptBytes } from './kept-values';
import { readRunningId } from './running-task';
import { ownConnection, type HubConnection } from './shared-link';
import { runsCode } from './sigint-thread';

/** Where the heartbeat goes and how often; what the main thread gives the heartbeat thread. */
export interface HeartbeatData {
  address: string;
  key: string;
  uuid: string;
  /** Milliseconds between beats. */
  period: number;
  /**
   * Milliseconds without an answer after which the engine gives up on the controller. Long
   * enough for a controller to be restarted: until then the engine keeps beating, and
   * registers again when the controller answers.
   */
  hubTimeout: number;
  /**
   * The process whose end ends this engine (`--exit-with-parent`), checked at every beat, so
   * that an engine busy in user code exits too.
   */
  parentPid: number | null;
  /** CURVE options for the socket, when the controller encrypts. */
  curve: ReturnType<typeof curveClientOptions>;
  /** `KeptValues.counter`: the bytes of the values the engine keeps, reported with each beat. */
  kept: SharedArrayBuffer;
}

/** What the main thread gives the heartbeat thread at its start. */
export interface HeartbeatThreadData extends HeartbeatData {
  /** Shared memory of a `RunningSlot`: the task the main thread runs now. */
  running: SharedArrayBuffer;
  /** `runCells`: whether the main thread runs user code, which SIGINT interrupts, now. */
  runCells: SharedArrayBuffer;
  /** Where control events for the main thread go. */
  port: MessagePort;
}

/** Events this thread posts to the engine's main thread. */
export type ControlEvent =
  /** The controller answered the first beat: the engine has joined. */
  | { type: 'joined' }
  | { type: 'abort'; msgIds: string[] }
  | { type: 'shutdown' }
  | { type: 'hub-lost' }
  /** The parent process ended (`--exit-with-parent`). */
  | { type: 'orphaned' }
  /** The controller does not know this engine any more: register again. */
  | { type: 'dropped'; reason: string };

/** What the main thread tells this thread. */
export type ThreadCommand = { type: 'stop' };

/** What the heartbeat does with the controller's control messages and its own silence. */
export interface HeartbeatActions {
  control(event: ControlEvent): void;
  signal(signal: string): void;
  /** An abort names these tasks: interrupt the one running, if it is among them. */
  interruptIfRunning(msgIds: string[]): void;
}

/** How long the main thread gets to stop by itself before the process is ended by signal. */
const STOP_GRACE_MS = 1000;

/**
 * How often an aborted task is looked for among the running, and how long. It is signalled
 * only while its code runs under `breakOnSigint`: while it is prepared or awaits, the main
 * thread interrupts it by itself, and a SIGINT then would reach the thread holding the
 * watchdog (sigint-thread.ts) for nothing. An abort may come just before its task starts, or
 * as its code is about to run: the task is looked for again until then.
 */
const ABORT_RECHECK_MS = 100;
const ABORT_WATCH_MS = 5000;

/** A main thread stuck in user code cannot act on a request to stop; end the process instead. */
function endProcessSoon(): void {
  setTimeout(() => process.kill(process.pid, 'SIGTERM'), STOP_GRACE_MS).unref();
}

/**
 * Beats to the controller every period and acts on its control messages; in the heartbeat
 * thread, or in the main thread of a lightweight engine. Returns the function that stops it.
 */
export function startHeartbeat(
  data: HeartbeatData,
  act: HeartbeatActions,
  /** Where beats go: a socket of the engine's own unless given its share of a link. */
  channel: HubConnection = ownConnection(
    data.address,
    { linger: 0, ...data.curve },
    new Session(data.key),
    data.uuid,
  ),
): () => void {
  const { session } = channel;

  let lastAnswer = performance.now();
  let lastBeat = 0;
  let stopped = false;
  let aligning = false;
  const usage = usageMeter(data.kept);
  const sendBeat = (): void => {
    lastBeat = performance.now();
    channel.send(session.msg('heartbeat', { usage: usage() }));
  };
  const stop = (): void => {
    stopped = true;
    clearInterval(beat);
  };
  const tick = (): void => {
    if (data.parentPid !== null && process.ppid !== data.parentPid) {
      stop();
      act.control({ type: 'orphaned' });
      return;
    }
    if (performance.now() - lastAnswer > data.hubTimeout) {
      stop();
      act.control({ type: 'hub-lost' });
      return;
    }
    sendBeat();
    if (!aligning && Date.now() % data.period > data.period / 20) align();
  };
  // An interval, not a chain of timeouts: Node re-arms an interval even when a SIGINT sent to
  // this process ends its callback midway, and the beat must go on.
  const beat = setInterval(tick, data.period);
  // Timers run late and an interval keeps the lateness, so the beat is moved back onto the
  // period boundaries (see untilNextBeat) whenever it slipped. If a SIGINT ends this timeout
  // midway, only the alignment is lost, never the beat.
  const align = (): void => {
    aligning = true;
    setTimeout(() => {
      aligning = false;
      if (stopped) return;
      beat.refresh();
      // No second beat right after one (the first beat, or a tick just before the boundary).
      if (performance.now() - lastBeat > data.period / 2) tick();
    }, untilNextBeat(data.period));
  };
  // The engine joins the cluster at its first beat: send it now, not a period from now.
  sendBeat();
  align();

  void (async () => {
    let joined = false;
    for await (const msg of channel.messages()) {
      lastAnswer = performance.now();
      if (!joined) {
        joined = true;
        act.control({ type: 'joined' });
      }
      if (isMsg(msg, 'signal_request')) {
        act.signal(msg.content.signal);
      } else if (isMsg(msg, 'abort_request')) {
        act.control({ type: 'abort', msgIds: msg.content.msg_ids });
        act.interruptIfRunning(msg.content.msg_ids);
      } else if (isMsg(msg, 'registration_lost')) {
        act.control({ type: 'dropped', reason: msg.content.reason });
      } else if (isMsg(msg, 'shutdown_request')) {
        act.control({ type: 'shutdown' });
      }
    }
  })();
  return () => {
    stop();
    channel.close();
  };
}

/**
 * Returns a function that measures this process (every thread of it) at each call: its CPU use
 * since the previous call, in percent of one core, and its resident memory; and the bytes of
 * the values its engine keeps, read through `kept`.
 */
function usageMeter(kept: SharedArrayBuffer): () => EngineUsage {
  let cpu = process.cpuUsage();
  let at = performance.now();
  return () => {
    const now = performance.now();
    const used = process.cpuUsage(cpu);
    cpu = process.cpuUsage();
    const percent = (used.user + used.system) / 10 / Math.max(1, now - at);
    at = now;
    return { cpu: Math.round(percent), rss: process.memoryUsage.rss(), kept: keptBytes(kept) };
  };
}

/**
 * Milliseconds to the next multiple of `period` on the wall clock. Every engine on a host beats
 * at the same instants, as ipyparallel's engines answer one ping together: the controller then
 * takes a thousand beats in one burst, read and answered in batches, instead of one wake-up
 * of each of its threads per beat.
 */
function untilNextBeat(period: number): number {
  return period - (Date.now() % period);
}

function run(data: HeartbeatThreadData): void {
  /** Aborted tasks, each until when it is looked for. */
  const aborted = new Map<string, number>();
  let recheck: NodeJS.Timeout | undefined;
  const interruptAborted = (): void => {
    const now = performance.now();
    for (const [id, until] of aborted) if (until < now) aborted.delete(id);
    const running = readRunningId(data.running);
    if (running !== null && aborted.has(running) && runsCode(data.runCells)) {
      process.kill(process.pid, 'SIGINT');
    }
    if (aborted.size === 0) {
      clearInterval(recheck);
      recheck = undefined;
    }
  };
  const stop = startHeartbeat(data, {
    control: (event) => {
      data.port.postMessage(event);
      if (event.type === 'shutdown' || event.type === 'hub-lost' || event.type === 'orphaned') {
        endProcessSoon();
      }
    },
    signal: (signal) => {
      try {
        process.kill(process.pid, signal);
      } catch {
        // Not a signal this system knows; the controller checks names, so only a stray sender.
      }
    },
    interruptIfRunning: (msgIds) => {
      const until = performance.now() + ABORT_WATCH_MS;
      for (const id of msgIds) aborted.set(id, until);
      interruptAborted();
      recheck ??= setInterval(interruptAborted, ABORT_RECHECK_MS);
    },
  });
  parentPort?.on('message', (_stop: ThreadCommand) => {
    clearInterval(recheck);
    // Closing the socket before the thread ends keeps libzmq's teardown orderly.
    stop();
    process.exit(0);
  });
}

if (!isMainThread && (workerData as Partial<HeartbeatThreadData> | undefined)?.port) {
  run(workerData as HeartbeatThreadData);
}

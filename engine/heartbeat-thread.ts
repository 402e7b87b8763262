/**
 * The engine's heartbeat and control thread. It runs beside the main thread, so it keeps
 * beating and can deliver signals while user code blocks the main thread in a loop.
 */
import { isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import * as zmq from 'zeromq';
import { Channel, NO_DROPPING } from '../protocol/channel';
import { isMsg } from '../protocol/messages';
import { Session } from '../protocol/session';
import type { curveClientOptions } from '../protocol/connection';
import { RunningSlot } from './running-slot';

/** What the main thread gives the heartbeat thread at its start. */
export interface HeartbeatThreadData {
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
  /** Shared memory of a `RunningSlot`: the task the main thread runs now. */
  running: SharedArrayBuffer;
  /** Where control events for the main thread go. */
  port: MessagePort;
}

/** Events this thread posts to the engine's main thread. */
export type ControlEvent =
  | { type: 'abort'; msgIds: string[] }
  | { type: 'shutdown' }
  | { type: 'hub-lost' }
  /** The parent process ended (`--exit-with-parent`). */
  | { type: 'orphaned' }
  /** The controller does not know this engine any more: register again. */
  | { type: 'dropped'; reason: string };

/** What the main thread tells this thread. */
export type ThreadCommand = { type: 'stop' };

/** How long the main thread gets to stop by itself before the process is ended by signal. */
const STOP_GRACE_MS = 1000;

/** A main thread stuck in user code cannot act on a request to stop; end the process instead. */
function endProcessSoon(): void {
  setTimeout(() => process.kill(process.pid, 'SIGTERM'), STOP_GRACE_MS).unref();
}

async function run(data: HeartbeatThreadData): Promise<void> {
  const { port } = data;
  const post = (event: ControlEvent): void => port.postMessage(event);
  const session = new Session(data.key);
  const channel = new Channel(
    new zmq.Dealer({ ...NO_DROPPING, routingId: data.uuid, linger: 0, ...data.curve }),
    session,
  );
  channel.socket.connect(data.address);

  let lastAnswer = performance.now();
  const sendBeat = (): void => channel.send(session.msg('heartbeat', {}));
  const beat = setInterval(() => {
    if (data.parentPid !== null && process.ppid !== data.parentPid) {
      clearInterval(beat);
      post({ type: 'orphaned' });
      endProcessSoon();
      return;
    }
    if (performance.now() - lastAnswer > data.hubTimeout) {
      clearInterval(beat);
      post({ type: 'hub-lost' });
      endProcessSoon();
      return;
    }
    sendBeat();
  }, data.period);
  // The engine joins the cluster at its first beat: send it now, not a period from now.
  sendBeat();

  const running = new RunningSlot(data.running);
  parentPort?.on('message', (_stop: ThreadCommand) => {
    // Closing the socket before the thread ends keeps libzmq's teardown orderly.
    clearInterval(beat);
    channel.close();
    process.exit(0);
  });

  for await (const msg of channel.messages()) {
    lastAnswer = performance.now();
    if (isMsg(msg, 'signal_request')) {
      try {
        process.kill(process.pid, msg.content.signal);
      } catch {
        // Not a signal this system knows; the controller checks names, so only a stray sender.
      }
    } else if (isMsg(msg, 'abort_request')) {
      post({ type: 'abort', msgIds: msg.content.msg_ids });
      const now = running.get();
      if (now !== null && msg.content.msg_ids.includes(now)) process.kill(process.pid, 'SIGINT');
    } else if (isMsg(msg, 'registration_lost')) {
      post({ type: 'dropped', reason: msg.content.reason });
    } else if (isMsg(msg, 'shutdown_request')) {
      post({ type: 'shutdown' });
      endProcessSoon();
    }
  }
}

if (!isMainThread) void run(workerData as HeartbeatThreadData);

/**
 * The engine's heartbeat and control thread. It runs beside the main thread, so it keeps
 * beating and can deliver signals while user code blocks the main thread in a loop.
 */
import { isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import * as zmq from 'zeromq';
import { Channel } from '../protocol/channel';
import { isMsg } from '../protocol/messages';
import { Session } from '../protocol/session';

export interface HeartbeatThreadData {
  address: string;
  key: string;
  uuid: string;
  engineId: number;
  /** Milliseconds between beats. */
  period: number;
  /** Milliseconds without an answer after which the controller counts as gone. */
  hubDeadline: number;
  /** Where control events for the main thread go. */
  port: MessagePort;
}

/** Events this thread posts to the engine's main thread. */
export type ControlEvent =
  | { type: 'abort'; msgIds: string[] }
  | { type: 'shutdown' }
  | { type: 'hub-lost' };

/** What the main thread tells this thread: which task runs now, or to stop. */
export type ThreadCommand = { type: 'running'; msgId: string | null } | { type: 'stop' };

/** How long a shutdown waits for the main thread before the process is ended by signal. */
const SHUTDOWN_GRACE_MS = 1000;

async function run(data: HeartbeatThreadData): Promise<void> {
  const { port } = data;
  const post = (event: ControlEvent): void => port.postMessage(event);
  const session = new Session(data.key);
  const channel = new Channel(new zmq.Dealer({ routingId: data.uuid, linger: 0 }), session);
  channel.socket.connect(data.address);

  let lastAnswer = performance.now();
  const beat = setInterval(() => {
    if (performance.now() - lastAnswer > data.hubDeadline) {
      clearInterval(beat);
      post({ type: 'hub-lost' });
      return;
    }
    channel.send(session.msg('heartbeat', { id: data.engineId }));
  }, data.period);

  let running: string | null = null;
  parentPort?.on('message', (command: ThreadCommand) => {
    if (command.type === 'running') {
      running = command.msgId;
      return;
    }
    // Closing the socket before the thread ends keeps libzmq's teardown orderly.
    clearInterval(beat);
    channel.close();
    process.exit(0);
  });

  for await (const msg of channel.messages()) {
    lastAnswer = performance.now();
    if (isMsg(msg, 'signal_request')) {
      process.kill(process.pid, msg.content.signal as NodeJS.Signals);
    } else if (isMsg(msg, 'abort_request')) {
      post({ type: 'abort', msgIds: msg.content.msg_ids });
      if (running !== null && msg.content.msg_ids.includes(running)) {
        process.kill(process.pid, 'SIGINT');
      }
    } else if (isMsg(msg, 'shutdown_request')) {
      post({ type: 'shutdown' });
      // A main thread stuck in user code cannot act on the request; end the process instead.
      setTimeout(() => process.kill(process.pid, 'SIGTERM'), SHUTDOWN_GRACE_MS).unref();
    }
  }
}

if (!isMainThread) void run(workerData as HeartbeatThreadData);

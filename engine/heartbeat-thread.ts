/**
 * The engine's heartbeat and control thread. It runs beside the main thread, so it keeps
 * beating and can deliver signals while user code blocks the main thread in a loop.
 */
import { isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { isMsg, type EngineUsage, type Message } from '../protocol/messages';
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
 * Beats to the controller every period from its own socket and acts on its control messages, in
 * the heartbeat thread. Returns the function that stops it.
 */
function startHeartbeat(data: HeartbeatData, act: HeartbeatActions): () => void {
  const channel = ownConnection(
    data.address,
    { linger: 0, ...data.curve },
    new Session(data.key),
    data.uuid,
  );
  const heart = new Heart(data, act);
  const pulse = new Pulse(channel, data.period, false, () => channel.close());
  pulse.add(heart);
  // Everything on this socket is for this engine, the answers to its beats included.
  void (async () => {
    for await (const msg of channel.messages()) heart.receive(msg);
  })();
  return () => pulse.remove(heart);
}

/** The beats of this process's lightweight engines, one for all, by the address they go to. */
const processPulses = new Map<string, Pulse>();

/**
 * Beats for a lightweight engine, together with every other of its process: the process sends
 * one beat every period that names them all, with the process's usage measured once, and the
 * hub's one answer to it counts for each (see `handleHeartbeat` in controller/hub.ts). An engine
 * that stops leaves the beat, so the hub notices it alone; a process that dies takes all of its
 * engines' beats with it. `connect` opens a share of the process's link to the hub's heartbeat
 * socket: the engine's own (`uuid`), which its control messages come on, or the process's
 * (`null`), which the answers come on. Returns the function that stops the engine's beating.
 */
export function joinProcessHeartbeat(
  data: HeartbeatData,
  act: HeartbeatActions,
  connect: (uuid: string | null) => HubConnection,
): () => void {
  const heart = new Heart(data, act);
  const own = connect(data.uuid);
  void (async () => {
    for await (const msg of own.messages()) heart.receive(msg);
  })();
  let pulse = processPulses.get(data.address);
  if (!pulse) {
    const share = connect(null);
    // Engines of one process beat at the period of the first: they all registered with one
    // controller, which told each the same.
    const shared = new Pulse(share, data.period, true, () => {
      processPulses.delete(data.address);
      share.close();
    });
    processPulses.set(data.address, shared);
    void (async () => {
      for await (const msg of share.messages()) if (isMsg(msg, 'heartbeat')) shared.answered();
    })();
    pulse = shared;
  }
  pulse.add(heart);
  return () => {
    pulse.remove(heart);
    own.close();
  };
}

/** One engine's side of the beat: whether it goes on beating, and what the hub tells it. */
class Heart {
  private lastAnswer = performance.now();
  private joined = false;

  constructor(
    readonly data: HeartbeatData,
    private readonly act: HeartbeatActions,
  ) {}

  /** Whether the engine beats on; when not, it was told why (its parent ended, or the hub). */
  beatsOn(): boolean {
    if (this.data.parentPid !== null && process.ppid !== this.data.parentPid) {
      this.act.control({ type: 'orphaned' });
      return false;
    }
    if (performance.now() - this.lastAnswer > this.data.hubTimeout) {
      this.act.control({ type: 'hub-lost' });
      return false;
    }
    return true;
  }

  /** The hub answered a beat of this engine, or spoke to it: it lives, and the engine joined. */
  answered(): void {
    this.lastAnswer = performance.now();
    if (this.joined) return;
    this.joined = true;
    this.act.control({ type: 'joined' });
  }

  /** A message from the hub to this engine. */
  receive(msg: Message): void {
    this.answered();
    if (isMsg(msg, 'signal_request')) {
      this.act.signal(msg.content.signal);
    } else if (isMsg(msg, 'abort_request')) {
      this.act.control({ type: 'abort', msgIds: msg.content.msg_ids });
      this.act.interruptIfRunning(msg.content.msg_ids);
    } else if (isMsg(msg, 'registration_lost')) {
      this.act.control({ type: 'dropped', reason: msg.content.reason });
    } else if (isMsg(msg, 'shutdown_request')) {
      this.act.control({ type: 'shutdown' });
    }
  }
}

/**
 * Sends the beats of its hearts over one connection every period, with the process's usage:
 * one engine's on its own socket, or (`naming` them) the lightweight engines' of a process on
 * their shared link. Calls `ended` once its last heart left.
 */
class Pulse {
  private readonly hearts = new Set<Heart>();
  /** Hearts added since the last beat, which beat at the end of the turn: they join then. */
  private readonly joining: Heart[] = [];
  private readonly usage = usageMeter();
  private lastBeat = 0;
  private aligning = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly channel: HubConnection,
    private readonly period: number,
    private readonly naming: boolean,
    private readonly ended: () => void,
  ) {
    // An interval, not a chain of timeouts: Node re-arms an interval even when a SIGINT sent to
    // this process ends its callback midway, and the beat must go on.
    this.timer = setInterval(() => this.tick(), period);
    this.align();
  }

  add(heart: Heart): void {
    this.hearts.add(heart);
    if (this.joining.push(heart) > 1) return;
    setImmediate(() => this.beat(this.joining.splice(0).filter((h) => this.hearts.has(h))));
  }

  remove(heart: Heart): void {
    if (!this.hearts.delete(heart) || this.hearts.size > 0) return;
    clearInterval(this.timer);
    this.ended();
  }

  /** An answer to a beat naming the hearts: each counts it as its own. */
  answered(): void {
    for (const heart of this.hearts) heart.answered();
  }

  private beat(hearts: Heart[]): void {
    if (hearts.length === 0) return;
    this.lastBeat = performance.now();
    const usage = this.usage([...this.hearts].map((h) => h.data.kept));
    const engines = hearts.map((h) => h.data.uuid);
    const { session } = this.channel;
    this.channel.send(session.msg('heartbeat', this.naming ? { usage, engines } : { usage }));
  }

  private tick(): void {
    for (const heart of this.hearts) if (!heart.beatsOn()) this.remove(heart);
    if (this.hearts.size === 0) return;
    this.beat([...this.hearts]);
    if (!this.aligning && Date.now() % this.period > this.period / 20) this.align();
  }

  /**
   * Timers run late and an interval keeps the lateness, so the beat is moved back onto the
   * period boundaries (see untilNextBeat) whenever it slipped. If a SIGINT ends this timeout
   * midway, only the alignment is lost, never the beat.
   */
  private align(): void {
    this.aligning = true;
    setTimeout(() => {
      this.aligning = false;
      if (this.hearts.size === 0) return;
      this.timer.refresh();
      // No second beat right after one (a tick just before the boundary, or hearts joining).
      if (performance.now() - this.lastBeat > this.period / 2) this.tick();
    }, untilNextBeat(this.period));
  }
}

/**
 * Returns a function that measures this process (every thread of it) at each call: its CPU use
 * since the previous call, in percent of one core, its resident memory, and the bytes of the
 * values its engines keep, read through their `kept` counters.
 */
function usageMeter(): (kept: readonly SharedArrayBuffer[]) => EngineUsage {
  let cpu = process.cpuUsage();
  let at = performance.now();
  return (kept) => {
    const now = performance.now();
    const used = process.cpuUsage(cpu);
    cpu = process.cpuUsage();
    const percent = (used.user + used.system) / 10 / Math.max(1, now - at);
    at = now;
    const bytes = kept.reduce((n, k) => n + keptBytes(k), 0);
    return { cpu: Math.round(percent), rss: process.memoryUsage.rss(), kept: bytes };
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

/**
 * The engine process's sockets and task loop: registers with the controller, starts the
 * heartbeat thread, runs tasks one at a time through the kernel and sends their output and
 * replies. What the running task owns is in running-task.ts, its output's batching in output.ts,
 * and what the engine takes over from Node (stdout, `process.exit`, crash handlers, SIGINT) in
 * process-hooks.ts.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  MessageChannel,
  receiveMessageOnPort,
  Worker,
  type MessagePort,
} from 'node:worker_threads';
import * as zmq from 'zeromq';
import { Channel } from '../protocol/channel';
import { resolveOptions, type Resolved } from '../options/schema';
import {
  connectionFilePath,
  curveClientOptions,
  readConnectionFile,
  type EngineConnectionInfo,
} from '../protocol/connection';
import { ConnectionError } from '../protocol/errors';
import {
  DIRECT_REPORT_MS,
  isMsg,
  packCarried,
  type ContentMap,
  type IMessage,
  type Message,
} from '../protocol/messages';
import { ReplayGuard, Session } from '../protocol/session';
import { SharedMemory, sharedMemoryHost, sweepSharedMemory } from '../protocol/shared-memory';
import {
  joinProcessHeartbeat,
  type ControlEvent,
  type HeartbeatData,
  type HeartbeatThreadData,
  type ThreadCommand,
} from './heartbeat-thread';
import { EngineKernel, type MaybePromise, type OutputEvent, type TaskOutcome } from './kernel';
import { mpiPlace } from './mpi-place';
import { engineOptions, type EngineOptions } from './options';
import { hookProcess, type ProcessHooks } from './process-hooks';
import { RunningSlot, RunningTask, type TaskOrigin, type TaskRequest } from './running-task';
import { runCells } from './sigint-thread';
import { openDirectSocket, type DirectSocket } from './direct-socket';
import { KeptValues, PeerValues } from './kept-values';
import { ownConnection, sharedConnection, type HubConnection } from './shared-link';

/** The process that started this one, whose end ends the engine under `exitWithParent`. */
const PARENT_PID = process.ppid;

/** How many ids of aborted tasks are remembered until the tasks arrive. */
const ABORTED_MEMORY = 10_000;
/** How long a registration sent after being dropped is waited for before it is sent again. */
const REJOIN_PATIENCE_MS = 5000;
/** Most replies to direct tasks told to the hub in one message. */
const REPORT_BATCH = 1000;
/** How many ids of direct tasks are remembered, per generation, to drop one sent twice. */
const DIRECT_TASK_MEMORY = 10_000;
/** Most replies held to leave together (see `EngineServer.answer`). */
const HELD_MAX = 64;
/** A reply with a frame this large leaves at once and alone, after those held before it. */
const HELD_BYTES = 64 * 1024;

/** A reply to a task. */
type TaskReply = IMessage<'apply_reply' | 'execute_reply'>;
/** A task to answer: a running one, or one aborted before it ran, which has no output. */
type Answered = Pick<RunningTask, 'request' | 'replyType' | 'origin' | 'started'> &
  Partial<Pick<RunningTask, 'output'>>;

/** Whether a reply says its result stays on this engine (see `EngineKernel.apply`). */
function keptHere(content: IMessage<'apply_reply'>['content']): boolean {
  return content.status === 'ok' && 'kept' in content && content.kept !== undefined;
}

/** The engine process; see the file's comment. */
export class EngineServer {
  private kernel!: EngineKernel;
  /** Stops the heartbeat; resolves once it has. */
  private stopHeartbeat!: () => Promise<void>;
  /** What this engine took over from Node; none for a lightweight engine, which shares it. */
  private hooks: ProcessHooks | undefined;
  private readonly control: { main: MessagePort; thread: MessagePort };
  /**
   * Ids of the tasks taken from clients' direct sockets: a client makes again a send that an
   * interrupt cut short (see client/direct-paths.ts), and the copy must not run twice.
   */
  private readonly directTaskIds = new ReplayGuard(DIRECT_TASK_MEMORY);
  /** Ids of tasks aborted before they ended here; bounded, as some never arrive. */
  private readonly aborted = new Set<string>();
  private readonly running = new RunningSlot();
  private stopping = false;
  /**
   * When the last registration after being dropped was sent; repeated notices within a while
   * are answered by it (the controller's answer to it is on its way).
   */
  private rejoinedAt = -Infinity;
  /** Where MPI placed this engine, if it runs under `mpiexec`. */
  private readonly mpi = mpiPlace();
  /** Tasks run one at a time, in the order they arrived from the hub and from clients. */
  private work: Promise<void> = Promise.resolve();
  /** Messages taken and not yet handled: the tasks in hand. */
  private inHand = 0;
  /** Messages taken whose handling has not ended: the one being handled, and those in hand. */
  private unfinished = 0;
  /** Replies ready to leave, held while the next task in hand is quick (see `answer`). */
  private held: { channel: HubConnection; reply: TaskReply }[] = [];
  /** Replies sent straight to clients and not yet told to the hub; told together (see `report`). */
  private unreported: TaskReply[] = [];
  private reportTimer: NodeJS.Timeout | undefined;
  private reportSoon: NodeJS.Immediate | undefined;
  /** Results kept here until nobody needs them (see kept-values.ts). */
  private readonly kept = new KeptValues();
  /** Values other engines keep, fetched for the tasks that take them; made at registration. */
  private peers!: PeerValues;
  private sharedMemory!: SharedMemory;
  id = -1;

  private constructor(
    private readonly info: EngineConnectionInfo,
    /** To the hub: a socket of its own, or for a lightweight engine its process's shared link. */
    private readonly channel: HubConnection,
    private readonly options: Resolved<typeof engineOptions.specs>,
    private readonly uuid: string,
    /** Where clients send tasks straight (see direct-socket.ts), if this host has an address. */
    private readonly direct: DirectSocket | undefined,
  ) {
    const { port1, port2 } = new MessageChannel();
    this.control = { main: port1, thread: port2 };
  }

  /**
   * Connects, registers and serves until shut down. Resolves once registered. Throws a
   * `TypeError` or `RangeError` naming a bad option.
   */
  static async start(given: EngineOptions): Promise<EngineServer> {
    const options = resolveOptions(engineOptions, given);
    const file = options.connectionFile ?? connectionFilePath('engine', options);
    const info = await readConnectionFile(file, 'engine');
    const session = new Session(info.key);
    sweepSharedMemory();
    const uuid = randomUUID();
    const server = new EngineServer(
      info,
      options.lightweight
        ? sharedConnection(info.engine, socketOptions(info), session, uuid, options.log)
        : ownConnection(info.engine, socketOptions(info), session, uuid, options.log),
      options,
      uuid,
      await openDirectSocket(info, session, options.log),
    );
    await server.register();
    return server;
  }

  private sendRegistration(): void {
    const { channel, options, uuid, mpi } = this;
    channel.send(
      channel.session.msg('registration_request', {
        uuid,
        pid: process.pid,
        hostname: hostname(),
        engine_set: options.engineSet,
        mpi,
        shared_memory: sharedMemoryHost(),
        direct: this.direct?.address,
        resources: options.resources,
      }),
    );
  }

  private async register(): Promise<void> {
    const { channel, options, uuid } = this;
    this.sendRegistration();
    const messages = channel.messages();
    const timer = setTimeout(() => {
      options.log(
        `no answer from the controller at ${this.info.engine} within ${options.registrationTimeout} ms; is it running?`,
      );
      process.exit(1);
    }, options.registrationTimeout);
    const first = await messages.next();
    clearTimeout(timer);
    if (first.done || !isMsg(first.value, 'registration_reply')) {
      throw new ConnectionError('the controller did not answer the registration request');
    }
    const reply = first.value.content;
    if (reply.status !== 'ok') throw new ConnectionError(`registration refused: ${reply.evalue}`);
    this.id = reply.id;
    const sharedMemory = new SharedMemory(this.info.key);
    this.peers = new PeerValues(channel.session, sharedMemory, options.log);
    this.sharedMemory = sharedMemory;
    // Output is credited to the task whose code made it; a finished task's is dropped.
    this.kernel = new EngineKernel(
      this.id,
      (event) => this.running.callerTask()?.output.emit(event),
      sharedMemory,
      { kept: this.kept, peers: this.peers, fetchable: this.direct !== undefined },
      !options.lightweight,
    );
    // User code splits work by `mpi.rank`, as an MPI program would.
    if (this.mpi) this.kernel.namespace.mpi = this.mpi;
    this.startHeartbeat(uuid, reply.heartbeat_period);
    if (!options.lightweight) {
      this.hooks = hookProcess({
        callerOutput: () => this.running.callerTask()?.output,
        taskRunning: () => this.running.task !== undefined,
        failWaitingTask: (error) => this.kernel.failWaitingTask(error),
        interrupt: () => this.kernel.interrupt(),
        exiting: (code) => this.exiting(code),
        log: options.log,
      });
      this.control.main.on('message', (event: ControlEvent) => this.onControl(event));
    }
    options.log(`registered as engine ${this.id}`);
    // The rest come to `serve`, without the generator's turns.
    void this.serve();
  }

  private startHeartbeat(uuid: string, period: number): void {
    const data: HeartbeatData = {
      address: this.info.heartbeat,
      key: this.info.key,
      uuid,
      period,
      hubTimeout: this.options.hubTimeout,
      parentPid: this.options.exitWithParent ? PARENT_PID : null,
      curve: curveClientOptions(this.info),
      kept: this.kept.counter,
    };
    if (this.options.lightweight) {
      const { session } = this.channel;
      const link = { linger: 0, ...data.curve };
      const stop = joinProcessHeartbeat(
        data,
        {
          control: (event) => this.onControl(event),
          signal: (signal) =>
            signal === 'SIGINT'
              ? this.kernel.interrupt()
              : this.options.log(`engine ${this.id} ignores ${signal}: it shares its process`),
          // The abort event interrupts the task (see onControl).
          interruptIfRunning: () => {},
        },
        (share) => sharedConnection(data.address, link, session, share, this.options.log),
      );
      this.stopHeartbeat = async () => stop();
      return;
    }
    const thread = new Worker(join(__dirname, 'heartbeat-thread.js'), {
      workerData: {
        ...data,
        port: this.control.thread,
        running: this.running.buffer,
        runCells,
      } satisfies HeartbeatThreadData,
      transferList: [this.control.thread],
    });
    thread.unref();
    this.stopHeartbeat = async () => {
      const threadEnded = new Promise((resolve) => thread.once('exit', resolve));
      thread.postMessage({ type: 'stop' } satisfies ThreadCommand);
      await threadEnded;
    };
  }

  /** Takes messages from the hub, and tasks from clients on the direct socket, in turn. */
  private async serve(): Promise<void> {
    if (this.direct) void this.serveDirect(this.direct);
    await this.channel.serve(({ msg }, more) => {
      // About kept values: at once, not behind the tasks queued here.
      if (isMsg(msg, 'value_release')) this.kept.release(msg.content.msg_ids);
      else if (isMsg(msg, 'unregistration_notification'))
        this.peers.lost(msg.content.id, msg.content.reason);
      else this.take(msg, 'hub', more);
    });
  }

  /**
   * Clients send tasks here and say hello, and clients and engines ask for kept values
   * (answered at once); anything else (a registration reply) is the hub's.
   */
  private async serveDirect(direct: DirectSocket): Promise<void> {
    const { channel } = direct;
    await channel.serve(({ msg }, more) => {
      if (isMsg(msg, 'apply_request') || isMsg(msg, 'execute_request')) {
        if (this.directTaskIds.firstSight(msg.header.msg_id)) this.take(msg, 'client', more);
        else this.options.log(`dropped task ${msg.header.msg_id}, sent twice by its client`);
      } else if (isMsg(msg, 'value_request')) this.giveValue(channel, msg);
      else if (isMsg(msg, 'direct_hello')) direct.greet(msg.identities[0]);
    });
  }

  /** Answers a request for a value kept here: through shared memory when the asker sees it. */
  private giveValue(channel: Channel, request: IMessage<'value_request'>): void {
    const msgId = request.content.msg_id;
    const frames = this.kept.get(msgId);
    const answer = { parent: request.header, identities: request.identities };
    if (!frames) {
      const evalue = `engine ${this.id} keeps no value of task ${msgId}: it was released, or never kept here`;
      channel.send(
        channel.session.msg(
          'value_reply',
          { status: 'error', ename: 'ReleasedError', evalue, traceback: [], engine_id: this.id },
          answer,
        ),
      );
      return;
    }
    const reader = this.sharedMemory.readerOf(request.metadata);
    const segment = reader && this.sharedMemory.write(frames, reader.host, reader.pid);
    channel.send(
      channel.session.msg(
        'value_reply',
        { status: 'ok' },
        segment ? { ...answer, metadata: segment } : { ...answer, buffers: frames },
      ),
    );
  }

  /**
   * Queues `msg` behind the messages taken before it; with none, and no more of its batch
   * (`more`, whose replies would leave together), handles it at once, so that a quick task
   * runs, and its reply leaves, in the turn it arrived in.
   */
  private take(msg: Message, origin: TaskOrigin, more = false): void {
    this.inHand++;
    this.work =
      this.unfinished++ === 0 && !more
        ? this.handle(msg, origin)
        : this.work.then(() => this.handle(msg, origin));
  }

  private async handle(msg: Message, origin: TaskOrigin): Promise<void> {
    this.inHand--;
    try {
      // Held replies and reports wait for a quick task only; before anything else, they leave,
      // with those of the other engines sharing this one's link.
      if (!this.kernel.isQuick(msg)) {
        this.sendHeld();
        this.flushReports();
        this.channel.flush();
      }
      // Control events that arrived while the previous task ran must count before this one.
      this.drainControl();
      if (isMsg(msg, 'registration_reply')) {
        this.registered(msg.content);
      } else if (isMsg(msg, 'apply_request')) {
        await this.runTask(msg, 'apply_reply', origin, () => this.kernel.apply(msg));
      } else if (isMsg(msg, 'execute_request')) {
        const { code, silent } = msg.content;
        await this.runTask(msg, 'execute_reply', origin, () => this.kernel.execute(code, silent));
      }
    } catch (e) {
      // A bug here must cost one task, not the engine and everything queued on it.
      this.options.log(`failed to run ${msg.header.msg_id}: ${(e as Error).stack}`);
    } finally {
      this.unfinished--;
    }
  }

  /** The controller took this engine back after dropping it, under a new id. */
  private registered(reply: ContentMap['registration_reply']): void {
    this.rejoinedAt = -Infinity;
    if (reply.status !== 'ok') {
      void this.stop(1, `registration refused: ${reply.evalue}`);
      return;
    }
    if (reply.id === this.id) return; // an answer to a repeated request
    this.options.log(`registered again, as engine ${reply.id} (was ${this.id})`);
    this.id = reply.id;
    this.kernel.engineId = reply.id;
  }

  /** Runs one task unless it was aborted, with its output captured, and replies. */
  private async runTask(
    msg: TaskRequest,
    replyType: RunningTask['replyType'],
    origin: TaskOrigin,
    run: () => MaybePromise<TaskOutcome<ContentMap['apply_reply'] | ContentMap['execute_reply']>>,
  ): Promise<void> {
    if (this.aborted.delete(msg.header.msg_id)) {
      const started = new Date().toISOString();
      this.reply({ request: msg, replyType, origin, started }, this.abortedContent());
      return;
    }
    const task = new RunningTask(msg, replyType, origin, (event) =>
      this.sendOutput(msg, origin, event),
    );
    const outcome = await this.running.run(task, run);
    task.output.flush();
    // An abort that interrupted this task arrived while it ran; it decides how the task ends.
    this.drainControl();
    if (task.abandoned) return;
    const content = this.aborted.delete(task.id) ? this.abortedContent() : outcome.content;
    // A quick run lets the hub queue more such tasks here (see schedulers/task-queue.ts).
    const quick = this.kernel.isQuick(msg);
    this.reply(
      task,
      content,
      outcome.buffers,
      quick ? { ...outcome.metadata, quick } : outcome.metadata,
    );
  }

  /** Handles control events now, even if the event loop has not delivered them yet. */
  private drainControl(): void {
    for (
      let m = receiveMessageOnPort(this.control.main);
      m;
      m = receiveMessageOnPort(this.control.main)
    ) {
      this.onControl(m.message as ControlEvent);
    }
  }

  /**
   * Answers a task: straight to its client where it can (see `straightTo`), telling the hub
   * afterwards (see `report`), else through the hub.
   */
  private reply(
    task: Answered,
    content: IMessage<'apply_reply'>['content'],
    buffers: Buffer[] = [],
    extra: Record<string, unknown> = {},
  ): void {
    // The hub tells a rerun from an earlier run on this engine by it.
    const attempt = task.request.metadata.attempt;
    const metadata = {
      ...extra,
      ...(attempt !== undefined && { attempt }),
      engine_id: this.id,
      started: task.started,
      completed: new Date().toISOString(),
    };
    const reply = this.channel.session.msg<'apply_reply' | 'execute_reply'>(
      task.replyType,
      content,
      { parent: task.request.header, metadata, buffers },
    );
    const client = this.straightTo(task, content);
    if (!this.direct || client === undefined) {
      this.answer(this.channel, reply);
      return;
    }
    // A kept value that rides along is the hub's copy (see `EngineKernel.apply`).
    this.answer(this.direct.channel, {
      ...reply,
      identities: client,
      ...(keptHere(content) && { buffers: [] }),
    });
    this.report(reply, task.origin === 'hub');
  }

  /**
   * Where on the direct socket to answer `task`, or `undefined` to answer through the hub: a
   * task its client sent straight goes back the same way, and so does one from the hub whose
   * client said hello here (a round trip then crosses the hub once, not twice), unless the hub
   * must have the reply first. It must when the task's output went through it (the reply
   * would overtake it), when the result stays here (the hub holds the client's copy until it
   * is wanted) and when the task takes other tasks' results (the hub reruns a task that could
   * not fetch them).
   */
  private straightTo(
    task: Answered,
    content: IMessage<'apply_reply'>['content'],
  ): Buffer[] | undefined {
    const { request } = task;
    if (task.origin === 'client') return request.identities;
    const client = request.header.session;
    const mustSee =
      task.output?.anySent === true ||
      keptHere(content) ||
      ('results' in request.content && request.content.results !== undefined);
    return !mustSee && this.direct?.reaches(client) ? [Buffer.from(client)] : undefined;
  }

  /**
   * Sends `reply` on `channel`, or holds it while more tasks are in hand: replies that finish
   * in one run of quick tasks leave together, one message and one wake-up of their receiver
   * per peer instead of one per task. A held reply waits at most for quick tasks (see
   * `handle`), and never for output, which follows it.
   */
  private answer(channel: HubConnection, reply: TaskReply): void {
    if (reply.buffers.some((b) => b.length >= HELD_BYTES)) {
      // A large one gains nothing from company, and a batch would copy it.
      this.sendHeld();
      channel.send(reply);
      return;
    }
    this.held.push({ channel, reply });
    if (this.inHand === 0 || this.held.length >= HELD_MAX) this.sendHeld();
  }

  /** Sends the held replies, those for one peer as one batch, in the order they were held. */
  private sendHeld(): void {
    const held = this.held;
    if (held.length === 0) return;
    this.held = [];
    // A lone reply, a round trip's, needs no grouping.
    if (held.length === 1) {
      held[0].channel.send(held[0].reply);
      return;
    }
    const byPeer = new Map<string, { channel: HubConnection; replies: TaskReply[] }>();
    for (const { channel, reply } of held) {
      const to = reply.identities.map((i) => i.toString('hex')).join('.');
      const peer = `${channel === this.channel ? 'hub' : 'direct'}:${to}`;
      const group = byPeer.get(peer);
      if (group) group.replies.push(reply);
      else byPeer.set(peer, { channel, replies: [reply] });
    }
    for (const { channel, replies } of byPeer.values()) channel.sendTogether(replies);
  }

  /**
   * Tells the hub of a reply a client got straight, with every other one of the next
   * `DIRECT_REPORT_MS` in one message: off the client's path, and one wake-up of the hub for a
   * run of round trips. The reply to a task from the hub (`fromHub`) is told as this turn ends,
   * with the others of the turn: until then the hub counts the task against this engine. A
   * task that may take longer does not start before they are told.
   */
  private report(reply: TaskReply, fromHub: boolean): void {
    this.unreported.push(reply);
    if (this.unreported.length >= REPORT_BATCH) this.flushReports();
    else if (fromHub) this.reportSoon ??= setImmediate(() => this.flushReports());
    else this.reportTimer ??= setTimeout(() => this.flushReports(), DIRECT_REPORT_MS);
  }

  private flushReports(): void {
    clearTimeout(this.reportTimer);
    clearImmediate(this.reportSoon);
    this.reportTimer = undefined;
    this.reportSoon = undefined;
    if (this.unreported.length === 0) return;
    const { carried, buffers } = packCarried(this.unreported);
    this.unreported = [];
    this.channel.send(
      this.channel.session.msg('direct_replies', { replies: carried }, { buffers }),
    );
  }

  /** Output goes with the task's reply; the hub gets a direct task's too, for subscribers. */
  private sendOutput(to: TaskRequest, origin: TaskOrigin, event: OutputEvent): void {
    this.sendHeld();
    // The hub tags what it relays with the engine's id; a direct task's client needs it too.
    const options = { parent: to.header, metadata: { engine_id: this.id } };
    const session = this.channel.session;
    const output =
      event.type === 'stream'
        ? session.msg('stream', event.content, options)
        : event.type === 'display_data'
          ? session.msg('display_data', event.content, options)
          : event.type === 'execute_result'
            ? session.msg('execute_result', event.content, options)
            : session.msg('data_message', event.content, { ...options, buffers: event.buffers });
    if (origin === 'client' && this.direct) {
      this.direct.channel.send({ ...output, identities: to.identities });
    }
    this.channel.send(output);
    // Output leaves at once, even while the task that wrote it keeps the event loop.
    this.channel.flush();
  }

  private abortedContent(): IMessage<'apply_reply'>['content'] {
    return {
      status: 'error',
      ename: 'TaskAbortedError',
      evalue: 'the task was aborted',
      traceback: [],
      engine_id: this.id,
    };
  }

  private onControl(event: ControlEvent): void {
    switch (event.type) {
      case 'joined':
        this.hooks?.holdSigint();
        break;
      case 'abort':
        // A task that awaits or is being prepared is interrupted here; the heartbeat thread
        // signals only code that runs.
        if (this.running.task && event.msgIds.includes(this.running.task.id)) {
          this.kernel.interrupt();
        }
        for (const id of event.msgIds) this.aborted.add(id);
        for (const id of this.aborted) {
          if (this.aborted.size <= ABORTED_MEMORY) break;
          this.aborted.delete(id);
        }
        break;
      case 'shutdown':
        void this.stop(0, 'shut down by the controller');
        break;
      case 'hub-lost':
        void this.stop(
          1,
          `lost the controller: no heartbeat answers for ${this.options.hubTimeout} ms`,
        );
        break;
      case 'orphaned':
        void this.stop(0, 'its parent process ended');
        break;
      case 'dropped': {
        if (this.stopping || performance.now() - this.rejoinedAt < REJOIN_PATIENCE_MS) break;
        this.rejoinedAt = performance.now();
        this.options.log(`${event.reason}; registering again`);
        this.sendRegistration();
        // The controller failed or reran the running task elsewhere: its result is unwanted,
        // and the engine is free for new work sooner.
        const task = this.running.task;
        if (task) {
          task.abandoned = true;
          // A lightweight engine shares its process: only its own task is interrupted.
          if (this.options.lightweight) this.kernel.interrupt();
          else process.kill(process.pid, 'SIGINT');
        }
        break;
      }
    }
  }

  /** Unregisters (when the controller is there to hear it) and exits; a lightweight engine closes. */
  async stop(code: number, why: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.options.log(`engine ${this.id} stopping: ${why}`);
    if (code === 0) {
      this.channel.send(this.channel.session.msg('unregistration_request', {}));
    }
    await this.stopHeartbeat();
    this.sendHeld();
    this.flushReports();
    this.peers?.close();
    this.direct?.channel.close();
    this.channel.close();
    this.hooks?.exit(code);
  }

  /**
   * User code ends the process (`process.exit`) and takes the engine with it; its task is told
   * why, and the controller is told the engine leaves, before the process ends.
   */
  private exiting(code: number | string | null | undefined): void {
    if (this.stopping) return;
    this.stopping = true;
    const why = `engine ${this.id} exited: its task called process.exit(${code ?? ''})`;
    const task = this.running.task;
    if (task) {
      task.output.flush();
      this.reply(task, {
        status: 'error',
        ename: 'EngineError',
        evalue: why,
        traceback: [],
        engine_id: this.id,
      });
    }
    this.options.log(why);
    this.sendHeld();
    this.flushReports();
    this.channel.send(this.channel.session.msg('unregistration_request', {}));
    // Closing with the socket's linger lets what was just sent leave before the end.
    this.direct?.channel.close();
    this.channel.close();
  }
}

/** Options of an engine's socket to the hub's task socket, own or shared. */
function socketOptions(info: EngineConnectionInfo): zmq.SocketOptions<zmq.Dealer> {
  return { linger: 1000, ...curveClientOptions(info) };
}

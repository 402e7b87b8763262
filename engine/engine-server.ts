/**
 * The engine process's sockets: registers with the controller, starts the heartbeat thread,
 * runs tasks one at a time through the kernel and streams their output while they run.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
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
import { Channel, NO_DROPPING } from '../protocol/channel';
import {
  curveClientOptions,
  readConnectionFile,
  type EngineConnectionInfo,
} from '../protocol/connection';
import { ConnectionError } from '../protocol/errors';
import { isMsg, type ContentMap, type IMessage, type Message } from '../protocol/messages';
import { Session } from '../protocol/session';
import {
  startHeartbeat,
  type ControlEvent,
  type HeartbeatData,
  type HeartbeatThreadData,
  type ThreadCommand,
} from './heartbeat-thread';
import { EngineKernel, type OutputEvent, type TaskOutcome } from './kernel';
import { mpiPlace } from './mpi-place';
import { RunningSlot } from './running-slot';
import { holdSigint } from './sigint-thread';

/** Everything `tsparallel engine` can be told. */
export interface EngineOptions {
  connectionFile: string;
  /** Milliseconds to wait for the controller to answer registration. */
  registrationTimeout: number;
  /**
   * Milliseconds without the controller after which the engine exits; until then it waits for
   * the controller to come back (restarted) and registers again.
   */
  hubTimeout: number;
  /** Exit when this process ends (`--exit-with-parent`), even while user code runs. */
  parentPid?: number;
  /** The engine set a cluster's launcher started this engine in; reported at registration. */
  engineSet?: string;
  log: (line: string) => void;
  /**
   * One of many engines in this process, for clusters larger than the machine: it beats from
   * the main thread instead of a thread of its own and leaves the process alone (signals,
   * stdout and stderr, exit). Its tasks share the process's namespace with the other engines',
   * their console output is not captured, and a busy task delays its heartbeats.
   */
  lightweight?: boolean;
}

/** Stream output is sent at least this often while a task writes. */
const STREAM_FLUSH_MS = 50;
const STREAM_FLUSH_BYTES = 64 * 1024;
const ABORTED_MEMORY = 10_000;
/** How long a registration sent after being dropped is waited for before it is sent again. */
const REJOIN_PATIENCE_MS = 5000;
/** Output a task may send; past it the rest is dropped with a notice, sparing every process. */
export const OUTPUT_LIMIT = 10 * 1024 * 1024;

/** The engine process; see the file's comment. */
export class EngineServer {
  private kernel!: EngineKernel;
  /** Stops the heartbeat; resolves once it has. */
  private stopHeartbeat!: () => Promise<void>;
  private readonly control: { main: MessagePort; thread: MessagePort };
  /** Ids of tasks aborted before they ended here; bounded, as some never arrive. */
  private readonly aborted = new Set<string>();
  private readonly running = new RunningSlot();
  /** Which task's code is running, across its awaits and timers: output is credited to it. */
  private readonly owner = new AsyncLocalStorage<string>();
  /** The running task, how to answer it and when it started. */
  private current: IMessage | undefined;
  private readonly onSigint = (): void => this.kernel.interrupt();
  private currentReply: { type: 'apply_reply' | 'execute_reply'; started: string } | undefined;
  private pendingStream = { stdout: '', stderr: '' };
  private lastFlush = 0;
  private flushScheduled = false;
  /** Bytes of output the running task has sent, and whether the rest was cut off. */
  private outputBytes = 0;
  private outputTruncated = false;
  private stopping = false;
  /** The task interrupted because the controller gave it up; nobody wants its reply. */
  private abandoned: string | undefined;
  /**
   * When the last registration after being dropped was sent; repeated notices within a while
   * are answered by it (the controller's answer to it is on its way).
   */
  private rejoinedAt = -Infinity;
  /** Ends the process; `process.exit` itself is taken over to report exits of user code. */
  private readonly exit = process.exit.bind(process);
  /** Where MPI placed this engine, if it runs under `mpiexec`. */
  private readonly mpi = mpiPlace();
  id = -1;

  private constructor(
    private readonly info: EngineConnectionInfo,
    private readonly channel: Channel,
    private readonly options: EngineOptions,
    private readonly uuid: string,
  ) {
    const { port1, port2 } = new MessageChannel();
    this.control = { main: port1, thread: port2 };
  }

  /** Connects, registers and serves until shut down. Resolves once registered. */
  static async start(options: EngineOptions): Promise<EngineServer> {
    const info = await readConnectionFile(options.connectionFile, 'engine');
    const session = new Session(info.key);
    const uuid = randomUUID();
    const socket = new zmq.Dealer({
      ...NO_DROPPING,
      routingId: uuid,
      linger: 1000,
      ...curveClientOptions(info),
    });
    const server = new EngineServer(
      info,
      new Channel(socket, session, (e) => options.log(`dropped a message: ${e.message}`)),
      options,
      uuid,
    );
    socket.connect(info.engine);
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
    this.kernel = new EngineKernel(this.id, (event) => this.onOutput(event));
    // User code splits work by `mpi.rank`, as an MPI program would.
    if (this.mpi) this.kernel.namespace.mpi = this.mpi;
    this.startHeartbeat(uuid, reply.heartbeat_period);
    if (!options.lightweight) {
      this.captureOutput();
      this.reportStrayErrors();
      this.reportExits();
      process.on('SIGINT', this.onSigint);
      this.control.main.on('message', (event: ControlEvent) => this.onControl(event));
    }
    options.log(`registered as engine ${this.id}`);
    void this.serve(messages);
  }

  private startHeartbeat(uuid: string, period: number): void {
    const data: HeartbeatData = {
      address: this.info.heartbeat,
      key: this.info.key,
      uuid,
      period,
      hubTimeout: this.options.hubTimeout,
      parentPid: this.options.parentPid ?? null,
      curve: curveClientOptions(this.info),
    };
    if (this.options.lightweight) {
      const stop = startHeartbeat(data, {
        control: (event) => this.onControl(event),
        signal: (signal) =>
          signal === 'SIGINT'
            ? this.kernel.interrupt()
            : this.options.log(`engine ${this.id} ignores ${signal}: it shares its process`),
        interruptIfRunning: (msgIds) => {
          const now = this.running.get();
          if (now !== null && msgIds.includes(now)) this.kernel.interrupt();
        },
      });
      this.stopHeartbeat = async () => stop();
      return;
    }
    const thread = new Worker(join(__dirname, 'heartbeat-thread.js'), {
      workerData: {
        ...data,
        port: this.control.thread,
        running: this.running.buffer,
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

  private async serve(messages: AsyncGenerator<Message>): Promise<void> {
    for await (const msg of messages) {
      // Control events that arrived while the previous task ran must count before this one.
      this.drainControl();
      try {
        if (isMsg(msg, 'registration_reply')) {
          this.registered(msg.content);
        } else if (isMsg(msg, 'apply_request')) {
          const { source, mode, refs } = msg.content;
          await this.runTask(msg, 'apply_reply', () =>
            this.kernel.apply(source, mode, refs, msg.buffers),
          );
        } else if (isMsg(msg, 'execute_request')) {
          const { code, silent } = msg.content;
          await this.runTask(msg, 'execute_reply', () => this.kernel.execute(code, silent));
        }
      } catch (e) {
        // A bug here must cost one task, not the engine and everything queued on it.
        this.options.log(`failed to run ${msg.header.msg_id}: ${(e as Error).stack}`);
      }
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
    msg: IMessage<'apply_request'> | IMessage<'execute_request'>,
    replyType: 'apply_reply' | 'execute_reply',
    run: () => Promise<TaskOutcome<ContentMap['apply_reply'] | ContentMap['execute_reply']>>,
  ): Promise<void> {
    const started = new Date().toISOString();
    if (this.aborted.delete(msg.header.msg_id)) {
      this.reply(msg, replyType, this.abortedContent(), [], started);
      return;
    }
    this.current = msg;
    this.currentReply = { type: replyType, started };
    // The first output of a task leaves at once, even if the task then blocks the thread.
    this.lastFlush = -Infinity;
    this.outputBytes = 0;
    this.outputTruncated = false;
    this.running.set(msg.header.msg_id);
    const outcome = await this.owner.run(msg.header.msg_id, run);
    this.running.set(null);
    this.flushStreams();
    this.current = undefined;
    this.currentReply = undefined;
    // An abort that interrupted this task arrived while it ran; it decides how the task ends.
    this.drainControl();
    if (this.abandoned === msg.header.msg_id) {
      this.abandoned = undefined;
      return;
    }
    const content = this.aborted.delete(msg.header.msg_id)
      ? this.abortedContent()
      : outcome.content;
    this.reply(msg, replyType, content, outcome.buffers, started);
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

  private reply(
    to: IMessage,
    type: 'apply_reply' | 'execute_reply',
    content: IMessage<'apply_reply'>['content'],
    buffers: Buffer[],
    started: string,
  ): void {
    const metadata = { engine_id: this.id, started, completed: new Date().toISOString() };
    this.channel.send(
      this.channel.session.msg<'apply_reply' | 'execute_reply'>(type, content, {
        parent: to.header,
        metadata,
        buffers,
      }),
    );
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
        // Started only now: a thread starting beside the heartbeat thread can delay the first
        // beat past the controller's deadline on a loaded machine.
        if (!this.options.lightweight) holdSigint(this.onSigint);
        break;
      case 'abort':
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
      case 'dropped':
        if (this.stopping || performance.now() - this.rejoinedAt < REJOIN_PATIENCE_MS) break;
        this.rejoinedAt = performance.now();
        this.options.log(`${event.reason}; registering again`);
        this.sendRegistration();
        // The controller failed or reran the running task elsewhere: its result is unwanted,
        // and the engine is free for new work sooner.
        if (this.current) {
          this.abandoned = this.current.header.msg_id;
          // A lightweight engine shares its process: only its own task is interrupted.
          if (this.options.lightweight) this.kernel.interrupt();
          else process.kill(process.pid, 'SIGINT');
        }
        break;
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
    this.channel.close();
    if (!this.options.lightweight) this.exit(code);
  }

  /**
   * User code that ends the process (`process.exit`) takes the engine with it; its task is told
   * why, and the controller is told the engine leaves, before the process ends.
   */
  private reportExits(): void {
    process.exit = ((code?: number | string | null) => {
      if (!this.stopping) {
        this.stopping = true;
        const why = `engine ${this.id} exited: its task called process.exit(${code ?? ''})`;
        if (this.current && this.currentReply) {
          const content = {
            status: 'error' as const,
            ename: 'EngineError',
            evalue: why,
            traceback: [],
            engine_id: this.id,
          };
          this.flushStreams();
          const { type, started } = this.currentReply;
          this.reply(this.current, type, content, [], started);
        }
        this.options.log(why);
        this.channel.send(this.channel.session.msg('unregistration_request', {}));
        // Closing with the socket's linger lets what was just sent leave before the end.
        this.channel.close();
      }
      return this.exit(code);
    }) as typeof process.exit;
  }

  // --- output --------------------------------------------------------------------------------

  private onOutput(event: OutputEvent): void {
    this.flushStreams();
    this.sendOutput(event);
  }

  private sendOutput(event: OutputEvent): void {
    if (!this.current || this.outputTruncated) return;
    this.outputBytes +=
      event.type === 'stream' ? event.content.text.length : JSON.stringify(event.content).length;
    if (this.outputBytes > OUTPUT_LIMIT) {
      this.outputTruncated = true;
      const mb = OUTPUT_LIMIT / (1024 * 1024);
      event = {
        type: 'stream',
        content: {
          name: 'stderr',
          text: `\n[output truncated: the task wrote more than ${mb} MB; the rest of its output is dropped]\n`,
        },
      };
    }
    const options = { parent: this.current.header };
    const session = this.channel.session;
    this.channel.send(
      event.type === 'stream'
        ? session.msg('stream', event.content, options)
        : event.type === 'display_data'
          ? session.msg('display_data', event.content, options)
          : session.msg('execute_result', event.content, options),
    );
  }

  /**
   * Routes the process's stdout and stderr into the running task's stream output. Output of
   * code a finished task left behind (a timer, an interrupted promise) goes to the engine's log.
   */
  private captureOutput(): void {
    for (const name of ['stdout', 'stderr'] as const) {
      const stream = process[name];
      const original = stream.write.bind(stream);
      stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
        const owner = this.owner.getStore();
        const current = this.current?.header.msg_id;
        if (current === undefined || (owner !== undefined && owner !== current)) {
          return original(chunk, ...(rest as []));
        }
        this.pendingStream[name] +=
          typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
        this.scheduleFlush();
        const done = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
        if (done) process.nextTick(done);
        return true;
      }) as typeof stream.write;
    }
  }

  /** Errors nobody awaited must not end the engine: they are reported where they can be seen. */
  private reportStrayErrors(): void {
    const report = (what: string) => (e: unknown) => {
      const text = `${what}: ${e instanceof Error ? e.stack : String(e)}\n`;
      if (this.current) process.stderr.write(text);
      else this.options.log(text.trimEnd());
    };
    process.on('uncaughtException', report('uncaught exception'));
    const reportRejection = report('unhandled promise rejection');
    process.on('unhandledRejection', (e: unknown) => {
      // A rejection nobody handled while a task awaits is that task's failure, as it would
      // have ended a plain Node program: the task ends with it instead of running on.
      const cause = e instanceof Error ? e : new Error(String(e));
      const failure = new Error(
        `a promise the task created was rejected and nothing handled it: ${cause.name}: ${cause.message}`,
      );
      failure.name = 'UnhandledRejection';
      failure.stack = `UnhandledRejection: ${failure.message}\n${(cause.stack ?? '').split('\n').slice(1).join('\n')}`;
      if (!this.current || !this.kernel.failWaitingTask(failure)) reportRejection(e);
    });
  }

  private scheduleFlush(): void {
    const size = this.pendingStream.stdout.length + this.pendingStream.stderr.length;
    // Synchronous user code never yields, so flush from the write itself when it is due.
    if (size >= STREAM_FLUSH_BYTES || performance.now() - this.lastFlush >= STREAM_FLUSH_MS) {
      this.flushStreams();
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setTimeout(() => this.flushStreams(), STREAM_FLUSH_MS);
    }
  }

  private flushStreams(): void {
    this.flushScheduled = false;
    this.lastFlush = performance.now();
    for (const name of ['stdout', 'stderr'] as const) {
      const text = this.pendingStream[name];
      if (text.length === 0) continue;
      this.pendingStream[name] = '';
      this.sendOutput({ type: 'stream', content: { name, text } });
    }
  }
}

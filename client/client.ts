/**
 * `Client`: a connection to a controller. It keeps the list of live engines, sends tasks and
 * requests, and routes replies and streamed output to the `AsyncResult`s waiting for them.
 */
import { randomUUID } from 'node:crypto';
import * as zmq from 'zeromq';
import { Channel, connectTo, NO_DROPPING } from '../protocol/channel';
import {
  connectionFilePath,
  curveClientOptions,
  readConnectionFile,
  type ClientConnectionInfo,
} from '../protocol/connection';
import {
  ConnectionError,
  DependencyError,
  EngineError,
  errorFromWire,
  ProtocolError,
  ReleasedError,
  TaskAbortedError,
  TimeoutError,
  UnknownTaskError,
} from '../protocol/errors';
import {
  isMsg,
  replyTypes,
  type ContentMap,
  type EngineInfo,
  type ErrorContent,
  type IMessage,
  type Message,
  type QueueCounts,
  type ClientRequestType,
  type ReplyType,
  type TaskOptions,
  type TaskRecordSummary,
  type TaskRequestType,
} from '../protocol/messages';
import { Session } from '../protocol/session';
import { decodeValue } from '../protocol/serialize';
import { hasSegment, SharedMemory, sweepSharedMemory } from '../protocol/shared-memory';
import { AsyncQueue } from '../protocol/async-queue';
import { DirectPaths } from './direct-paths';
import { EngineTable } from './engine-table';
import { Leases } from './leases';
import { processHook } from './process-hook';
import { cacheDir, ResultCache, type CacheInfo } from './result-cache';
import {
  AsyncResult,
  joins,
  TaskState,
  type ExecuteReply,
  type TaskMetadata,
  type TaskOutput,
} from './async-result';
import {
  BroadcastView,
  DirectView,
  LoadBalancedView,
  type MapCall,
  type Targets,
  type TaskContent,
  type TaskRequest,
  type TaskSource,
  type ViewClient,
} from './views';

/** Where `Client.connect` finds the controller. */
export interface ConnectOptions {
  /** Profile whose connection file to read (default `default`). */
  profile?: string;
  clusterId?: string;
  /** A `controller-client.json` to read instead of the profile's. */
  connectionFile?: string;
  /** Milliseconds to wait for the controller to answer (default 10 000). */
  timeout?: number;
  /**
   * Values of 256 KiB or more to and from engines of this host go through files in `/dev/shm`
   * instead of the sockets (default true); false keeps every value on the sockets.
   */
  sharedMemory?: boolean;
}

/** What `rc.events()` yields. */
export type ClientEvent =
  | { type: 'engine:register'; engine: EngineInfo }
  | { type: 'engine:unregister'; id: number; reason: string }
  /** Output of any client's task, with `events({ outputs: true })`. */
  | { type: 'engine:output'; engineId: number; msgId: string; output: TaskOutput }
  /**
   * This client sent a task through `view`, with `events({ tasks: true })`; `outputs` fills in
   * as the engine's output arrives.
   */
  | {
      type: 'task:submit';
      task: TaskMetadata;
      view: TaskSource;
      request: 'apply' | 'execute';
      balanced: boolean;
      label: string | undefined;
      outputs: readonly TaskOutput[];
      /** The `map` call it is one of, if any. */
      map: MapCall | undefined;
      /**
       * This client's tasks it waits for that had not finished when it was sent: its `after`
       * and `follow`, with the tasks whose results are its arguments.
       */
      waitsFor: readonly string[];
    }
  /** This client's task published data while it runs (`publish(data)`), with `events({ tasks: true })`. */
  | { type: 'task:data'; task: TaskMetadata; data: unknown }
  /** This client's task finished, failed or was given up, with `events({ tasks: true })`. */
  | { type: 'task:finish'; task: TaskMetadata; value: unknown; error: Error | undefined };

export type { MapCall, TaskSource } from './views';

/** The requests the client makes of the hub itself (tasks go through `submit`). */
type HubRequest = Exclude<ClientRequestType, TaskRequestType>;
type OkContent<T extends keyof ContentMap> = Exclude<ContentMap[T], ErrorContent>;

/**
 * Tasks made in one run of code that leave together at most (see `Client.post`): enough for a
 * batch to each engine, few enough that the engines start while the code goes on.
 */
const POSTED_MAX = 256;

/** A task's record as the hub keeps it, from `rc.result(msgId)`. */
export interface ResultRecord {
  msgId: string;
  engineId: number | null;
  state: 'pending' | 'running' | 'completed' | 'failed' | 'aborted';
  submitted: Date;
  started: Date | null;
  completed: Date | null;
  label: string | null;
  /** The task's value when it completed and was an `apply`. */
  value: unknown;
  /**
   * True when the hub let the value go to bound its memory, or never held it because it went
   * through shared memory, or the engine that kept it freed it or is gone (`value` is then
   * undefined). A value its engine keeps (1 MB or more) is fetched from there.
   */
  valueDropped: boolean;
  /** The error when it failed. */
  error: Error | undefined;
  /**
   * The latest data the task published while it ran (`publish(data)`), or undefined. The hub
   * keeps it in memory only, with the task's result.
   */
  data: unknown;
}

const DEFAULT_CONNECT_TIMEOUT = 10_000;

/** Told of every client `Client.connect` makes (not of those a `Cluster` keeps for itself). */
export const clientConnected = processHook<Client>('tsparallel.client-connected');

/** A task a client sends, as {@link taskSubmitted} tells of it. */
export interface SubmittedTask {
  readonly client: Client;
  readonly task: TaskState;
}

/**
 * Told of each task any client of the process sends, before it goes, so that the notebook
 * kernel can abort what an interrupted cell started even if the cell never awaited it.
 */
export const taskSubmitted = processHook<SubmittedTask>('tsparallel.task-submitted');

/**
 * A connection to a controller; see the file's comment.
 * @example const rc = await Client.connect(); const lv = rc.loadBalancedView();
 */
export class Client {
  private readonly engines = new EngineTable();
  private readonly requests = new Map<
    string,
    { answer: (msg: Message) => void; fail: (e: Error) => void }
  >();
  private readonly tasks = new Map<string, TaskState>();
  private readonly eventListeners = new Set<(e: ClientEvent | null) => void>();
  /** The cache directories this client used, by path, each with its lookup counts. */
  private readonly caches = new Map<string, ResultCache>();
  /** Ids of tasks served from the cache, which `after`/`follow` need not wait for. */
  private readonly cachedIds = new Set<string>();
  /**
   * Tasks made here but not sent yet (see `sendLater`). `sent` resolves once one is, and its
   * entry goes; it rejects with the `DependencyError` the tasks taking its result fail with when
   * the task `ended` before, and the entry stays while its state may still be an argument.
   */
  private readonly unsent = new Map<string, { sent: Promise<void>; ended: boolean }>();
  private readonly forgetUnsent = new FinalizationRegistry<string>((id) => this.unsent.delete(id));
  /** Tasks made in the code running now, to be sent in this order once it yields (see `post`). */
  private readonly outbox = new Map<TaskState, () => void>();
  private closed = false;
  private subscribedToOutput = false;
  /** Sockets straight to engines, for the tasks that go without the hub. */
  private readonly direct: DirectPaths;
  /** Slots the hub lent this client for load-balanced tasks to go straight to engines. */
  private readonly leases: Leases;
  /** Tasks whose values their engines keep for this client, until it releases them. */
  private readonly kept = new Map<string, TaskState>();
  /** Released tasks not yet told to the hub; told together, once per turn. */
  private unreleased: string[] = [];
  /** Intermediates asked for while on their way through the hub, not told yet (see `want`). */
  private unwanted: string[] = [];
  /** Values being fetched from the engines that keep them: the requests' ids by engine. */
  private readonly fetching = new Map<number, Set<string>>();

  private constructor(
    readonly connection: ClientConnectionInfo,
    private readonly session: Session,
    private readonly dealer: Channel,
    private readonly sub: Channel,
    private readonly requestTimeout: number,
    private readonly sharedMemory: SharedMemory,
    log: (e: Error) => void,
  ) {
    this.direct = new DirectPaths(session, dealer, (msg) => this.dispatch(msg), log);
    this.leases = new Leases(
      (slots, waiting) => this.request('lease_request', { slots, waiting }),
      (tasks, id) => {
        const engine = this.engines.get(id);
        return engine !== undefined && this.direct.send(tasks, engine);
      },
      (task) => this.dealer.send(task),
    );
  }

  /**
   * Connects to a running controller and learns its engines. Rejects with `ConnectionError`
   * when the connection file is missing or wrong, `TimeoutError` when the controller does not
   * answer within `timeout`.
   * @example const rc = await Client.connect({ profile: 'default' });
   */
  static async connect(options: ConnectOptions = {}): Promise<Client> {
    const client = await Client.open(options);
    clientConnected.announce(client);
    return client;
  }

  /**
   * `connect` without announcing the client on `clientConnected`, for connections a `Cluster`
   * keeps for itself.
   * @internal
   */
  static async open(options: ConnectOptions = {}): Promise<Client> {
    const path = options.connectionFile ?? connectionFilePath('client', options);
    const info = await readConnectionFile(path, 'client');
    const session = new Session(info.key);
    const log = (e: Error): void => void process.emitWarning(`tsparallel client: ${e.message}`);
    // A routing id of its own, so that a restarted controller can still route replies to it.
    const dealer = new Channel(
      new zmq.Dealer({
        ...NO_DROPPING,
        linger: 0,
        routingId: session.id,
        ...curveClientOptions(info),
      }),
      session,
      log,
      { batch: true },
    );
    const subscriber = new zmq.Subscriber({ linger: 0, ...curveClientOptions(info) });
    subscriber.subscribe('hub.');
    const sub = new Channel(subscriber, session, log);
    connectTo(dealer.socket, info.client);
    connectTo(subscriber, info.iopub);
    sweepSharedMemory();
    const client = new Client(
      info,
      session,
      dealer,
      sub,
      options.timeout ?? DEFAULT_CONNECT_TIMEOUT,
      new SharedMemory(info.key, options.sharedMemory ?? true),
      log,
    );
    void client.receive();
    client.resyncOnReconnect();
    try {
      await client.updateEngines();
    } catch (e) {
      client.close();
      throw e;
    }
    return client;
  }

  /** Live engine ids, ascending. */
  get ids(): number[] {
    return [...this.engines.ids];
  }

  /** Live engines with their pid and host, ascending by id. */
  get engineInfo(): EngineInfo[] {
    return this.ids.map((id) => this.engines.get(id) as EngineInfo);
  }

  /**
   * Resolves once at least `n` engines are registered; rejects `TimeoutError` after `timeout`
   * ms (default 30 000).
   */
  async waitForEngines(n: number, options: { timeout?: number } = {}): Promise<number[]> {
    const timeout = options.timeout ?? 30_000;
    const deadline = performance.now() + timeout;
    while (this.engines.size < n) {
      if (performance.now() > deadline) {
        throw new TimeoutError(
          `only ${this.engines.size} of ${n} engines registered within ${timeout} ms; ` +
            'check the engine logs, or start more with cluster.addEngines()',
        );
      }
      // Notifications may be missed while the subscription starts, so ask the hub too.
      await this.nextEvent(200);
      if (this.engines.size < n) await this.updateEngines();
    }
    return this.ids;
  }

  /** A view that runs every call on each of `targets`. */
  directView(targets: Targets = 'all'): DirectView {
    return new DirectView(this.forViews, { targets });
  }

  /** A view that runs every call once, on an engine the scheduler picks among `targets`. */
  loadBalancedView(targets?: number[]): LoadBalancedView {
    return new LoadBalancedView(this.forViews, targets ? { targets } : {});
  }

  /** A direct view whose results come back the same way; see `BroadcastView`. */
  broadcastView(targets: Targets = 'all'): BroadcastView {
    return new BroadcastView(this.forViews, { targets });
  }

  /**
   * Tasks queued on each engine and waiting for one; `unassigned` counts the tasks that wait in
   * clients for a leased slot too: this client's as they are now, others' as they last told.
   */
  async queueStatus(): Promise<{ [engineId: number]: QueueCounts; unassigned: number }> {
    const reply = await this.request('queue_status_request', {});
    // Never below zero: the hub may have ended the lease, and its count, before this client.
    const unassigned = Math.max(0, reply.unassigned + this.leases.untold);
    return { ...reply.engines, unassigned };
  }

  /** Drops queued tasks and interrupts running ones; they end with `TaskAbortedError`. */
  async abort(tasks: AsyncResult<unknown> | string | string[]): Promise<string[]> {
    const msgIds = tasks instanceof AsyncResult ? tasks.msgIds : messageIds(tasks, 'abort');
    // Made in the code running now: sent first, so that what waits on them hears of the abort.
    this.sendPosted();
    // Those still waiting here, to be sent or for a leased slot, never reached the controller.
    const unsent = msgIds.filter((id) => this.unsent.get(id)?.ended === false);
    const dropped = [...unsent, ...this.leases.drop(msgIds)];
    for (const msgId of dropped) {
      this.tasks.get(msgId)?.fail(new TaskAbortedError('the task was aborted before it started'));
      this.tasks.delete(msgId);
    }
    const rest = msgIds.filter((id) => !dropped.includes(id) && !this.unsent.has(id));
    if (rest.length === 0) return dropped;
    return [...dropped, ...(await this.request('abort_request', { msg_ids: rest })).aborted];
  }

  /** Sends `signal` to the engines' processes (all engines by default). */
  async sendSignal(signal: NodeJS.Signals, targets?: number | number[]): Promise<number[]> {
    const ids = targets === undefined ? null : typeof targets === 'number' ? [targets] : targets;
    return (await this.request('signal_request', { signal, targets: ids })).targets;
  }

  /** A task's record and result from the controller, also for tasks another client sent. */
  async result(msgId: string): Promise<ResultRecord> {
    messageIds(msgId, 'result');
    if (this.cachedIds.has(msgId)) {
      throw new UnknownTaskError(
        `task ${msgId} was served from the result cache, so no engine ran it and the controller ` +
          'has no record of it; its value is in the AsyncResult that gave you the id',
      );
    }
    const reply = await this.requestMessage('result_request', { msg_id: msgId });
    const r = (reply.content as OkContent<'result_reply'>).record;
    const ok = r.reply?.status === 'ok';
    const { value, data } = splitRecordBuffers(r, reply.buffers);
    const kept = r.reply?.status === 'ok' && 'kept' in r.reply && r.engine_id !== null;
    const fetched = kept ? await this.fetchRecorded(msgId, r.engine_id as number) : undefined;
    return {
      msgId: r.msg_id,
      engineId: r.engine_id,
      state: r.state,
      submitted: new Date(r.submitted),
      started: r.started === null ? null : new Date(r.started),
      completed: r.completed === null ? null : new Date(r.completed),
      label: r.label,
      value: fetched ? fetched.value : ok && value.length > 0 ? decodeValue(value) : undefined,
      valueDropped: fetched ? fetched.value === undefined : r.buffers_dropped,
      error:
        r.reply && r.reply.status === 'error' ? errorFromWire(r.reply, r.engine_id) : undefined,
      data: data && decodeValue(data),
    };
  }

  /**
   * What the result cache in `dir` holds (entries and bytes on disk, from every process) and
   * how this client's lookups went. `dir` defaults to the one `cache: true` uses.
   * @example const { entries, hits } = await rc.cacheInfo();
   */
  async cacheInfo(dir?: string): Promise<CacheInfo> {
    return this.resultCache(cacheDir(checkDir(dir))).info();
  }

  /** Removes every result from the cache in `dir` (default: the one `cache: true` uses). */
  async clearCache(dir?: string): Promise<void> {
    this.resultCache(cacheDir(checkDir(dir))).clear();
  }

  /** Runs finished or failed tasks again; awaiting gives the new results in the same order. */
  resubmit(msgIds: string | string[]): AsyncResult<unknown[]> {
    const ids = messageIds(msgIds, 'resubmit');
    const tasks = ids.map(() => new TaskState(randomUUID(), null));
    for (const t of tasks) this.tasks.set(t.metadata.msgId, t);
    const newIds = tasks.map((t) => t.metadata.msgId);
    this.request('resubmit_request', { msg_ids: ids, new_msg_ids: newIds }).catch((e: Error) => {
      for (const t of tasks) {
        this.tasks.delete(t.metadata.msgId);
        t.fail(e);
      }
    });
    return new AsyncResult(tasks, joins.array as (v: unknown[]) => unknown[], {
      abort: (m) => this.abort(m).then(() => {}),
      release: (m) => this.release(m),
    });
  }

  /**
   * Engines joining and leaving, as they happen, until the client closes; with `outputs`, every
   * engine's output too, and with `tasks`, this client's tasks being sent and finishing.
   */
  events(options: { outputs?: boolean; tasks?: boolean } = {}): AsyncIterable<ClientEvent> {
    if (options.outputs && !this.subscribedToOutput) {
      this.subscribedToOutput = true;
      (this.sub.socket as zmq.Subscriber).subscribe('engine.');
    }
    const queue = new AsyncQueue<ClientEvent>();
    if (this.closed) queue.end();
    const listener = (e: ClientEvent | null): void => {
      if (e === null) queue.end();
      else if (
        e.type === 'engine:output' ? options.outputs : !e.type.startsWith('task:') || options.tasks
      )
        queue.push(e);
    };
    this.eventListeners.add(listener);
    const remove = (): boolean => this.eventListeners.delete(listener);
    return {
      [Symbol.asyncIterator]: async function* () {
        try {
          yield* queue;
        } finally {
          remove();
        }
      },
    };
  }

  /** Stops engines (all by default); with `{ hub: true }` also the controller, and then closes. */
  async shutdown(options: { hub?: boolean; targets?: number[] } = {}): Promise<void> {
    await this.request('shutdown_request', {
      hub: options.hub ?? false,
      targets: options.targets ?? null,
    });
    if (options.hub) this.close();
  }

  /**
   * Closes the sockets; tasks still waiting fail with `ConnectionError`, and the values engines
   * keep for this client's tasks are let go.
   */
  close(): void {
    if (this.closed) return;
    this.release([...this.kept.keys(), ...this.tasks.keys()]);
    this.flushReleases();
    this.leases.close();
    this.closed = true;
    this.direct.close();
    // A moment for the releases to leave.
    (this.dealer.socket as zmq.Dealer).linger = 1000;
    this.dealer.close();
    this.sub.close();
    for (const t of this.tasks.values()) {
      t.fail(new ConnectionError('the client was closed while the task ran'));
    }
    for (const r of this.requests.values()) {
      r.fail(new ConnectionError('the client was closed before the answer came'));
    }
    this.tasks.clear();
    this.unsent.clear();
    this.sharedMemory.close();
    this.engines.clear();
    for (const l of this.eventListeners) l(null);
  }

  // --- used by views -------------------------------------------------------------------------

  /** What the views this client makes may do with it; see `ViewClient`. */
  private readonly forViews: ViewClient = {
    submit: (view, type, request, map, awaited) => this.submit(view, type, request, map, awaited),
    liveTargets: (targets) => this.liveTargets(targets),
    engine: (id) => this.engines.get(id),
    updateEngines: () => this.updateEngines(),
    abort: (msgIds) => this.abort(msgIds),
    resultCache: (dir) => this.resultCache(dir),
    fromCache: (value) => {
      const task = TaskState.fromCache(value);
      this.cachedIds.add(task.metadata.msgId);
      return task;
    },
    isCached: (msgId) => this.cachedIds.has(msgId),
    release: (msgIds) => this.release(msgIds),
  };

  /**
   * These tasks' values are held here no more: the hub lets their engines free what they keep
   * once no task waiting for them needs it. Told at the end of the turn, many in one message.
   */
  private release(msgIds: string[]): void {
    if (this.closed) return;
    // The hub hears of a task not sent yet once it is, and of one that ended unsent never.
    const unsent = msgIds.filter((id) => this.unsent.has(id));
    for (const id of unsent) {
      this.unsent.get(id)?.sent.then(
        () => this.release([id]),
        () => this.unsent.delete(id),
      );
    }
    if (unsent.length > 0) msgIds = msgIds.filter((id) => !this.unsent.has(id));
    for (const id of msgIds) this.kept.delete(id);
    if (this.unreleased.length === 0) setImmediate(() => this.flushReleases());
    this.unreleased.push(...msgIds);
  }

  private flushReleases(): void {
    if (this.unreleased.length === 0 || this.closed) return;
    // The hub must know of tasks sent straight before it hears they are released.
    this.direct.tellHub();
    this.dealer.send(this.session.msg('value_release', { msg_ids: this.unreleased }));
    this.unreleased = [];
  }

  /**
   * Code awaits task `msgId` after all, an intermediate sent through the hub: the hub's copy of
   * a small value then comes with the reply, rather than the engine's on a second request once
   * it ends (`Promise.all` over a graph built at once asks for all of them as they run). Told at
   * the end of the turn, many in one message.
   */
  private want(msgId: string): void {
    if (this.closed) return;
    if (this.unwanted.length === 0) {
      setImmediate(() => {
        if (this.closed) return;
        this.dealer.send(this.session.msg('value_wanted', { msg_ids: this.unwanted }));
        this.unwanted = [];
      });
    }
    this.unwanted.push(msgId);
  }

  /** A recorded task's value from the engine keeping it; undefined when it is freed or gone. */
  private async fetchRecorded(msgId: string, engineId: number): Promise<{ value: unknown }> {
    try {
      return { value: await this.fetchValue(msgId, engineId) };
    } catch (e) {
      if (e instanceof ReleasedError || e instanceof EngineError) return { value: undefined };
      throw e;
    }
  }

  /**
   * The value of task `msgId`, kept on engine `engineId`, fetched from the engine's direct
   * socket (through shared memory on this host).
   */
  private fetchValue(msgId: string, engineId: number): Promise<unknown> {
    const engine = this.engines.get(engineId);
    if (!engine || !engine.direct) {
      const why = engine
        ? 'has no direct socket this client can reach'
        : 'is gone, and the value with it';
      return Promise.reject(
        new EngineError(
          `engine ${engineId} keeps the value of task ${msgId} but ${why}; run the task again`,
          engineId,
        ),
      );
    }
    const metadata = this.sharedMemory.readerMetadata(engine.shared_memory);
    const request = this.session.msg('value_request', { msg_id: msgId }, { metadata });
    const id = request.header.msg_id;
    return new Promise<Message>((resolve, reject) => {
      const ids = this.fetching.get(engineId) ?? new Set<string>();
      this.fetching.set(engineId, ids.add(id));
      const done = (): void => {
        this.requests.delete(id);
        ids.delete(id);
      };
      this.requests.set(id, {
        answer: (reply) => {
          done();
          resolve(reply);
        },
        fail: (e) => {
          done();
          reject(e);
        },
      });
      this.direct.ask([request], engine);
    }).then(async (reply) => {
      if (!isMsg(reply, 'value_reply')) {
        throw new ProtocolError(
          `engine ${engineId} answered a value request with ${reply.header.msg_type}`,
        );
      }
      if (reply.content.status === 'error') throw errorFromWire(reply.content, engineId);
      try {
        return decodeValue(await this.sharedMemory.read(reply.buffers, reply.metadata));
      } finally {
        this.sharedMemory.release(reply.metadata);
      }
    });
  }

  /**
   * The hub's copy of a small value kept on an engine now gone (see `apply_reply`); `lost`, the
   * engine's error, when the hub holds none.
   */
  private async hubsCopy(msgId: string, lost: EngineError): Promise<unknown> {
    const reply = await this.requestMessage('result_request', { msg_id: msgId });
    const { value } = splitRecordBuffers(
      (reply.content as OkContent<'result_reply'>).record,
      reply.buffers,
    );
    if (value.length === 0) throw lost;
    return decodeValue(value);
  }

  private resultCache(dir: string): ResultCache {
    let cache = this.caches.get(dir);
    if (!cache) this.caches.set(dir, (cache = new ResultCache(dir)));
    return cache;
  }

  /**
   * Makes a task and sends it once the code submitting it yields (see `post`), or later when
   * `request` is still a promise (it takes the result of an actor's call not sent yet, or a value
   * assembled here once its tasks are done) or a task it depends on waits here to be sent: the
   * hub must know of a task's dependencies before the task.
   */
  private submit(
    view: TaskSource,
    type: 'apply_request' | 'execute_request',
    request: TaskRequest | Promise<TaskRequest>,
    map?: MapCall,
    awaited = false,
  ): TaskState {
    this.assertOpen();
    const unsent = ({ options }: TaskContent): Promise<void>[] =>
      [...(options.after ?? []), ...(options.follow ?? [])].flatMap(
        (id) => this.unsent.get(id)?.sent ?? [],
      );
    if (!(request instanceof Promise) && unsent(request.content).length === 0) {
      const { options } = request.content;
      const state = new TaskState(
        randomUUID(),
        options.balanced ? null : (options.targets?.[0] ?? null),
      );
      state.asked = awaited;
      this.tasks.set(state.metadata.msgId, state);
      // Told now, while the code that made it runs: a cell interrupted meanwhile aborts it here.
      taskSubmitted.announce({ client: this, task: state });
      this.post(state, () => this.send(view, type, request, map, awaited, state));
      return state;
    }
    const ready = Promise.resolve(request).then(async (r) => {
      await Promise.all(unsent(r.content));
      return r;
    });
    return this.sendLater(view, type, ready, map, awaited);
  }

  /**
   * Sends task `state` with `send` once the code running now yields: two turns of the microtask
   * queue later, when the tasks taking its result have been made and `await ar` has asked for
   * the results it waits for, so that the engine knows an intermediate value to keep
   * (`TaskState.taken`); or at once when `POSTED_MAX` wait. Tasks leave in the order they were
   * posted; one aborted or failed meanwhile does not leave.
   */
  private post(state: TaskState, send: () => void): void {
    if (this.outbox.size === 0) {
      queueMicrotask(() => queueMicrotask(() => this.sendPosted()));
    }
    this.outbox.set(state, send);
    // Code that makes thousands at once keeps the engines busy meanwhile.
    if (this.outbox.size >= POSTED_MAX) this.sendPosted();
  }

  /** Sends what `post` holds, in order: also before anything the hub must hear after it. */
  private sendPosted(): void {
    for (const [state, send] of this.outbox) {
      this.outbox.delete(state);
      if (state.finished) continue;
      try {
        send();
      } catch (e) {
        state.fail(e as Error);
      }
    }
  }

  /**
   * A task that waits here until `request` is ready, then is sent; `abort` drops it meanwhile.
   * Tasks taking its result wait for it in turn, and fail with `DependencyError` if it ends
   * before it is sent.
   */
  private sendLater(
    view: TaskSource,
    type: 'apply_request' | 'execute_request',
    request: Promise<TaskRequest>,
    map: MapCall | undefined,
    awaited: boolean,
  ): TaskState {
    const state = new TaskState(randomUUID(), null);
    state.asked = awaited;
    const msgId = state.metadata.msgId;
    this.tasks.set(msgId, state);
    // Told now, while the code that made it runs: a cell interrupted meanwhile aborts it here.
    taskSubmitted.announce({ client: this, task: state });
    const sent = new Promise<void>((resolve, reject) => {
      state.onFinish(() => {
        const e = state.error;
        reject(
          new DependencyError(`dependency ${msgId} did not succeed (${e?.name}: ${e?.message})`, {
            cause: e,
          }),
        );
      });
      request
        .then((r) => {
          // Aborted, or its client closed, while it waited: it is not sent.
          if (entry.ended) return;
          this.post(state, () => {
            this.send(view, type, r, map, awaited, state);
            this.unsent.delete(msgId);
            resolve();
          });
        })
        .catch((e: unknown) => state.fail(e as Error));
    });
    const entry = { sent, ended: false };
    // Only the tasks depending on it are told of its failure, through `unsent`.
    sent.catch(() => {});
    this.unsent.set(msgId, entry);
    this.forgetUnsent.register(state, msgId);
    state.onFinish(() => {
      if (!this.unsent.has(msgId)) return;
      entry.ended = true;
      this.tasks.delete(msgId);
    });
    return state;
  }

  /** Sends task `state` now (see `post`). */
  private send(
    view: TaskSource,
    type: 'apply_request' | 'execute_request',
    { content, buffers }: TaskRequest,
    map: MapCall | undefined,
    awaited: boolean,
    state: TaskState,
  ): void {
    this.assertOpen();
    const options: TaskOptions = content.options;
    const host = this.engines.hostOf(options.targets);
    // Arguments in shared memory stay there until the task ends, for a retry elsewhere.
    const segment = type === 'apply_request' ? this.sharedMemory.write(buffers, host) : undefined;
    const msgId = state.metadata.msgId;
    // Only other tasks take the value yet: it stays on its engine until awaited.
    const intermediate = type === 'apply_request' && state.taken && !state.asked;
    const msg =
      type === 'apply_request'
        ? this.session.msg(type, content as ContentMap['apply_request'], {
            buffers: segment ? [] : buffers,
            metadata: {
              ...segment,
              ...this.sharedMemory.readerMetadata(host, awaited),
              ...(intermediate && { intermediate: true }),
            },
            msgId,
          })
        : this.session.msg(type, content as ContentMap['execute_request'], { buffers, msgId });
    state.metadata.engineId = options.balanced ? null : (options.targets?.[0] ?? null);
    // The hub must know of the tasks this one waits for, those sent straight too.
    const waitsFor = [...(options.after ?? []), ...(options.follow ?? [])];
    if (waitsFor.length > 0) {
      this.leases.sendThroughHub(waitsFor);
      this.direct.tellHub();
    }
    if (isDirect(options)) {
      const engine = this.engines.get(options.targets[0]);
      if (!engine || !this.direct.send([msg], engine)) this.sendViaHub(msg, state, intermediate);
    } else if (!(view.options.lease && isLeasable(options) && this.leases.submit(msg))) {
      this.sendViaHub(msg, state, intermediate);
    }
    if (segment) state.onFinish(() => this.sharedMemory.release(segment));
    const task = state.metadata;
    this.emit({
      type: 'task:submit',
      task,
      view,
      request: type === 'apply_request' ? 'apply' : 'execute',
      balanced: options.balanced,
      label: options.label,
      outputs: state.outputs,
      map,
      waitsFor: waitsFor.filter((id) => this.tasks.get(id)?.finished === false),
    });
    state.dataListeners.push((data) => this.emit({ type: 'task:data', task, data }));
    state.onFinish(() =>
      this.emit({ type: 'task:finish', task, value: state.value, error: state.error }),
    );
  }

  /**
   * Sends task `state`'s message `msg` through the hub. A method of its own, not a closure in
   * `send`: the closures a task keeps until it ends would keep `msg` with them.
   */
  private sendViaHub(msg: Message, state: TaskState, intermediate: boolean): void {
    this.dealer.send(msg);
    const { msgId } = state.metadata;
    if (intermediate) state.whenAsked = () => this.want(msgId);
  }

  private liveTargets(targets: Targets): number[] {
    const ids =
      targets === 'all' ? this.ids : typeof targets === 'number' ? [targets] : [...targets];
    if (ids.length === 0) {
      throw new EngineError(
        'no engines are registered: start some (cluster.addEngines(n)) or wait for them (rc.waitForEngines(n))',
      );
    }
    return ids;
  }

  // --- plumbing ------------------------------------------------------------------------------

  /** Asks the controller for its live engines now; `ids` otherwise follows notifications. */
  async updateEngines(): Promise<number[]> {
    const reply = await this.request('connection_request', {});
    this.engines.clear();
    for (const e of reply.engines) this.engines.set(e.id, e);
    return this.ids;
  }

  private async request<T extends HubRequest>(
    type: T,
    content: ContentMap[T],
  ): Promise<OkContent<ReplyType<T>>> {
    const reply = await this.requestMessage(type, content);
    return reply.content as OkContent<ReplyType<T>>;
  }

  /** Sends a request; resolves with its reply, rejects with the error an error reply names. */
  private requestMessage<T extends HubRequest>(type: T, content: ContentMap[T]): Promise<Message> {
    this.assertOpen();
    // The hub hears of every task made before the request (an abort, `rc.result`) first.
    this.sendPosted();
    this.direct.tellHub();
    const msg = this.session.msg<T>(type, content);
    return new Promise((resolve, reject) => {
      const id = msg.header.msg_id;
      const fail = (e: Error): void => {
        clearTimeout(timer);
        this.requests.delete(id);
        reject(e);
      };
      const timer = setTimeout(
        () =>
          fail(
            new TimeoutError(
              `no answer from the controller at ${this.connection.client} within ${this.requestTimeout} ms: is the cluster running?`,
            ),
          ),
        this.requestTimeout,
      );
      const answer = (reply: Message): void => {
        const expected = replyTypes[type];
        if (reply.header.msg_type !== expected) {
          fail(new ProtocolError(`the controller answered ${type} with ${reply.header.msg_type}`));
          return;
        }
        if ('status' in reply.content && reply.content.status === 'error') {
          fail(errorFromWire(reply.content, null));
          return;
        }
        clearTimeout(timer);
        this.requests.delete(id);
        resolve(reply);
      };
      this.requests.set(id, { answer, fail });
      this.dealer.send(msg as IMessage);
    });
  }

  private async receive(): Promise<void> {
    const fromHub = (): Promise<void> => this.dealer.serve(({ msg }) => this.dispatch(msg));
    const notifications = async (): Promise<void> => {
      for await (const msg of this.sub.messages()) {
        if (isMsg(msg, 'registration_notification')) {
          this.engines.set(msg.content.engine.id, msg.content.engine);
          this.emit({ type: 'engine:register', engine: msg.content.engine });
        } else if (isMsg(msg, 'unregistration_notification')) {
          this.engines.delete(msg.content.id);
          this.direct.forget(msg.content.id);
          this.valuesLost(msg.content.id, msg.content.reason);
          this.leases.forget(msg.content.id);
          this.emit({ type: 'engine:unregister', id: msg.content.id, reason: msg.content.reason });
        } else {
          const output = toTaskOutput(msg);
          const engineId = msg.metadata.engine_id;
          if (output && typeof engineId === 'number') {
            this.emit({
              type: 'engine:output',
              engineId,
              msgId: String(msg.parent_header.msg_id),
              output,
            });
          }
        }
      }
    };
    await Promise.all([fromHub(), notifications()]);
  }

  /** Engine `id` is gone: the values being fetched from it never will be. */
  private valuesLost(id: number, reason: string): void {
    for (const requestId of this.fetching.get(id) ?? []) {
      this.requests
        .get(requestId)
        ?.fail(new EngineError(`engine ${id}, which kept this value, is gone (${reason})`, id));
    }
    this.fetching.delete(id);
  }

  private dispatch(msg: Message): void {
    const parentId = String(msg.parent_header.msg_id);
    const request = this.requests.get(parentId);
    if (request) {
      request.answer(msg);
      return;
    }
    const task = this.tasks.get(parentId);
    if (!task) {
      // The hub reran a finished task to remake the value its engine lost: it is there now.
      const remade = this.kept.get(parentId);
      const engineId = msg.metadata.engine_id;
      if (remade && isMsg(msg, 'apply_reply') && typeof engineId === 'number')
        remade.metadata.engineId = engineId;
      this.sharedMemory.release(msg.metadata);
      return;
    }
    if (isMsg(msg, 'apply_reply') || isMsg(msg, 'execute_reply')) {
      const { content, metadata, buffers } = msg;
      // Its engine may then answer this client's next tasks from the hub straight.
      const engine = typeof metadata.engine_id === 'number' && this.engines.get(metadata.engine_id);
      if (engine) this.direct.reach(engine);
      if (!hasSegment(metadata)) {
        const came = buffers.length > 0;
        this.settle(parentId, task, content, metadata, () => decodeValue(buffers), came);
        return;
      }
      // Read off the event loop; the task is taken out now, so that it settles once.
      this.tasks.delete(parentId);
      this.sharedMemory
        .read(buffers, metadata)
        .then(
          (frames) =>
            this.settle(parentId, task, content, metadata, () => decodeValue(frames), true),
          // A kept value whose segment cannot be read is fetched from its engine instead.
          (e: unknown) =>
            this.settle(parentId, task, content, metadata, () => {
              throw e;
            }),
        )
        .finally(() => this.sharedMemory.release(metadata));
    } else if (isMsg(msg, 'data_message')) {
      const engineId = msg.metadata.engine_id;
      try {
        task.addData(decodeValue(msg.buffers), typeof engineId === 'number' ? engineId : -1);
      } catch (e) {
        process.emitWarning(
          `tsparallel client: dropped data task ${parentId} published: ${(e as Error).message}`,
        );
      }
    } else {
      const output = toTaskOutput(msg);
      if (output) task.addOutput(output);
    }
  }

  /**
   * Ends a task with its reply and, for an apply, its value; an execute's reply is the one that
   * counts executions. `read`: the value came with the reply (see `want`), or through shared
   * memory.
   */
  private settle(
    msgId: string,
    task: TaskState,
    content: ContentMap['apply_reply'] | ContentMap['execute_reply'],
    metadata: Record<string, unknown>,
    value: () => unknown,
    read = false,
  ): void {
    this.tasks.delete(msgId);
    this.leases.done(msgId, metadata.quick === true);
    if (content.status === 'ok' && 'kept' in content && content.kept !== undefined) {
      // An intermediate, or too large to come unasked: it stays on its engine until awaited.
      this.kept.set(msgId, task);
      // From where it is when awaited: a rerun may remake it elsewhere (see `dispatch`).
      const fetch = (): Promise<unknown> =>
        this.fetchValue(msgId, task.metadata.engineId ?? -1).catch((e: unknown) =>
          e instanceof EngineError ? this.hubsCopy(msgId, e) : Promise.reject(e),
        );
      // Awaited at once, it may have come along all the same (see `Reader` in shared-memory.ts).
      task.finish(content, metadata, value, read ? undefined : fetch);
    } else if (content.status === 'ok' && 'execution_count' in content) {
      const count = content.execution_count;
      task.finish(content, metadata, (): ExecuteReply => {
        const last = task.outputs.findLast((o) => o.type === 'execute_result');
        return {
          engineId: task.metadata.engineId ?? -1,
          executionCount: typeof count === 'number' ? count : -1,
          result: last?.type === 'execute_result' ? last.data['text/plain'] : undefined,
        };
      });
    } else {
      task.finish(content, metadata, value);
    }
  }

  /**
   * After the connection to the controller broke and came back (the controller restarted),
   * replies sent meanwhile went nowhere: ask for each waiting task's record, and end the tasks
   * that finished, or that the controller no longer knows, so none waits forever. Tasks waiting
   * here for a leased slot never reached it: they go on waiting.
   */
  private resyncOnReconnect(): void {
    let broken = false;
    const events = (this.dealer.socket as zmq.Dealer).events;
    events.on('disconnect', () => (broken = true));
    events.on('handshake', () => {
      if (!broken || this.closed) return;
      broken = false;
      void this.resync();
    });
  }

  private async resync(): Promise<void> {
    await this.updateEngines().catch(() => undefined);
    const unsent = this.leases.waitingIds();
    this.leases.hubRestarted();
    await Promise.all(
      [...this.tasks].map(async ([msgId, task]) => {
        if (unsent.has(msgId)) return;
        let reply: Message;
        try {
          reply = await this.requestMessage('result_request', { msg_id: msgId });
        } catch (e) {
          // Gone again, or closed: the next reconnect retries.
          if (e instanceof TimeoutError || e instanceof ConnectionError) return;
          task.fail(
            new EngineError(
              `the controller restarted and has no record of task ${msgId}, so its result is ` +
                'lost; run it again (a controller started with --db sqlite keeps its records)',
            ),
          );
          this.tasks.delete(msgId);
          return;
        }
        if (!isMsg(reply, 'result_reply') || reply.content.status !== 'ok') return;
        const r = reply.content.record;
        if (r.reply === null || r.state === 'pending' || r.state === 'running') return;
        const metadata = { engine_id: r.engine_id, started: r.started, completed: r.completed };
        const { value } = splitRecordBuffers(r, reply.buffers);
        this.settle(msgId, task, r.reply, metadata, () => decodeValue(value));
      }),
    );
  }

  private emit(event: ClientEvent): void {
    for (const l of this.eventListeners) l(event);
  }

  /** Resolves at the next engine event or after `ms`, whichever is first. */
  private nextEvent(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.eventListeners.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.eventListeners.add(done);
    });
  }

  private assertOpen(): void {
    if (this.closed)
      throw new ConnectionError('the client is closed; connect again with Client.connect()');
  }
}

/**
 * True for a task that may go straight to its one engine: one with dependencies goes through
 * the hub, which holds it until they are met.
 */
function isDirect(options: TaskOptions): options is TaskOptions & { targets: [number] } {
  return (
    !options.balanced &&
    options.targets?.length === 1 &&
    !options.after?.length &&
    !options.follow?.length
  );
}

/**
 * True for a load-balanced task that may go straight to an engine in a leased slot: one without
 * dependencies or resources, for any engine (the hub places the others).
 */
function isLeasable(options: TaskOptions): boolean {
  return (
    options.balanced &&
    options.targets === undefined &&
    !options.after?.length &&
    !options.follow?.length &&
    options.resources === undefined
  );
}

/** The output an engine's output message carries, if it is one. */
function toTaskOutput(msg: Message): TaskOutput | undefined {
  if (isMsg(msg, 'stream'))
    return { type: 'stream', name: msg.content.name, text: msg.content.text };
  if (isMsg(msg, 'display_data')) return { type: 'display_data', data: msg.content.data };
  if (isMsg(msg, 'execute_result')) {
    return {
      type: 'execute_result',
      data: msg.content.data,
      executionCount: msg.content.execution_count,
    };
  }
  return undefined;
}

/** A `result_reply`'s buffers: the result's, then the latest published data's, if any. */
function splitRecordBuffers(
  r: TaskRecordSummary,
  buffers: Buffer[],
): { value: Buffer[]; data: Buffer[] | undefined } {
  const n = r.data_buffers ?? 0;
  return n === 0
    ? { value: buffers, data: undefined }
    : { value: buffers.slice(0, -n), data: buffers.slice(-n) };
}

/** A cache directory as given to `cacheInfo` or `clearCache`; a wrong one is a usage error. */
function checkDir(dir: unknown): string | undefined {
  if (dir === undefined || (typeof dir === 'string' && dir !== '')) return dir;
  throw new TypeError(`a cache directory must be a non-empty path, got ${String(dir)}`);
}

/** Message ids given as one string or a list; anything else is a usage error, said at once. */
function messageIds(ids: unknown, method: string): string[] {
  const list = typeof ids === 'string' ? [ids] : ids;
  if (!Array.isArray(list) || !list.every((id) => typeof id === 'string')) {
    throw new TypeError(
      `${method} needs message ids (strings, such as ar.msgIds), got ${String(ids)}`,
    );
  }
  return list;
}

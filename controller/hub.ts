/**
 * The hub: the controller's logic without its sockets. It registers engines, routes direct
 * tasks, balances the others, relays output, keeps task records and answers clients' requests.
 * `controller-server.ts` feeds it verified messages and carries out its sends, so a unit test
 * can drive it with plain objects.
 */
import { constants } from 'node:os';
import {
  isMsg,
  isMsgType,
  type EngineInfo,
  type EngineUsage,
  type ErrorContent,
  type IHeader,
  type IMessage,
  type Message,
  type MsgType,
  type QueueCounts,
} from '../protocol/messages';
import type { Frame, Session } from '../protocol/session';
import { HeartMonitor } from './heartbeat';
import { schemes, type Scheme } from './schedulers/load-balanced';
import {
  isFinal,
  MemoryTaskRecords,
  summary,
  type TaskRecord,
  type TaskRecordStore,
  type TaskReply,
  type TaskRequest,
} from './task-records';

/**
 * Where the hub's messages go; implemented over ZeroMQ by the controller server. Each message
 * carries its routing identity in `identities`. A task and its reply pass through the hub as
 * ipyparallel's schedulers pass them: `wire`, when given, holds the frames `msg` arrived in,
 * signed by its sender (`Received.wire`), and the outlet sends them on behind
 * `msg.identities` instead of serializing and signing `msg` again.
 */
export interface HubOutlet {
  toClient(msg: IMessage, wire?: Frame[]): void;
  /** The engine's task socket: tasks in, replies and output out. */
  toEngine(msg: IMessage, wire?: Frame[]): void;
  /** The engine's heartbeat thread, which acts even while user code blocks the engine. */
  toEngineControl(msg: IMessage): void;
  publish(topic: string, msg: IMessage): void;
  /** A client asked the hub itself to stop. */
  shutdown(): void;
}

/** The hub's settings, from the controller's command line. */
export interface HubOptions {
  scheme: Scheme;
  /** Load-balanced tasks an engine may hold at once (running plus queued on it). */
  hwm: number;
  recordLimit: number;
  /** Bytes of finished tasks' arguments and results the hub keeps for `result` and `resubmit`. */
  recordBytes: number;
  /** Milliseconds between engine heartbeats, told to engines when they register. */
  heartbeatPeriod: number;
  /** Milliseconds of silence after which an engine is dead. */
  heartbeatDeadline: number;
}

interface EngineState {
  readonly info: EngineInfo;
  readonly uuid: Buffer;
  /** Tasks sent to the engine and not finished, in the order sent. */
  readonly outstanding: Set<string>;
  balancedLoad: number;
  completed: number;
  lastAssigned: number;
  /** What the engine's latest heartbeat said of its process. */
  usage?: EngineUsage;
}

type ClientRequestType =
  | 'apply_request'
  | 'execute_request'
  | 'connection_request'
  | 'queue_status_request'
  | 'abort_request'
  | 'signal_request'
  | 'result_request'
  | 'resubmit_request'
  | 'shutdown_request';
type EngineMessageType =
  | 'registration_request'
  | 'unregistration_request'
  | 'apply_reply'
  | 'execute_reply'
  | 'stream'
  | 'display_data'
  | 'execute_result';
type Handlers<K extends MsgType> = { [T in K]: (msg: IMessage<T>, wire?: Frame[]) => void };

const now = (): string => new Date().toISOString();
/** Extra milliseconds an engine has for its first beat, which comes from a new thread. */
const FIRST_BEAT_GRACE = 10_000;
/** Dropped engines whose reason the hub remembers. */
const DROPPED_MEMORY = 1000;

/** The handler for `msg`'s type in a table that covers only some types. */
function lookup(table: object, msg: Message): ((m: Message, wire?: Frame[]) => void) | undefined {
  const type = msg.header.msg_type;
  return Object.hasOwn(table, type)
    ? (table as Record<MsgType, (m: Message, wire?: Frame[]) => void>)[type]
    : undefined;
}

/** The hub's state and rules; see the file's comment. */
export class Hub {
  private readonly engines = new Map<number, EngineState>();
  private readonly byUuid = new Map<string, number>();
  /** Engines that registered and have not sent their first heartbeat yet, by identity. */
  private readonly pending = new Map<string, EngineState>();
  /** Why recently dropped engines were dropped, by identity, to tell them when they beat again. */
  private readonly dropped = new Map<string, string>();
  /** Load-balanced tasks waiting for an engine or their dependencies, in submission order. */
  private readonly unassigned = new Map<string, TaskRecord>();
  private assignCounter = 0;
  private readonly heart: HeartMonitor;

  constructor(
    private readonly session: Session,
    private readonly out: HubOutlet,
    private readonly options: HubOptions,
    private readonly records: TaskRecordStore = new MemoryTaskRecords(
      options.recordLimit,
      options.recordBytes,
    ),
  ) {
    this.heart = new HeartMonitor(options.heartbeatPeriod, options.heartbeatDeadline, (id) =>
      this.engineDied(id, `no heartbeat for ${options.heartbeatDeadline} ms`),
    );
  }

  /** Starts watching heartbeats. */
  start(): void {
    this.heart.start();
  }

  stop(): void {
    this.heart.stop();
    this.records.close();
  }

  /**
   * Takes over the unfinished tasks of a controller that stopped without finishing them (its
   * records came back from the database): those that never reached an engine wait again, those
   * that were running are rerun where `retries` allows and fail with `EngineError` otherwise, as
   * their engines' replies went to the controller that is gone.
   */
  restore(): void {
    for (const r of this.records.unfinished()) {
      if (r.engineId === null) {
        this.unassigned.set(r.msgId, r);
      } else if (r.options.balanced && r.retriesLeft > 0) {
        this.requeue(r);
      } else {
        this.failTask(
          r,
          'EngineError',
          `the controller restarted while engine ${r.engineId} ran this task, so its result is lost; ` +
            'run it again (rc.resubmit), or give load-balanced tasks retries',
        );
      }
    }
    this.schedule();
  }

  /** Live engines, ascending by id. */
  get engineInfos(): EngineInfo[] {
    return [...this.engines.values()].map((e) => e.info).sort((a, b) => a.id - b.id);
  }

  /**
   * A verified message from a client, with the frames it came in (`Received.wire`) when it may
   * be forwarded as it is; anything but a request a client may make gets an error reply.
   */
  handleClient(msg: Message, wire?: Frame[]): void {
    const handler = lookup(this.clientHandlers, msg);
    if (handler) {
      handler(msg, wire);
      return;
    }
    this.refuse(msg.identities, msg.header, `clients cannot send ${msg.header.msg_type}`);
  }

  /**
   * Answers a request the hub will not act on with an error of the reply type it names, so that
   * the sender's wait ends at once; anything that is not a request is only dropped.
   */
  refuse(identities: Buffer[], header: IHeader, reason: string): void {
    const replyType = header.msg_type.replace(/_request$/, '_reply');
    if (replyType === header.msg_type || !isMsgType(replyType)) return;
    this.sendError(identities, header, replyType, 'ProtocolError', reason);
  }

  /** A verified message from an engine's task socket, with its frames as in `handleClient`. */
  handleEngine(msg: Message, wire?: Frame[]): void {
    lookup(this.engineHandlers, msg)?.(msg, wire);
  }

  /** A heartbeat from an engine's control thread; answered so the engine knows the hub lives. */
  handleHeartbeat(msg: Message): void {
    const uuid = msg.identities[0];
    const key = uuid.toString('hex');
    const joining = this.pending.get(key);
    if (joining && msg.header.msg_type === 'heartbeat') this.join(key, joining);
    const id = this.byUuid.get(key);
    if (!isMsg(msg, 'heartbeat')) return;
    if (id === undefined) {
      if (joining) return;
      // A stopped engine that resumed, one cut off by the network, or any engine after the
      // controller restarted: it must register again, with a new id.
      const reason = this.dropped.get(key) ?? 'the controller does not know this engine';
      this.out.toEngineControl(
        this.session.msg(
          'registration_lost',
          { reason },
          { parent: msg.header, identities: [uuid] },
        ),
      );
      return;
    }
    this.heart.beat(id);
    const engine = this.engines.get(id);
    if (engine && msg.content.usage) engine.usage = msg.content.usage;
    this.out.toEngineControl(
      this.session.msg('heartbeat', {}, { parent: msg.header, identities: [uuid] }),
    );
  }

  /** The id of the engine with this ROUTER identity, joined or still joining. */
  private idOf(identity: Buffer): number | undefined {
    const key = identity.toString('hex');
    return this.byUuid.get(key) ?? this.pending.get(key)?.info.id;
  }

  private join(key: string, engine: EngineState): void {
    this.pending.delete(key);
    const id = engine.info.id;
    this.engines.set(id, engine);
    this.byUuid.set(key, id);
    this.out.publish(
      'hub.registration',
      this.session.msg('registration_notification', { engine: engine.info }),
    );
    this.schedule();
  }

  /** An engine stopped beating or exited: fail or retry its tasks and forget it. */
  engineDied(id: number, reason: string): void {
    this.heart.remove(id);
    const joining = [...this.pending].find(([, e]) => e.info.id === id);
    // An engine that never beat has no tasks and nobody was told it joined.
    if (joining) {
      this.pending.delete(joining[0]);
      this.rememberDropped(joining[0], id, reason);
    }
    const engine = this.engines.get(id);
    if (!engine) return;
    this.engines.delete(id);
    this.byUuid.delete(engine.uuid.toString('hex'));
    this.rememberDropped(engine.uuid.toString('hex'), id, reason);
    for (const msgId of engine.outstanding) {
      const r = this.records.get(msgId);
      if (!r || isFinal(r.state)) continue;
      if (r.options.balanced && r.retriesLeft > 0) {
        this.requeue(r);
      } else {
        this.failTask(r, 'EngineError', `engine ${id} died while running this task (${reason})`);
      }
    }
    this.out.publish(
      'hub.unregistration',
      this.session.msg('unregistration_notification', { id, reason }),
    );
    this.schedule();
  }

  /** Keeps why an engine was dropped, to tell it if it beats again; bounded. */
  private rememberDropped(key: string, id: number, reason: string): void {
    this.dropped.set(key, `engine ${id} was dropped: ${reason}`);
    for (const k of this.dropped.keys()) {
      if (this.dropped.size <= DROPPED_MEMORY) break;
      this.dropped.delete(k);
    }
  }

  /** Puts a task that was sent to an engine back in the queue, spending one retry. */
  private requeue(r: TaskRecord): void {
    r.retriesLeft--;
    r.engineId = null;
    r.state = 'pending';
    r.started = null;
    // Engines drop a message they have seen before as a replay; a rerun must differ from it.
    const attempt = (r.options.retries ?? 0) - r.retriesLeft;
    r.request = { ...r.request, metadata: { ...r.request.metadata, attempt } };
    this.records.update(r);
    this.unassigned.set(r.msgId, r);
  }

  // --- client requests -----------------------------------------------------------------------

  private readonly clientHandlers: Handlers<ClientRequestType> = {
    apply_request: (m, wire) => this.submit(m, wire),
    execute_request: (m, wire) => this.submit(m, wire),
    connection_request: (m) =>
      this.reply(m, 'connection_reply', { status: 'ok', engines: this.engineInfos }),
    queue_status_request: (m) => {
      const engines: Record<string, QueueCounts> = {};
      for (const [id, e] of this.engines) {
        engines[id] = {
          queue: e.outstanding.size,
          completed: e.completed,
          tasks: e.balancedLoad,
          usage: e.usage,
        };
      }
      this.reply(m, 'queue_status_reply', {
        status: 'ok',
        engines,
        unassigned: this.unassigned.size,
      });
    },
    abort_request: (m) => {
      const aborted: string[] = [];
      const onEngines = new Map<number, string[]>();
      for (const msgId of m.content.msg_ids) {
        const r = this.records.get(msgId);
        if (!r || isFinal(r.state)) continue;
        aborted.push(msgId);
        if (r.engineId === null) {
          this.unassigned.delete(r.msgId);
          this.failTask(r, 'TaskAbortedError', 'the task was aborted before it started');
        } else {
          r.retriesLeft = 0; // an aborted task is not rerun if its engine dies meanwhile
          this.records.update(r);
          onEngines.set(r.engineId, [...(onEngines.get(r.engineId) ?? []), msgId]);
        }
      }
      // Queued or running on an engine: the engine drops or interrupts it and replies aborted.
      for (const [id, msgIds] of onEngines) {
        const e = this.engines.get(id);
        if (e) this.control(e, this.session.msg('abort_request', { msg_ids: msgIds }));
      }
      this.reply(m, 'abort_reply', { status: 'ok', aborted });
      this.schedule();
    },
    signal_request: (m) => {
      if (!Object.hasOwn(constants.signals, m.content.signal)) {
        this.replyError(
          m,
          'signal_reply',
          'ValueError',
          `unknown signal "${m.content.signal}"; use a name such as SIGINT`,
        );
        return;
      }
      const targets = this.resolveTargets(m, m.content.targets, 'signal_reply');
      if (!targets) return;
      for (const e of targets) {
        const only = [e.info.id];
        this.control(
          e,
          this.session.msg('signal_request', { signal: m.content.signal, targets: only }),
        );
      }
      this.reply(m, 'signal_reply', { status: 'ok', targets: targets.map((e) => e.info.id) });
    },
    result_request: (m) => {
      const r = this.records.get(m.content.msg_id);
      if (!r) {
        this.replyError(
          m,
          'result_reply',
          'KeyError',
          `no task record for ${m.content.msg_id}: ${this.records.retention}`,
        );
        return;
      }
      this.reply(m, 'result_reply', { status: 'ok', record: summary(r) }, r.reply?.buffers ?? []);
    },
    resubmit_request: (m) => {
      const { msg_ids: ids, new_msg_ids: newIds } = m.content;
      // A record whose arguments were let go cannot be run again either.
      const missing = ids.find((id) => this.records.get(id)?.buffersDropped !== false);
      const taken = newIds.find((id) => this.records.get(id));
      if (missing !== undefined || taken !== undefined || newIds.length !== ids.length) {
        const why =
          missing !== undefined
            ? `has no record of ${missing} or its arguments (the hub keeps the latest ones)`
            : taken !== undefined
              ? `cannot reuse the id ${taken}`
              : 'needs one new id per task';
        this.replyError(
          m,
          'resubmit_reply',
          'KeyError',
          `resubmit ${why}; nothing was resubmitted`,
        );
        return;
      }
      const resubmitted: Record<string, string> = {};
      ids.forEach((msgId, i) => {
        const old = (this.records.get(msgId) as TaskRecord).request;
        const opts = { identities: m.identities, buffers: old.buffers };
        const again: TaskRequest = isMsg(old, 'apply_request')
          ? this.session.msg('apply_request', old.content, opts)
          : this.session.msg('execute_request', (old as IMessage<'execute_request'>).content, opts);
        again.header.msg_id = newIds[i];
        resubmitted[msgId] = newIds[i];
        this.submit(again);
      });
      this.reply(m, 'resubmit_reply', { status: 'ok', resubmitted });
    },
    shutdown_request: (m) => {
      const targets = this.resolveTargets(m, m.content.targets, 'shutdown_reply');
      if (!targets) return;
      for (const e of targets) {
        this.control(e, this.session.msg('shutdown_request', { hub: false, targets: [e.info.id] }));
      }
      this.reply(m, 'shutdown_reply', { status: 'ok' });
      if (m.content.hub) this.out.shutdown();
    },
  };

  private submit(request: TaskRequest, wire?: Frame[]): void {
    if (this.records.get(request.header.msg_id)) {
      const type = isMsg(request, 'apply_request') ? 'apply_reply' : 'execute_reply';
      this.replyError(
        request,
        type,
        'ProtocolError',
        `task ${request.header.msg_id} exists already; every task needs a new msg_id`,
      );
      return;
    }
    const options = request.content.options;
    const record: TaskRecord = {
      msgId: request.header.msg_id,
      request,
      client: request.identities[0],
      options,
      engineId: null,
      state: 'pending',
      submitted: now(),
      started: null,
      completed: null,
      reply: null,
      retriesLeft: options.retries ?? 0,
      buffersDropped: false,
      wire,
    };
    this.records.add(record);
    if (!options.balanced && (options.after?.length || options.follow?.length)) {
      this.failTask(
        record,
        'DependencyError',
        'after and follow apply to load-balanced tasks only',
      );
      return;
    }
    if (options.balanced) {
      this.unassigned.set(record.msgId, record);
      this.schedule();
      return;
    }
    const id = options.targets?.[0];
    const engine = id === undefined ? undefined : this.engines.get(id);
    if (!engine || options.targets?.length !== 1) {
      this.failTask(record, 'EngineError', this.notRegistered([id]));
      return;
    }
    this.assign(record, engine);
  }

  /** Places waiting load-balanced tasks on engines with room, in submission order. */
  private schedule(): void {
    // Nothing waits (direct tasks, an idle queue): the engines need no counting.
    if (this.unassigned.size === 0) return;
    // Once no engine has room, nothing further down the queue can be placed: stop looking, so
    // that a long queue costs nothing per finished task.
    let room = 0;
    for (const e of this.engines.values()) if (e.balancedLoad < this.options.hwm) room++;
    for (const r of this.unassigned.values()) {
      if (room === 0) break;
      const placed = this.tryPlace(r);
      if (placed === undefined) continue;
      this.unassigned.delete(r.msgId);
      if (placed !== null && placed.balancedLoad >= this.options.hwm) room--;
    }
  }

  /**
   * The engine the task was sent to, `null` when it failed for good (both leave the queue), or
   * `undefined` when it must wait.
   */
  private tryPlace(r: TaskRecord): EngineState | null | undefined {
    const deps = [...(r.options.after ?? []), ...(r.options.follow ?? [])];
    for (const dep of deps) {
      const d = this.records.get(dep);
      if (!d) {
        this.failTask(r, 'DependencyError', `dependency ${dep} is unknown to the hub`);
        return null;
      }
      if (d.state === 'failed' || d.state === 'aborted') {
        this.failTask(r, 'DependencyError', `dependency ${dep} did not succeed (${d.state})`);
        return null;
      }
      if (d.state !== 'completed') return undefined;
    }
    let allowed: Set<number> | undefined = r.options.targets
      ? new Set(r.options.targets)
      : undefined;
    for (const dep of r.options.follow ?? []) {
      const at = this.records.get(dep)?.engineId;
      allowed = new Set([...(allowed ?? [at as number])].filter((id) => id === at));
    }
    if (allowed && ![...allowed].some((id) => this.engines.has(id))) {
      if (r.options.follow?.length || this.engines.size > 0) {
        this.failTask(
          r,
          'DependencyError',
          `none of the engines this task may run on (${[...allowed].join(', ')}) is alive`,
        );
        return null;
      }
      return undefined;
    }
    const candidates = [...this.engines.values()]
      .filter((e) => e.balancedLoad < this.options.hwm && (!allowed || allowed.has(e.info.id)))
      .map((e) => ({ id: e.info.id, load: e.balancedLoad, lastAssigned: e.lastAssigned }));
    if (candidates.length === 0) return undefined;
    const chosen = this.engines.get(schemes[this.options.scheme](candidates).id) as EngineState;
    this.assign(r, chosen);
    return chosen;
  }

  private assign(r: TaskRecord, engine: EngineState): void {
    r.engineId = engine.info.id;
    r.state = 'running';
    engine.outstanding.add(r.msgId);
    engine.lastAssigned = ++this.assignCounter;
    if (r.options.balanced) engine.balancedLoad++;
    this.records.update(r);
    // A rerun differs from what the client sent (requeue), so only the first send forwards.
    this.out.toEngine({ ...r.request, identities: [engine.uuid] }, r.wire);
    r.wire = undefined;
  }

  // --- engine messages -----------------------------------------------------------------------

  private readonly engineHandlers: Handlers<EngineMessageType> = {
    registration_request: (m) => {
      const uuid = m.identities[0];
      const key = uuid.toString('hex');
      const existing = this.pending.get(key) ?? this.engines.get(this.byUuid.get(key) ?? -1);
      const engine = existing ?? {
        info: {
          id: this.records.nextEngineId(),
          uuid: m.content.uuid,
          pid: m.content.pid,
          hostname: m.content.hostname,
          registered: now(),
          engine_set: m.content.engine_set,
          mpi: m.content.mpi,
        },
        uuid,
        outstanding: new Set<string>(),
        balancedLoad: 0,
        completed: 0,
        lastAssigned: 0,
      };
      // The engine joins at its first heartbeat: only then can it receive signals and aborts.
      if (!existing) {
        this.dropped.delete(key);
        this.pending.set(key, engine);
        // Counted from registration, so an engine that never beats is dropped too; starting
        // its heartbeat thread may take a while on a loaded machine.
        this.heart.add(engine.info.id, FIRST_BEAT_GRACE);
      }
      this.out.toEngine(
        this.session.msg(
          'registration_reply',
          {
            status: 'ok',
            id: engine.info.id,
            heartbeat_period: this.options.heartbeatPeriod,
            heartbeat_deadline: this.options.heartbeatDeadline,
          },
          { parent: m.header, identities: [uuid] },
        ),
      );
    },
    unregistration_request: (m) => {
      // The sender's identity says which engine leaves; an engine cannot unregister another.
      const id = this.idOf(m.identities[0]);
      if (id !== undefined) this.engineDied(id, 'it unregistered');
    },
    apply_reply: (m, wire) => this.finish(m, wire),
    execute_reply: (m, wire) => this.finish(m, wire),
    stream: (m) => this.relayOutput(m),
    display_data: (m) => this.relayOutput(m),
    execute_result: (m) => this.relayOutput(m),
  };

  private finish(reply: TaskReply, wire?: Frame[]): void {
    const r = this.records.get(String(reply.parent_header.msg_id));
    if (!r || isFinal(r.state) || r.engineId !== this.idOf(reply.identities[0])) return;
    const engine = r.engineId === null ? undefined : this.engines.get(r.engineId);
    if (engine) {
      engine.outstanding.delete(r.msgId);
      engine.completed++;
      if (r.options.balanced) engine.balancedLoad--;
    }
    const { started, completed } = reply.metadata;
    r.started = typeof started === 'string' ? started : null;
    r.completed = typeof completed === 'string' ? completed : now();
    r.state =
      reply.content.status === 'ok'
        ? 'completed'
        : reply.content.ename === 'TaskAbortedError'
          ? 'aborted'
          : 'failed';
    r.reply = reply;
    // The engine names itself in the reply; when it names itself as the hub knows it, the reply
    // goes to the client as the engine signed it, else with the hub's id, signed again.
    const signedAsKnown = reply.metadata.engine_id === r.engineId;
    this.out.toClient(
      { ...reply, identities: [r.client], metadata: { ...reply.metadata, engine_id: r.engineId } },
      signedAsKnown ? wire : undefined,
    );
    this.records.finished(r);
    this.schedule();
  }

  private relayOutput(m: IMessage<'stream' | 'display_data' | 'execute_result'>): void {
    const r = this.records.get(String(m.parent_header.msg_id));
    const engineId = this.byUuid.get(m.identities[0].toString('hex'));
    const tagged = { ...m, metadata: { ...m.metadata, engine_id: engineId } };
    if (r) this.out.toClient({ ...tagged, identities: [r.client] });
    this.out.publish(`engine.${String(engineId)}.${m.header.msg_type}`, tagged);
  }

  // --- helpers -------------------------------------------------------------------------------

  /** Ends a task the hub itself fails (dead engine, abort, unmet dependency). */
  private failTask(r: TaskRecord, ename: string, evalue: string): void {
    r.wire = undefined;
    const content: ErrorContent = { status: 'error', ename, evalue, traceback: [] };
    if (r.engineId !== null) {
      const engine = this.engines.get(r.engineId);
      engine?.outstanding.delete(r.msgId);
      if (engine && r.options.balanced) engine.balancedLoad--;
      content.engine_id = r.engineId;
    }
    const type = r.request.header.msg_type === 'apply_request' ? 'apply_reply' : 'execute_reply';
    const reply = this.session.msg(type, content, {
      parent: r.request.header,
      identities: [r.client],
      metadata: { engine_id: r.engineId },
    }) as TaskReply;
    r.state = ename === 'TaskAbortedError' ? 'aborted' : 'failed';
    r.completed = now();
    r.reply = reply;
    this.out.toClient(reply);
    this.records.finished(r);
  }

  /** `null` means every engine; an unknown id gets an error reply and `undefined`. */
  private resolveTargets(
    m: Message,
    targets: number[] | null,
    replyType: 'signal_reply' | 'shutdown_reply',
  ): EngineState[] | undefined {
    const ids = targets ?? [...this.engines.keys()];
    const unknown = ids.filter((id) => !this.engines.has(id));
    if (unknown.length > 0) {
      this.replyError(m, replyType, 'EngineError', this.notRegistered(unknown));
      return undefined;
    }
    return ids.flatMap((id) => this.engines.get(id) ?? []);
  }

  private notRegistered(ids: (number | undefined)[]): string {
    const live = [...this.engines.keys()].join(', ') || 'none';
    return `engine ${ids.map(String).join(', ')} is not registered; live engines: ${live}`;
  }

  private reply<T extends MsgType>(
    to: Message,
    type: T,
    content: IMessage<T>['content'],
    buffers: Buffer[] = [],
  ): void {
    this.out.toClient(
      this.session.msg(type, content, { parent: to.header, identities: to.identities, buffers }),
    );
  }

  private control(engine: EngineState, msg: IMessage): void {
    this.out.toEngineControl({ ...msg, identities: [engine.uuid] });
  }

  private replyError(to: Message, type: MsgType, ename: string, evalue: string): void {
    this.sendError(to.identities, to.header, type, ename, evalue);
  }

  private sendError(
    identities: Buffer[],
    parent: IHeader,
    type: MsgType,
    ename: string,
    evalue: string,
  ): void {
    const content: ErrorContent = { status: 'error', ename, evalue, traceback: [] };
    this.out.toClient(this.session.msg<MsgType>(type, content, { parent, identities }));
  }
}

/**
 * The hub: the controller's logic without its sockets. `controller-server.ts` feeds it verified
 * messages and carries out its sends through a `HubOutlet`, so a unit test can drive it with
 * plain objects. It keeps the engines (`EngineRegistry`, watched by a `HeartMonitor`) and hands
 * tasks to the `TaskDispatcher` (placement in `schedulers/`) and clients' other requests to
 * `ClientRequests`.
 */
import type { ConditionName } from '../protocol/errors';
import {
  isMsg,
  isRequestType,
  unpackCarried,
  type EngineRequestType,
  type EngineUsage,
  type IHeader,
  type Message,
  type ReplyType,
  type TaskRequestType,
} from '../protocol/messages';
import type { Frame, Session } from '../protocol/session';
import { ClientRequests } from './client-requests';
import { EngineRegistry, engineIdentity, type RegisteredEngine } from './engine-registry';
import { HeartMonitor, systemClock, type Clock } from './heartbeat';
import { LeaseTable } from './leases';
import { handlerIn, Replies, type HandlerTable, type HubOutlet } from './hub-outlet';
import type { Scheme } from './schedulers/load-balanced';
import { TaskDispatcher } from './task-dispatcher';
import { MemoryTaskRecords, type TaskRecordStore } from './task-records';

export type { HubOutlet } from './hub-outlet';

/** The hub's settings, from the controller's command line. */
export interface HubOptions {
  scheme: Scheme;
  /** Load-balanced tasks an engine may hold at once (running plus queued on it). */
  hwm: number;
  /**
   * What an engine may hold beyond `hwm` of tasks known to run under a millisecond, while every
   * engine is at `hwm` (see schedulers/task-queue.ts); at most `hwm` turns it off.
   */
  quickDepth: number;
  recordLimit: number;
  /** Bytes of finished tasks' arguments and results the hub keeps for `result` and `resubmit`. */
  recordBytes: number;
  /** Milliseconds between engine heartbeats, told to engines when they register. */
  heartbeatPeriod: number;
  /** Milliseconds of silence after which an engine is dead. */
  heartbeatDeadline: number;
  /** Milliseconds a client's lease on engine slots lasts. */
  leaseTerm: number;
}

/** What the hub works with besides its options; each part has a default. */
export interface HubParts {
  /** Where task records live; by default in memory, bounded by the options. */
  records?: TaskRecordStore;
  /** The heartbeat monitor's time. */
  clock?: Clock;
}

/** What engines send on their task socket: their requests, task replies and task output. */
type EngineMessageType =
  | EngineRequestType
  | 'unregistration_request'
  | ReplyType<TaskRequestType>
  | 'direct_replies'
  | 'stream'
  | 'display_data'
  | 'execute_result'
  | 'data_message';

/** The ename of the error reply to a request whose handler failed: a bug in the hub. */
export const HUB_ERROR: ConditionName = 'HubError';

/** Extra milliseconds an engine has for its first beat, which comes from a new thread. */
const FIRST_BEAT_GRACE = 10_000;

/** The hub's state and rules; see the file's comment. */
export class Hub {
  private readonly engines = new EngineRegistry();
  private readonly records: TaskRecordStore;
  private readonly heart: HeartMonitor;
  /** Replies to clients' requests, and to engines' on their task socket. */
  private readonly replies: Replies;
  private readonly engineReplies: Replies;
  private readonly tasks: TaskDispatcher;
  private readonly requests: ClientRequests;
  private readonly leases: LeaseTable;
  private readonly clock: Clock;
  private stopLeaseTimer: (() => void) | undefined;

  constructor(
    private readonly session: Session,
    private readonly out: HubOutlet,
    private readonly options: HubOptions,
    parts: HubParts = {},
  ) {
    this.records = parts.records ?? new MemoryTaskRecords(options.recordLimit, options.recordBytes);
    this.clock = parts.clock ?? systemClock;
    this.leases = new LeaseTable(this.engines, options, this.clock);
    this.heart = new HeartMonitor(
      options.heartbeatPeriod,
      options.heartbeatDeadline,
      (ids) => this.dropEngines(ids, `no heartbeat for ${options.heartbeatDeadline} ms`),
      this.clock,
    );
    this.replies = new Replies(session, (m, wire) => out.toClient(m, wire));
    this.engineReplies = new Replies(session, (m, wire) => out.toEngine(m, wire));
    this.tasks = new TaskDispatcher(
      session,
      out,
      this.replies,
      this.engines,
      this.records,
      options,
      this.clock,
    );
    this.requests = new ClientRequests(
      session,
      out,
      this.replies,
      this.engines,
      this.records,
      this.tasks,
      this.leases,
    );
  }

  /** Starts watching heartbeats, and leases' terms. */
  start(): void {
    this.heart.start();
    this.stopLeaseTimer = this.clock.every(this.options.leaseTerm / 4, () => {
      this.leases.expire();
      this.tasks.queue.schedule();
    });
  }

  stop(): void {
    this.heart.stop();
    this.stopLeaseTimer?.();
    this.records.close();
  }

  /** Takes over the unfinished tasks of a controller that stopped (see `TaskDispatcher`). */
  restore(): void {
    this.tasks.restore();
  }

  /**
   * A verified message from a client, with the frames it came in (`Received.wire`) when it may
   * be forwarded as it is; anything but a request a client may make gets an error reply.
   */
  handleClient(msg: Message, wire?: Frame[]): void {
    this.tasks.heardFrom(msg.identities[0]);
    const handler = handlerIn(this.requests.handlers, msg);
    if (!handler) {
      this.refuse(msg.identities, msg.header, `clients cannot send ${msg.header.msg_type}`);
      return;
    }
    this.run(handler, msg, wire, this.replies);
  }

  /**
   * A client's connection closed (see `controller-server.ts`): its process ended, or its host
   * stopped answering. What it held is let go, as if it had closed.
   */
  clientGone(identity: Buffer): void {
    this.tasks.clientGone(identity);
    this.leases.clientGone(identity);
    this.tasks.queue.schedule();
  }

  /**
   * Answers a request the hub will not act on with an error of the reply type it calls for, so
   * that the sender's wait ends at once; anything that is not a request is only dropped.
   */
  refuse(identities: Buffer[], header: IHeader<string>, reason: string): void {
    this.answerError(this.replies, identities, header, 'ProtocolError', reason);
  }

  /** A verified message from an engine's task socket, with its frames as in `handleClient`. */
  handleEngine(msg: Message, wire?: Frame[]): void {
    const handler = handlerIn(this.engineHandlers, msg);
    if (handler) this.run(handler, msg, wire, this.engineReplies);
  }

  /**
   * A heartbeat from an engine's control thread, or for all the lightweight engines of a
   * process (`engines`); answered once, so the sender knows the hub lives.
   */
  handleHeartbeat(msg: Message): void {
    if (!isMsg(msg, 'heartbeat')) return;
    const { engines, usage } = msg.content;
    const answer = (): void =>
      this.out.toEngineControl(
        this.session.msg('heartbeat', {}, { parent: msg.header, identities: msg.identities }),
      );
    if (engines === undefined) {
      if (this.beat(msg.identities, msg.header, usage)) answer();
      return;
    }
    for (const uuid of engines)
      this.beat([...msg.identities, Buffer.from(uuid)], msg.header, usage);
    answer();
  }

  /**
   * Counts a beat of the engine at `route` (see `RegisteredEngine.controlRoute`), which joins
   * at its first; an engine the hub does not know is told to register again. Returns whether
   * the hub knows it.
   */
  private beat(route: Buffer[], parent: IHeader<'heartbeat'>, usage?: EngineUsage): boolean {
    const uuid = engineIdentity(route);
    const joined = this.engines.join(uuid);
    if (joined) {
      this.out.publish(
        'hub.registration',
        this.session.msg('registration_notification', { engine: joined.info }),
      );
      this.tasks.queue.schedule();
    }
    const id = this.engines.joinedId(uuid);
    if (id === undefined) {
      // A stopped engine that resumed, one cut off by the network, or any engine after the
      // controller restarted: it must register again, with a new id.
      const reason = this.engines.droppedReason(uuid) ?? 'the controller does not know this engine';
      this.out.toEngineControl(
        this.session.msg('registration_lost', { reason }, { parent, identities: route }),
      );
      return false;
    }
    this.heart.beat(id);
    this.engines.get(id)?.beat(route, usage);
    return true;
  }

  /**
   * Runs `msg`'s handler. One that throws before replying gets its request answered with a
   * `HubError` through `replies`, then the error goes on for the caller to log: no sender, client
   * or engine, waits for a reply that will not come, and none gets two.
   */
  private run(
    handler: (msg: Message, wire?: Frame[]) => void,
    msg: Message,
    wire: Frame[] | undefined,
    replies: Replies,
  ): void {
    try {
      handler(msg, wire);
    } catch (e) {
      if (!replies.answered(msg.header)) {
        const why = e instanceof Error ? e.message : String(e);
        this.answerError(
          replies,
          msg.identities,
          msg.header,
          HUB_ERROR,
          `the hub failed on this request: ${why}`,
        );
      }
      throw e;
    }
  }

  private answerError(
    replies: Replies,
    identities: Buffer[],
    header: IHeader<string>,
    ename: ConditionName,
    evalue: string,
  ): void {
    const type = header.msg_type;
    if (isRequestType(type))
      replies.error(identities, { ...header, msg_type: type }, ename, evalue);
  }

  /**
   * Engines stopped beating or left: their tasks are retried or failed, and they are forgotten.
   * All are gone before any task is placed again, so that a task of one does not go to another
   * that stopped with it (the engines of a process stop beating together).
   */
  private dropEngines(ids: number[], reason: string): void {
    const dropped: RegisteredEngine[] = [];
    for (const id of ids) {
      this.heart.remove(id);
      const engine = this.engines.drop(id, reason);
      if (engine) dropped.push(engine);
    }
    for (const engine of dropped) {
      this.tasks.engineLost(engine, reason);
      const gone = this.session.msg('unregistration_notification', { id: engine.id, reason });
      this.out.publish('hub.unregistration', gone);
      // Engines fetching values it kept stop waiting for them. Signed once for all: a thousand
      // signatures per drop would hold the hub up while many engines drop together.
      const wire = this.session.body(gone);
      for (const e of this.engines.values())
        this.out.toEngine({ ...gone, identities: e.route }, wire);
    }
    if (dropped.length > 0) this.tasks.queue.schedule();
  }

  private readonly engineHandlers: HandlerTable<EngineMessageType> = {
    registration_request: (m) => {
      const { engine, isNew } = this.engines.register(
        m.identities,
        m.content,
        () => this.records.nextEngineId(),
        new Date().toISOString(),
      );
      // The engine joins at its first heartbeat: only then can it receive signals and aborts.
      // Counted from registration, so an engine that never beats is dropped too; starting its
      // heartbeat thread may take a while on a loaded machine.
      if (isNew) this.heart.add(engine.id, FIRST_BEAT_GRACE);
      this.engineReplies.ok(m, {
        status: 'ok',
        id: engine.id,
        heartbeat_period: this.options.heartbeatPeriod,
        heartbeat_deadline: this.options.heartbeatDeadline,
      });
    },
    unregistration_request: (m) => {
      // The sender's identity says which engine leaves; an engine cannot unregister another.
      const id = this.engines.idOf(engineIdentity(m.identities));
      if (id !== undefined) this.dropEngines([id], 'it unregistered');
    },
    apply_reply: (m, wire) => this.tasks.finish(m, wire),
    execute_reply: (m, wire) => this.tasks.finish(m, wire),
    direct_replies: (m) => {
      const id = this.engines.idOf(engineIdentity(m.identities));
      if (id === undefined) return;
      for (const reply of unpackCarried(m.content.replies, m.buffers, [])) {
        this.tasks.finishDirect(reply, id);
      }
    },
    stream: (m) => this.tasks.relayOutput(m),
    display_data: (m) => this.tasks.relayOutput(m),
    execute_result: (m) => this.tasks.relayOutput(m),
    data_message: (m) => this.tasks.relayData(m),
  };
}

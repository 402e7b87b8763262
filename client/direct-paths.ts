/**
 * The client's side of direct paths: tasks go straight to the engine that runs them, on a
 * DEALER of this client's per engine (opened at the first such task), and its replies and
 * output come back on it; the hub is told of those tasks afterwards, everything sent within a
 * few milliseconds in one message (see `TELL_DELAY_MS`), so that its records, aborts and
 * retries cover them as any other. An engine with a socket from this client answers its tasks
 * from the hub on it too (see `reach`).
 */
import * as zmq from 'zeromq';
import { Channel, connectTo, NO_DROPPING } from '../protocol/channel';
import {
  packCarried,
  type DirectAddress,
  type EngineInfo,
  type IMessage,
  type Message,
  type TaskRequestType,
} from '../protocol/messages';
import type { Session } from '../protocol/session';

/** Most tasks told to the hub in one message. */
const TELL_BATCH = 1000;
/**
 * Most engines a client opens a socket to only to be answered straight (see `reach`): past
 * them, the replies to its tasks from the hub come through the hub. Each socket costs the
 * client a connection, buffers and a receive loop, which a client of a thousand engines would
 * pay a thousand times.
 */
const REACHED_MAX = 64;
/**
 * How long a task sent straight may wait to be told to the hub: a run of round trips, one task
 * per turn, shares one message instead of sending one per task, which costs this client, and
 * the hub it wakes, about as much as the task's own message. Anything asked of the hub tells
 * it first (see `tellHub`), and the hub hears an engine is lost much later than this.
 */
const TELL_DELAY_MS = 5;

/** The direct paths of one client; see the file's comment. */
export class DirectPaths {
  private readonly sockets = new Map<number, Channel>();
  /** Tasks sent straight that the hub has not been told of yet, with the engine each went to. */
  private untold: { task: IMessage<TaskRequestType>; engineId: number }[] = [];
  /**
   * The send under way, kept until it is done. A cell's synchronous code may be ended by SIGINT
   * between any two statements (see Channel): a send cut there, perhaps after the engine got
   * the task but before the hub was to be told of it, is made again by the next call here. The
   * engine drops a copy of a task it took already (see its `directTaskIds`), and the hub knows a
   * task told twice.
   */
  private cut: Sending | undefined;
  /** Tells the hub once `TELL_DELAY_MS` passed since the first untold task was sent. */
  private tellTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly session: Session,
    /** The client's socket to the hub. */
    private readonly hub: Channel,
    /** Where what engines send back goes. */
    private readonly receive: (msg: Message) => void,
    private readonly log: (e: Error) => void,
  ) {}

  /**
   * Sends `tasks` straight to `engine`, several as one message; false when the engine takes
   * tasks from the hub only.
   */
  send(tasks: IMessage<TaskRequestType>[], engine: EngineInfo): boolean {
    return this.start(engine, { requests: tasks, tell: true });
  }

  /**
   * Sends `requests` straight to `engine`, together, where their answers come from (a value it
   * keeps); false when the engine has no direct socket.
   */
  ask(requests: IMessage<TaskRequestType | 'value_request'>[], engine: EngineInfo): boolean {
    return this.start(engine, { requests, tell: false });
  }

  private start(engine: EngineInfo, order: Order): boolean {
    const { direct } = engine;
    if (!direct) return false;
    this.finishCut();
    this.deliver({ ...order, engineId: engine.id, direct });
    if (this.untold.length >= TELL_BATCH) this.tellHub();
    else if (order.tell) this.tellTimer ??= setTimeout(() => this.tellHub(), TELL_DELAY_MS);
    return true;
  }

  /** Makes the send cut by an interrupt, if any (see `cut`). */
  private finishCut(): void {
    if (this.cut) this.deliver(this.cut);
  }

  private deliver(sending: Sending): void {
    this.cut = sending;
    // An interrupt runs no `finally`, so only a send cut by one is kept; one that throws is not.
    try {
      const { requests, engineId, direct } = sending;
      let socket = this.sockets.get(engineId);
      if (!socket) {
        socket = this.connect(direct.address, direct.curve_serverkey);
        this.sockets.set(engineId, socket);
      }
      // A lone request goes at once if it is the first to the engine in this turn, else with
      // the turn's others (see `ChannelOptions.batch`).
      if (requests.length === 1) socket.send(requests[0]);
      else socket.sendTogether(requests);
      if (sending.tell) for (const task of sending.requests) this.untold.push({ task, engineId });
    } finally {
      this.cut = undefined;
    }
  }

  /**
   * Tells the hub now of the tasks sent straight; called before any request to the hub, which
   * may be about them (an abort, a result), so that the hub knows them when it answers.
   */
  tellHub(): void {
    this.finishCut();
    clearTimeout(this.tellTimer);
    this.tellTimer = undefined;
    if (this.untold.length === 0) return;
    const untold = this.untold;
    const { carried, buffers } = packCarried(untold.map((u) => u.task));
    const tasks = carried.map((c, i) => ({ ...c, engine_id: untold[i].engineId }));
    // Forgotten once sent: a cell interrupted in between tells them again (the hub knows a
    // task told twice), never not at all (see Channel).
    this.hub.send(this.session.msg('direct_tasks', { tasks }, { buffers }));
    this.untold = [];
  }

  /**
   * Opens a socket to `engine`, unless one is open or `REACHED_MAX` are, so that it answers
   * this client's tasks from the hub straight (see `connect`); called as the hub relays a reply
   * of the engine's.
   */
  reach(engine: EngineInfo): void {
    const { direct } = engine;
    if (!direct || this.sockets.has(engine.id) || this.sockets.size >= REACHED_MAX) return;
    this.sockets.set(engine.id, this.connect(direct.address, direct.curve_serverkey));
  }

  /** Engine `id` left: its socket closes; the hub fails or reruns the tasks it held. */
  forget(id: number): void {
    if (this.cut?.engineId === id) this.cut = undefined;
    this.sockets.get(id)?.close();
    this.sockets.delete(id);
  }

  close(): void {
    this.tellHub();
    for (const socket of this.sockets.values()) socket.close();
    this.sockets.clear();
  }

  private connect(address: string, curveServerKey: string | undefined): Channel {
    const curve = curveServerKey === undefined ? {} : { curveServerKey, ...keyPair() };
    const socket = new zmq.Dealer({
      ...NO_DROPPING,
      linger: 0,
      routingId: this.session.id,
      ...curve,
    });
    connectTo(socket, address);
    // Tasks sent in one turn (a burst of applies) leave as one message, as on the hub's path.
    const channel = new Channel(socket, this.session, this.log, { batch: true });
    void channel.serve(({ msg }) => this.receive(msg));
    // The engine may now answer this client's tasks from the hub straight, too. Sent apart
    // from the turn's batch, so that the task that opened the socket still leaves at once.
    channel.sendTogether([this.session.msg('direct_hello', {})]);
    return channel;
  }
}

/** Requests for one engine; `tell`: tasks the hub is to be told of. */
type Order =
  | { requests: IMessage<TaskRequestType>[]; tell: true }
  | { requests: IMessage<TaskRequestType | 'value_request'>[]; tell: false };

/** An order on its way to engine `engineId`. */
type Sending = Order & { engineId: number; direct: DirectAddress };

function keyPair(): { curvePublicKey: string; curveSecretKey: string } {
  const { publicKey, secretKey } = zmq.curveKeyPair();
  return { curvePublicKey: publicKey, curveSecretKey: secretKey };
}

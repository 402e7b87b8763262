/**
 * A ZeroMQ socket speaking tsparallel messages. zeromq.js allows one pending send per socket, so
 * sends go through a queue; received frames are verified and validated once, here, and bad ones
 * are dropped and reported without ever stopping the receive loop. A batch (see `Session.batch`)
 * is verified and taken apart on receipt, and each of its messages checked as if it had come
 * alone, save for the signature its batch's stands for.
 */
import type * as zmq from 'zeromq';
import { ProtocolError, type DropKind } from './errors';
import type { Message, IMessage } from './messages';
import { ReplayGuard, type Envelope, type Frame, type Received, type Session } from './session';

/**
 * Socket options for every task-carrying socket. ZeroMQ's default high-water mark of 1000
 * messages makes a ROUTER silently drop what it cannot queue; tasks must never vanish, so the
 * queues are unbounded and memory is the limit. Kernel socket buffers larger than the default
 * (the kernel caps them at its maximum) move large arrays about twice as fast over loopback.
 */
export const NO_DROPPING = {
  sendHighWaterMark: 0,
  receiveHighWaterMark: 0,
  sendBufferSize: 4 * 1024 * 1024,
  receiveBufferSize: 4 * 1024 * 1024,
} as const;

/** `ZMQ_ROUTER_NOTIFY` and its `ZMQ_NOTIFY_DISCONNECT` (libzmq's draft API, built in zeromq.js). */
const ZMQ_ROUTER_NOTIFY = 97;
const ZMQ_NOTIFY_DISCONNECT = 2;

/**
 * Makes `router` receive a notice as each peer's connection closes (see
 * `ChannelOptions.peerGone`). Throws where libzmq lacks the option.
 */
export function notifyDisconnects(router: zmq.Router): void {
  // Protected in zeromq.js's types, as the option is not in its stable API.
  (router as unknown as { setInt32Option(o: number, v: number): void }).setInt32Option(
    ZMQ_ROUTER_NOTIFY,
    ZMQ_NOTIFY_DISCONNECT,
  );
}

/**
 * Connects `socket` to `address`. libzmq's connect fails with EINTR, having done nothing yet,
 * when a signal arrives as it starts (a child process's SIGCHLD, an interrupt); it is made again.
 */
export function connectTo(socket: zmq.Socket, address: string): void {
  for (;;) {
    try {
      socket.connect(address);
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== 'EINTR') throw e;
    }
  }
}

/** Any socket that sends; receiving needs one that is also readable (not a PUB). */
type MessageSocket = zmq.Socket & Partial<zmq.Writable> & Partial<zmq.Readable>;

export interface ChannelOptions {
  /**
   * Sends what is queued for one peer in one turn of the event loop as one ZeroMQ message, one
   * wake-up of every thread on its way instead of one per message: the first message to a peer
   * in a turn goes at once, so a lone one waits for nothing, and the rest follow together as the
   * turn ends (`setImmediate`, not a timer). Only between tsparallel's own processes: Jupyter's
   * clients know no batches. Every channel receives them, with or without this. An engine's task
   * socket does not batch: its event loop runs user code, so a held reply would wait behind the
   * next task however long it runs, and output written while a task runs must leave at once;
   * the link lightweight engines share batches, and they `flush` it before such code and after
   * output (see engine/shared-link.ts).
   */
  batch?: boolean;
  /**
   * The socket has one peer (a DEALER): every identity a message carries is for that peer to
   * route on, so messages with different ones share a batch to it, each behind its own (see
   * `Session.batch`). On a ROUTER or PUB socket the first identity names the peer.
   */
  onePeer?: boolean;
  /**
   * With `batch`, holds the first message to a peer in a turn too, so that each turn sends a
   * peer one ZeroMQ message: every send wakes ZeroMQ's I/O thread and then the peer, which on a
   * busy machine costs more than the message. Only for a process whose event loop never runs
   * user code (the hub), where what is held waits for the rest of a short turn at most.
   */
  holdFirst?: boolean;
  /**
   * For a ROUTER told to notify disconnects (`ZMQ_ROUTER_NOTIFY`): called with the identity of a
   * peer whose connection closed. libzmq queues the notice behind what the peer sent before.
   */
  peerGone?: (identity: Buffer) => void;
}

/**
 * A message this large goes alone: it gains little from sharing a wake-up and is not held back
 * for one. A batch this large goes at once, so a burst leaves in pieces while it is being made.
 */
const BATCH_BYTES = 64 * 1024;

/**
 * Messages taken from received batches before the receive loop lets the event loop turn: a
 * burst of batches must not hold back what this process batches in turn, nor its timers, longer
 * than the same burst of single messages would (zeromq.js yields after 512 receives).
 */
const UNBATCHED_PER_TURN = 512;

/** What a channel sending batches holds for one peer in the current turn. */
interface Held {
  identities: Buffer[];
  bodies: Frame[][];
  bytes: number;
}

/**
 * A socket that sends and receives whole, signed tsparallel messages.
 *
 * A notebook cell's synchronous code may be ended by SIGINT (`breakOnSigint`) between any two
 * statements of the sends it makes, with no `finally` run. So each step of sending leaves a
 * state the next send repairs: at worst that one message is lost, never the channel wedged.
 */
export class Channel {
  private readonly queue: Frame[][] = [];
  /** The pump sending `queue`, while one runs; set once it has started. */
  private pumping: Promise<void> | undefined;
  /** The latest send; the socket is busy until it settles. */
  private lastSend: Promise<void> = Promise.resolve();
  /** Per socket: a message relayed on two sockets (a reply and its IOPub copy) is no replay. */
  private readonly replays: ReplayGuard;
  /** Received messages dropped so far, by reason. */
  readonly dropped: Record<DropKind, number> = { signature: 0, replay: 0, malformed: 0 };
  /** With `batch`: the peers sent to in this turn, by route, with what waits to follow. */
  private readonly turn = new Map<string, Held>();
  /** The messages of the latest received batch, and the next one to hand on. */
  private unread: Buffer[][] = [];
  private unreadAt = 0;
  private unbatchedSinceYield = 0;

  constructor(
    readonly socket: MessageSocket,
    readonly session: Session,
    private readonly onDropped: (error: Error) => void = () => {},
    private readonly options: ChannelOptions = {},
  ) {
    this.replays = new ReplayGuard(undefined, options.onePeer);
  }

  /**
   * Sends `msg` now if the socket can take it, else queues it; order is kept either way. With
   * `wire` (a received message's signed frames, see `Received`), sends those behind
   * `msg.identities` instead of serializing `msg`. With `batch`, a message that is not the first
   * to its peer in this turn leaves at the end of the turn (see `ChannelOptions`).
   */
  send(msg: IMessage | Envelope, wire?: Frame[]): void {
    if (this.options.batch) this.hold(msg.identities, wire ?? this.session.draft(msg));
    else this.sendAlone(msg.identities, wire ?? this.session.body(msg));
  }

  /**
   * Sends `msgs`, all to the peer the first one's identities route to, as one batch (see
   * `Session.batch`): one ZeroMQ message and one wake-up of the peer for all of them.
   */
  sendTogether(msgs: (IMessage | Envelope)[]): void {
    if (msgs.length === 0) return;
    const { identities } = msgs[0];
    // What this channel holds for the peer goes first.
    const held = this.options.batch ? this.turn.get(routeOf(this.peerOf(identities))) : undefined;
    if (held) this.release(held);
    this.sendBodies(
      identities,
      msgs.map((m) => this.session.draft(m)),
    );
  }

  sendFrames(frames: Frame[]): void {
    // zeromq sends synchronously while the socket is writable, which lets output leave even
    // while user code blocks the event loop; it throws EBUSY once a send has to wait.
    if (this.queue.length === 0 && !this.pumping && this.trySend(frames)) return;
    this.queue.push(frames);
    this.pumping ??= this.pump().finally(() => (this.pumping = undefined));
  }

  /** Verified messages as they arrive; ends when the socket closes. */
  async *messages(): AsyncGenerator<Message> {
    for (let r = await this.next(); r !== null; r = await this.next()) yield r.msg;
  }

  /**
   * Calls `handle` with each verified message (with its frames, see `Received`) as it arrives,
   * and whether more of its batch follow at once: those of a batch one after another in one
   * turn. For a loop that only hands messages on (the hub, a client, an engine's sockets): a
   * generator costs each message promises and turns of the microtask queue, on a task's round
   * trip too. Resolves once the socket closes. What `messages` took of a batch and did not give
   * yet comes first.
   */
  async serve(handle: (received: Received, more: boolean) => void): Promise<void> {
    let batch: Buffer[][] | null = this.unread.slice(this.unreadAt);
    this.unread = [];
    this.unreadAt = 0;
    for (; batch !== null; batch = await this.nextBatch()) {
      for (let i = 0; i < batch.length; i++) {
        const r = this.take(batch[i]);
        if (r) handle(r, i < batch.length - 1);
        if (++this.unbatchedSinceYield >= UNBATCHED_PER_TURN) {
          this.unbatchedSinceYield = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    }
  }

  /**
   * The next verified message, or null once the socket closed; bad ones are dropped, and a bad
   * message in a batch costs only itself.
   */
  private async next(): Promise<Received | null> {
    for (;;) {
      if (this.unreadAt >= this.unread.length) {
        const batch = await this.nextBatch();
        if (batch === null) return null;
        this.unread = batch;
        this.unreadAt = 0;
      } else if (++this.unbatchedSinceYield >= UNBATCHED_PER_TURN) {
        this.unbatchedSinceYield = 0;
        await new Promise((resolve) => setImmediate(resolve));
      }
      const r = this.take(this.unread[this.unreadAt++]);
      if (r) return r;
    }
  }

  /**
   * The messages of the next ZeroMQ message received (one, or a batch's), each not yet
   * verified; null once the socket closed. A batch whose signature or layout is bad is dropped
   * whole.
   */
  private async nextBatch(): Promise<Buffer[][] | null> {
    for (;;) {
      let received: Buffer[];
      try {
        received = await (this.socket as zmq.Readable).receive();
      } catch (e) {
        if (this.socket.closed) return null;
        throw e;
      }
      // A disconnect notice: the identity and one empty frame, which no message is.
      if (this.options.peerGone && received.length === 2 && received[1].length === 0) {
        this.options.peerGone(received[0]);
        continue;
      }
      try {
        return this.session.unbatch(received, this.replays);
      } catch (e) {
        this.drop(e);
      }
    }
  }

  /** One message of a batch, verified and validated; undefined when it is dropped. */
  private take(frames: Buffer[]): Received | undefined {
    try {
      return this.session.receive(frames, this.replays);
    } catch (e) {
      this.drop(e);
      return undefined;
    }
  }

  /**
   * Sends everything held now rather than as the turn ends: the code about to run may keep the
   * event loop for long.
   */
  flush(): void {
    for (const held of this.turn.values()) this.release(held);
    this.turn.clear();
  }

  /** Sends what is held, then closes; what the socket has not taken by then is dropped. */
  close(): void {
    this.flush();
    this.queue.length = 0;
    this.socket.close();
  }

  private drop(e: unknown): void {
    this.dropped[e instanceof ProtocolError ? e.kind : 'malformed']++;
    this.onDropped(e as Error);
  }

  /** Sends a message's `body` (see `Session.body`) to `identities`, signed if it is not yet. */
  private sendAlone(identities: Buffer[], body: Frame[]): void {
    this.sendFrames([...identities, ...this.session.seal(body)]);
  }

  /** Sends `bodies` to `identities`: one alone, several as a batch. */
  private sendBodies(identities: Buffer[], bodies: Frame[][]): void {
    if (bodies.length === 1) this.sendAlone(identities, bodies[0]);
    else if (bodies.length > 1) this.sendFrames(this.session.batch(identities, bodies));
  }

  /** The identities that name the peer `identities` route to (see `ChannelOptions.onePeer`). */
  private peerOf(identities: Buffer[]): Buffer[] {
    return this.options.onePeer ? [] : identities.slice(0, 1);
  }

  /** Sends `body` to the peer `identities` route to, now or with the turn's batch to it. */
  private hold(identities: Buffer[], body: Frame[]): void {
    const peer = this.peerOf(identities);
    const route = routeOf(peer);
    let held = this.turn.get(route);
    if (held === undefined) {
      // The turn's end is arranged before anything is held for it.
      if (this.turn.size === 0) setImmediate(() => this.flush());
      if (!this.options.holdFirst) {
        this.sendAlone(identities, body);
        this.turn.set(route, { identities: peer, bodies: [], bytes: 0 });
        return;
      }
      held = { identities: peer, bodies: [], bytes: 0 };
      this.turn.set(route, held);
    }
    const bytes = bodySize(body);
    if (bytes >= BATCH_BYTES) {
      this.release(held);
      this.sendAlone(identities, body);
      return;
    }
    // Identities beyond the peer's travel inside the batch, with their message.
    held.bodies.push(
      identities.length > peer.length ? [...identities.slice(peer.length), ...body] : body,
    );
    held.bytes += bytes;
    if (held.bytes >= BATCH_BYTES) this.release(held);
  }

  /** Sends what is held for one peer. */
  private release(held: Held): void {
    const { identities, bodies } = held;
    // Taken before they leave, so that no message is ever sent twice.
    held.bodies = [];
    held.bytes = 0;
    this.sendBodies(identities, bodies);
  }

  /** False when the socket is busy with an earlier send. */
  private trySend(frames: Frame[]): boolean {
    if (this.socket.closed) return true;
    try {
      this.lastSend = (this.socket as zmq.Writable).send(frames);
    } catch (e) {
      if ((e as { code?: string }).code === 'EBUSY') return false;
      this.onDropped(e as Error);
      return true;
    }
    // A peer that went away must not stall what is queued for the others.
    this.lastSend.catch((e: Error) => this.socket.closed || this.onDropped(e));
    return true;
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0 && !this.socket.closed) {
      await this.lastSend.catch(() => undefined);
      if (this.trySend(this.queue[0])) this.queue.shift();
      else await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

/** About the bytes a message's frames hold (a string's length, not its UTF-8 size). */
function bodySize(body: Frame[]): number {
  return body.reduce((n, f) => n + f.length, 0);
}

/** A key for the peer `identities` route to. */
function routeOf(identities: Buffer[]): string {
  return identities.map((i) => `${i.length}:${i.toString('latin1')}`).join('');
}

/**
 * A ZeroMQ socket speaking tsparallel messages. zeromq.js allows one pending send per socket, so
 * sends go through a queue; received frames are verified and validated once, here, and bad ones
 * are dropped and reported without ever stopping the receive loop.
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

/** Any socket that sends; receiving needs one that is also readable (not a PUB). */
type MessageSocket = zmq.Socket & Partial<zmq.Writable> & Partial<zmq.Readable>;

/** A socket that sends and receives whole, signed tsparallel messages. */
export class Channel {
  private readonly queue: Frame[][] = [];
  private sending = false;
  /** The latest send; the socket is busy until it settles. */
  private lastSend: Promise<void> = Promise.resolve();
  /** Per socket: a message relayed on two sockets (a reply and its IOPub copy) is no replay. */
  private readonly replays = new ReplayGuard();
  /** Received messages dropped so far, by reason. */
  readonly dropped: Record<DropKind, number> = { signature: 0, replay: 0, malformed: 0 };

  constructor(
    readonly socket: MessageSocket,
    readonly session: Session,
    private readonly onDropped: (error: Error) => void = () => {},
  ) {}

  /**
   * Sends `msg` now if the socket can take it, else queues it; order is kept either way. With
   * `wire` (a received message's signed frames, see `Received`), sends those behind
   * `msg.identities` instead of serializing `msg`.
   */
  send(msg: IMessage | Envelope, wire?: Frame[]): void {
    this.sendFrames(wire ? [...msg.identities, ...wire] : this.session.frames(msg));
  }

  sendFrames(frames: Frame[]): void {
    // zeromq sends synchronously while the socket is writable, which lets output leave even
    // while user code blocks the event loop; it throws EBUSY once a send has to wait.
    if (this.queue.length === 0 && !this.sending && this.trySend(frames)) return;
    this.queue.push(frames);
    if (!this.sending) void this.pump();
  }

  /** Verified messages as they arrive; ends when the socket closes. */
  async *messages(): AsyncGenerator<Message> {
    for await (const r of this.received()) yield r.msg;
  }

  /**
   * Verified messages with the frames they came in, for a relay that forwards them unchanged
   * (see `Received`); ends when the socket closes.
   */
  async *received(): AsyncGenerator<Received> {
    for (let r = await this.next(); r !== null; r = await this.next()) yield r;
  }

  /** The next verified message, or null once the socket closed; bad ones are dropped. */
  private async next(): Promise<Received | null> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await (this.socket as zmq.Readable).receive();
      } catch (e) {
        if (this.socket.closed) return null;
        throw e;
      }
      try {
        return this.session.receive(frames, this.replays);
      } catch (e) {
        this.dropped[e instanceof ProtocolError ? e.kind : 'malformed']++;
        this.onDropped(e as Error);
      }
    }
  }

  close(): void {
    this.queue.length = 0;
    this.socket.close();
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
    this.sending = true;
    while (this.queue.length > 0 && !this.socket.closed) {
      await this.lastSend.catch(() => undefined);
      if (this.trySend(this.queue[0])) this.queue.shift();
      else await new Promise((resolve) => setImmediate(resolve));
    }
    this.sending = false;
  }
}

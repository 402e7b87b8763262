/**
 * A ZeroMQ socket speaking tsparallel messages. zeromq.js allows one pending send per socket, so
 * sends go through a queue; received frames are verified and validated once, here, and bad ones
 * are dropped and counted without ever stopping the receive loop.
 */
import type * as zmq from 'zeromq';
import type { Message, IMessage } from './messages';
import type { Session } from './session';

/** Any socket that sends; receiving needs one that is also readable (not a PUB). */
type MessageSocket = zmq.Socket & Partial<zmq.Writable> & Partial<zmq.Readable>;

export class Channel {
  /** Messages refused because they were malformed or wrongly signed. */
  dropped = 0;
  private readonly queue: Buffer[][] = [];
  private sending = false;

  constructor(
    readonly socket: MessageSocket,
    readonly session: Session,
    private readonly onDropped: (error: Error) => void = () => {},
  ) {}

  /** Queues `msg` for sending; returns at once. Order of sends on one channel is kept. */
  send(msg: IMessage): void {
    this.sendFrames(this.session.serialize(msg));
  }

  sendFrames(frames: Buffer[]): void {
    this.queue.push(frames);
    if (!this.sending) void this.pump();
  }

  /** Verified messages as they arrive; ends when the socket closes. */
  async *messages(): AsyncGenerator<Message> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await (this.socket as zmq.Readable).receive();
      } catch (e) {
        if (this.socket.closed) return;
        throw e;
      }
      try {
        yield this.session.deserialize(frames);
      } catch (e) {
        this.dropped++;
        this.onDropped(e as Error);
      }
    }
  }

  close(): void {
    this.queue.length = 0;
    this.socket.close();
  }

  private async pump(): Promise<void> {
    this.sending = true;
    while (this.queue.length > 0 && !this.socket.closed) {
      const frames = this.queue.shift() as Buffer[];
      try {
        await (this.socket as zmq.Writable).send(frames);
      } catch (e) {
        // A peer that went away must not stall what is queued for the others.
        if (!this.socket.closed) this.onDropped(e as Error);
      }
    }
    this.sending = false;
  }
}

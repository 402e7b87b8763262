/**
 * One connection to each of the hub's sockets (tasks, heartbeats) for all the lightweight engines
 * of a process. With an own socket each, a thousand engines in ten processes cost the hub a
 * message per task each way, as tasks spread over the engines cannot share one, and a message per
 * beat; over one connection per process, what the hub sends in one turn to the engines of a
 * process travels as one batch, and so do their replies (see `ChannelOptions.onePeer`); their
 * beats go as one that names them all (`joinProcessHeartbeat` in heartbeat-thread.ts). Each other
 * message carries its engine's identity behind the process's, so the hub still tells the engines
 * apart (see `engineIdentity` in controller/engine-registry.ts): each registers, joins, is aborted
 * and is dropped on its own.
 */
import * as zmq from 'zeromq';
import { AsyncQueue } from '../protocol/async-queue';
import { Channel, connectTo, NO_DROPPING } from '../protocol/channel';
import type { IMessage, Message } from '../protocol/messages';
import type { Session } from '../protocol/session';

/** What an engine sends to and receives from the hub on: its own socket, or its share of a link. */
export interface HubConnection {
  readonly session: Session;
  send(msg: IMessage): void;
  sendTogether(msgs: IMessage[]): void;
  messages(): AsyncGenerator<Message>;
  /**
   * Calls `handle` with each message as it comes, and whether more are known to follow at once
   * (see `Channel.serve`); resolves at the end.
   */
  serve(handle: (received: { msg: Message }, more: boolean) => void): Promise<void>;
  /** Sends now what waits for the turn's end, as code that may run long is about to start. */
  flush(): void;
  close(): void;
}

/** The key of the process's own share of a link among its engines' (see `SharedLink.open`). */
const PROCESS = '';

/** The process's links, by the address of the hub's socket. */
const links = new Map<string, SharedLink>();

/** The connection of this process's lightweight engines to one hub socket; see the file's comment. */
class SharedLink {
  private readonly channel: Channel;
  /** What came for each engine, by its identity. */
  private readonly inboxes = new Map<string, AsyncQueue<Message>>();

  constructor(
    address: string,
    options: zmq.SocketOptions<zmq.Dealer>,
    session: Session,
    log: (line: string) => void,
    private readonly forget: () => void,
  ) {
    const socket = new zmq.Dealer({ ...NO_DROPPING, ...options });
    this.channel = new Channel(socket, session, (e) => log(`dropped a message: ${e.message}`), {
      batch: true,
      onePeer: true,
    });
    connectTo(socket, address);
    void this.deliver();
  }

  /**
   * Engine `uuid`'s share of the link, from its own `session`; with `null`, the process's own,
   * whose messages name no engine (beats for all of them, and their answers).
   */
  open(uuid: string | null, session: Session): HubConnection {
    const key = uuid ?? PROCESS;
    const inbox = new AsyncQueue<Message>();
    this.inboxes.set(key, inbox);
    const identities = uuid === null ? [] : [Buffer.from(uuid)];
    const send = (msg: IMessage): void => this.channel.send({ ...msg, identities });
    return {
      session,
      send,
      // Together anyway: the link sends what is queued in one turn as one batch.
      sendTogether: (msgs) => msgs.forEach(send),
      messages: async function* () {
        yield* inbox;
      },
      serve: async (handle) => {
        for await (const msg of inbox) handle({ msg }, false);
      },
      flush: () => this.channel.flush(),
      close: () => {
        inbox.end();
        this.inboxes.delete(key);
        if (this.inboxes.size > 0) return;
        this.forget();
        this.channel.close();
      },
    };
  }

  private async deliver(): Promise<void> {
    for await (const msg of this.channel.messages()) {
      this.inboxes.get(msg.identities[0]?.toString() ?? PROCESS)?.push(msg);
    }
    for (const inbox of this.inboxes.values()) inbox.end();
  }
}

/**
 * Engine `uuid`'s connection to the hub's socket at `address`, shared with the process's other
 * engines, or with `null` the process's own (see `SharedLink.open`); the link's socket takes
 * `options` from the first that opens it.
 */
export function sharedConnection(
  address: string,
  options: zmq.SocketOptions<zmq.Dealer>,
  session: Session,
  uuid: string | null,
  log: (line: string) => void,
): HubConnection {
  let link = links.get(address);
  if (!link) {
    link = new SharedLink(address, options, session, log, () => links.delete(address));
    links.set(address, link);
  }
  return link.open(uuid, session);
}

/** Engine `uuid`'s own connection to the hub's socket at `address`, shared with no other. */
export function ownConnection(
  address: string,
  options: zmq.SocketOptions<zmq.Dealer>,
  session: Session,
  uuid: string,
  log: (line: string) => void = () => {},
): Channel {
  const socket = new zmq.Dealer({ ...NO_DROPPING, ...options, routingId: uuid });
  connectTo(socket, address);
  return new Channel(socket, session, (e) => log(`dropped a message: ${e.message}`));
}

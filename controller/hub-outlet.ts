/**
 * The hub's plumbing: where its messages go (`HubOutlet`, implemented over ZeroMQ by the
 * controller server), `Replies`, which answers requests through one of its routes with the
 * reply type `replyTypes` names, and `handlerIn`, which finds a message's handler in a table.
 */
import type { ConditionName } from '../protocol/errors';
import {
  replyTypes,
  type ContentMap,
  type ErrorContent,
  type IHeader,
  type IMessage,
  type Message,
  type MsgType,
  type ReplyType,
  type RequestType,
} from '../protocol/messages';
import type { Frame, Session } from '../protocol/session';

/**
 * Where the hub's messages go. Each message carries its routing identity in `identities`. A
 * task and its reply pass through the hub as ipyparallel's schedulers pass them: `wire`, when
 * given, holds the frames `msg` arrived in, signed by its sender (`Received.wire`), and the
 * outlet sends them on behind `msg.identities` instead of serializing and signing `msg` again.
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

/**
 * Answers requests to their senders, in the reply type each request calls for, through one of
 * the outlet's routes (clients' or engines'). It remembers which request it answered last, so
 * that a handler that replied and then threw is not answered twice.
 */
export class Replies {
  /** The header of the request the latest reply answered. */
  private lastAnswered: object | undefined;

  constructor(
    private readonly session: Session,
    private readonly route: (msg: IMessage, wire?: Frame[]) => void,
  ) {}

  /** Answers request `to` with `content` and optional buffers. */
  ok<R extends RequestType>(
    to: IMessage<R>,
    content: ContentMap[ReplyType<R>],
    buffers: Buffer[] = [],
  ): void {
    const type = replyTypes[to.header.msg_type];
    this.send(
      this.session.msg(type, content, { parent: to.header, identities: to.identities, buffers }),
    );
  }

  /** Answers the request with `header`, from `identities`, with an error. */
  error(
    identities: Buffer[],
    header: IHeader<RequestType>,
    ename: ConditionName,
    evalue: string,
  ): void {
    const content: ErrorContent = { status: 'error', ename, evalue, traceback: [] };
    const type: MsgType = replyTypes[header.msg_type];
    this.send(this.session.msg(type, content, { parent: header, identities }));
  }

  /** Sends a reply made elsewhere; `wire` as in `HubOutlet`. */
  send(reply: IMessage, wire?: Frame[]): void {
    this.lastAnswered = reply.parent_header;
    this.route(reply, wire);
  }

  /** True when the latest reply sent answered the very request whose header is `header`. */
  answered(header: IHeader<string>): boolean {
    return this.lastAnswered === header;
  }
}

/** A table of handlers for some message types, each taking its type's message. */
export type HandlerTable<K extends MsgType> = {
  [T in K]: (msg: IMessage<T>, wire?: Frame[]) => void;
};

/** The handler for `msg`'s type in `table`, or `undefined` when the table has none. */
export function handlerIn<K extends MsgType>(
  table: HandlerTable<K>,
  msg: Message,
): ((msg: Message, wire?: Frame[]) => void) | undefined {
  const type = msg.header.msg_type;
  return Object.hasOwn(table, type)
    ? (table as unknown as Record<MsgType, (m: Message, wire?: Frame[]) => void>)[type]
    : undefined;
}

/**
 * Jupyter-style multipart framing: `[identities..., "<IDS|MSG>", signature, header,
 * parent_header, metadata, content, buffers...]`, signed with HMAC-SHA256 over the four JSON
 * frames. A `Session` builds, signs, parses and verifies messages for one process. Several
 * messages for one peer may travel as one batch (see `Session.batch`), signed once as a whole.
 */
import { isUtf8 } from 'node:buffer';
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { userInfo } from 'node:os';
import { ProtocolError } from './errors';
import {
  isHeader,
  validateMessage,
  type ContentMap,
  type IHeader,
  type IMessage,
  type Message,
  type MsgType,
} from './messages';

/** Separates routing identities from the message frames. */
export const DELIMITER = Buffer.from('<IDS|MSG>');
/** Separates routing identities from a batch of messages (see `Session.batch`). */
export const BATCH_DELIMITER = Buffer.from('<IDS|BATCH>');
/** The fewest frames a message has from its delimiter on: the delimiter, signature, four JSON. */
const MESSAGE_FRAMES = 6;
const PROTOCOL_VERSION = '5.3';
/** The signature frame of a message whose signature is its batch's (see `Session.batch`). */
const UNSIGNED = Buffer.alloc(0);

/** What a new message answers, and how it is routed. */
export interface BuildOptions {
  parent?: IMessage['header'] | Record<string, never>;
  metadata?: Record<string, unknown>;
  buffers?: Buffer[];
  identities?: Buffer[];
  /** The message's id, when it was chosen before (a task its client knew before sending it). */
  msgId?: string;
}

/**
 * A signed message whose content is not checked against tsparallel's table: the Jupyter kernel
 * messages a notebook kernel exchanges share the framing but not the types.
 */
export interface Envelope {
  identities: Buffer[];
  header: IHeader<string>;
  parent_header: IHeader<string> | Record<string, never>;
  metadata: Record<string, unknown>;
  content: unknown;
  buffers: Buffer[];
}

/**
 * A frame as it goes to a socket. The JSON frames and the signature travel as strings: zeromq
 * copies a string into the message it sends, where a Buffer over 128 bytes is sent without
 * copying and handed back to the main thread to be released once sent, one wake-up of it per
 * message; for a few hundred bytes of text the copy is cheaper.
 */
export type Frame = Buffer | string;

/**
 * A verified message and its frames from the `<IDS|MSG>` delimiter on, as they arrived (the
 * JSON frames as the text they were decoded from). Every process shares the key, so a relay can
 * send `wire` on behind a new routing identity instead of serializing and signing `msg` again,
 * as long as it changed nothing else. A message that came in a batch has an empty signature
 * frame, as its batch's signature covered it: `Session.seal` signs it if it goes on alone.
 */
export interface Received<M = Message> {
  msg: M;
  wire: Frame[];
}

/** A message as it came off the wire, before anything about it is checked. */
export interface RawEnvelope {
  identities: Buffer[];
  header: unknown;
  parent_header: unknown;
  metadata: unknown;
  content: unknown;
  buffers: Buffer[];
}

/** One process's side of the protocol: builds, signs, parses and verifies messages. */
export class Session {
  readonly id = randomUUID();
  private readonly key: Buffer;
  private readonly username: string;
  /** The messages `unbatch` took from a batch whose signature it verified. */
  private readonly vouched = new WeakSet<Buffer[]>();

  /** `key` is the shared secret from the connection file; an empty key disables signing. */
  constructor(key: string) {
    this.key = Buffer.from(key, 'utf8');
    this.username = safeUsername();
  }

  /** A new message of `type`, not yet on the wire. */
  msg<T extends MsgType>(type: T, content: ContentMap[T], options: BuildOptions = {}): IMessage<T> {
    return {
      identities: options.identities ?? [],
      header: this.header(type, options.msgId),
      parent_header: options.parent ?? {},
      metadata: options.metadata ?? {},
      content,
      buffers: options.buffers ?? [],
    };
  }

  /** A fresh header for a message of `type` from this session. */
  header<T extends string>(type: T, msgId: string = randomUUID()): IHeader<T> {
    return {
      msg_id: msgId,
      msg_type: type,
      session: this.id,
      username: this.username,
      date: new Date().toISOString(),
      version: PROTOCOL_VERSION,
    };
  }

  /**
   * The one way out: the frames for `msg`, signed, as a socket takes them (see `Frame`).
   * Buffers are passed through without copying.
   */
  frames(msg: IMessage | Envelope): Frame[] {
    return [...msg.identities, ...this.body(msg)];
  }

  /** `frames` without the identities: from the delimiter on, as `Received.wire` holds them. */
  body(msg: IMessage | Envelope): Frame[] {
    return this.seal(this.draft(msg));
  }

  /**
   * `body` with its signature frame left empty, for a message that may yet travel in a batch,
   * whose one signature covers it; `seal` signs it if it goes alone after all.
   */
  draft(msg: IMessage | Envelope): Frame[] {
    const parts = [msg.header, msg.parent_header, msg.metadata, msg.content].map((p) =>
      JSON.stringify(p),
    );
    return [DELIMITER, UNSIGNED, ...parts, ...msg.buffers];
  }

  /**
   * `body`, a message's frames from the delimiter on (behind identities of its own, in a batch
   * for a link several engines share), signed in place if it is not yet.
   */
  seal(body: Frame[]): Frame[] {
    const s = delimiterAt(body) + 1;
    if (body[s].length === 0) body[s] = this.sign(body.slice(s + 1, s + 5));
    return body;
  }

  /**
   * One multipart message carrying several messages for the peer `identities` route to:
   * `[identities..., "<IDS|BATCH>", signature, layout, packed]`, where `packed` holds each
   * message's frames from its own `<IDS|MSG>` delimiter on (see `draft`) with an empty signature
   * frame, end to end, each behind the identities it has beyond the batch's (the engine it is
   * for, of those sharing a connection, see engine/shared-link.ts), and `layout` says how long
   * each frame is: decimal lengths joined by commas, one message's after another's joined by
   * semicolons. The signature covers the layout and `packed`, and so every message in the
   * batch: the batch is verified once, and refused whole when it was changed or is a replay
   * (see `unbatch`). Three frames and one
   * signature, however many messages: every frame costs the sender and the receiver a call into
   * ZeroMQ and a buffer of their own, and a signature a few microseconds each side, which for
   * small messages is most of what they cost.
   */
  batch(identities: Buffer[], bodies: Frame[][]): Frame[] {
    // A message's own signature (one relayed as it came alone) is not needed: the batch's covers it.
    const signatures = bodies.map((b) => delimiterAt(b) + 1);
    const lengths = bodies.map((b, m) =>
      b.map((f, i) =>
        i === signatures[m] ? 0 : typeof f === 'string' ? Buffer.byteLength(f) : f.length,
      ),
    );
    const packed = Buffer.allocUnsafe(lengths.flat().reduce((a, b) => a + b, 0));
    let at = 0;
    for (const [m, b] of bodies.entries()) {
      for (let i = 0; i < b.length; i++) {
        const f = b[i];
        if (i !== signatures[m]) {
          at += typeof f === 'string' ? packed.write(f, at) : f.copy(packed, at);
        }
      }
    }
    const layout = lengths.map((l) => l.join(',')).join(';');
    return [...identities, BATCH_DELIMITER, this.sign([layout, packed]), layout, packed];
  }

  /**
   * The messages in `frames` as received: `frames` itself, or for a batch (see `batch`), each of
   * its messages behind the batch's identities, ready for `receive` as if it had come alone
   * (its frames are views of the batch's), which takes the batch's verified signature (and with
   * `replays`, that the batch is new) for its own. Throws `ProtocolError` for a batch whose
   * signature is wrong, that is a replay, or whose layout does not match what it carries.
   */
  unbatch(frames: Buffer[], replays?: ReplayGuard): Buffer[][] {
    const d = frames.findIndex((f) => f.equals(DELIMITER) || f.equals(BATCH_DELIMITER));
    if (d < 0 || !frames[d].equals(BATCH_DELIMITER)) return [frames];
    const identities = frames.slice(0, d);
    if (frames.length !== d + 4) {
      throw new ProtocolError(
        `batch has ${frames.length - d - 1} frames after <IDS|BATCH>, needs 3 (signature, layout, packed)`,
      );
    }
    const [signature, layoutFrame, packed] = frames.slice(d + 1);
    this.verify(signature, [layoutFrame, packed], identities, replays, 'batch');
    const layout = layoutFrame.toString('latin1');
    const lengths = layout.split(';').map((m) => m.split(',').map(Number));
    if (
      !lengths.every(
        (m) => m.length >= MESSAGE_FRAMES && m.every((n) => Number.isInteger(n) && n >= 0),
      ) ||
      lengths.flat().reduce((a, b) => a + b, 0) !== packed.length
    ) {
      throw new ProtocolError(
        `batch's layout (${layout.slice(0, 64)}) does not split the ${packed.length} bytes it ` +
          `carries into messages of ${MESSAGE_FRAMES} frames or more`,
      );
    }
    const messages: Buffer[][] = [];
    let at = 0;
    for (const m of lengths) {
      const own = m.map((n) => packed.subarray(at, (at += n)));
      const delimiter = own.findIndex((f) => f.equals(DELIMITER));
      if (delimiter < 0 || own.length - delimiter < MESSAGE_FRAMES) {
        throw new ProtocolError(
          `batch's message ${messages.length} has no <IDS|MSG> followed by ${MESSAGE_FRAMES - 1} frames`,
        );
      }
      own[delimiter + 1] = UNSIGNED;
      const message = [...identities, ...own];
      this.vouched.add(message);
      messages.push(message);
    }
    return messages;
  }

  /**
   * The body of a message received as `wire` (see `Received`) that a relay changed only in its
   * content and buffers: the header, parent header and metadata go on as the text they came in,
   * signed anew with the new content, which saves serializing them again.
   */
  rebody(wire: Frame[], content: unknown, buffers: Buffer[]): Frame[] {
    const parts = [wire[2], wire[3], wire[4], JSON.stringify(content)];
    return [DELIMITER, this.sign(parts), ...parts, ...buffers];
  }

  /**
   * The one way in: verifies frames as received from a socket (and with `replays`, that the
   * message is new), decodes them and checks the message against tsparallel's table, or with
   * `accept` against another vocabulary sharing the framing (Jupyter's kernel messages).
   * Throws `ProtocolError` for missing frames, a bad signature, a replay, invalid JSON or
   * content that does not match its type (what the check threw becomes its `cause`).
   */
  receive(frames: Buffer[], replays?: ReplayGuard): Received;
  receive<M>(
    frames: Buffer[],
    replays: ReplayGuard | undefined,
    accept: (raw: RawEnvelope) => M,
  ): Received<M>;
  receive<M>(
    frames: Buffer[],
    replays?: ReplayGuard,
    accept: (raw: RawEnvelope) => M = validated as (raw: RawEnvelope) => M,
  ): Received<M> {
    const { raw, text, at } = this.decode(frames, replays);
    let msg: M;
    try {
      msg = accept(raw);
    } catch (e) {
      const error = new ProtocolError((e as Error).message, 'malformed', { cause: e });
      if (isHeader(raw.header)) error.refused = { identities: raw.identities, header: raw.header };
      throw error;
    }
    return { msg, wire: [frames[at], frames[at + 1], ...text, ...raw.buffers] };
  }

  /**
   * Verifies the signature (and with `replays`, that the message is new) and decodes the JSON
   * frames, giving them with their text and the delimiter's index; checks nothing about the
   * content.
   */
  private decode(
    frames: Buffer[],
    replays?: ReplayGuard,
  ): { raw: RawEnvelope; text: string[]; at: number } {
    const d = frames.findIndex((f) => f.equals(DELIMITER));
    if (d < 0) throw new ProtocolError('message has no <IDS|MSG> delimiter');
    if (frames.length < d + 6) {
      throw new ProtocolError(
        `message has ${frames.length - d - 1} frames after the delimiter, needs 5`,
      );
    }
    const parts = frames.slice(d + 2, d + 6);
    if (!this.vouched.has(frames)) {
      this.verify(frames[d + 1], parts, frames.slice(0, d), replays, 'message');
    }
    // Decoding replaces bytes that are not UTF-8, so the text would no longer be what was signed.
    if (!parts.every((p) => isUtf8(p))) {
      throw new ProtocolError('message frame is not UTF-8 text', 'malformed');
    }
    const text = parts.map((p) => p.toString('utf8'));
    let json: unknown[];
    try {
      json = text.map((t) => JSON.parse(t) as unknown);
    } catch (e) {
      throw new ProtocolError('message frame is not valid JSON', 'malformed', { cause: e });
    }
    const raw = {
      identities: frames.slice(0, d),
      header: json[0],
      parent_header: json[1],
      metadata: json[2],
      content: json[3],
      buffers: frames.slice(d + 6),
    };
    return { raw, text, at: d };
  }

  /**
   * Throws unless `given` signs `parts` (and with `replays`, was not seen before by the
   * recipient `identities` name).
   */
  private verify(
    given: Buffer,
    parts: Buffer[],
    identities: Buffer[],
    replays: ReplayGuard | undefined,
    what: 'message' | 'batch',
  ): void {
    if (this.key.length === 0) return;
    const expected = Buffer.from(this.sign(parts));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new ProtocolError(`${what} signature is missing or wrong`, 'signature');
    }
    if (replays && !replays.firstSight(given, identities)) {
      throw new ProtocolError(`${what} replayed: its signature was seen before`, 'replay');
    }
  }

  private sign(parts: Frame[]): string {
    if (this.key.length === 0) return '';
    const hmac = createHmac('sha256', this.key);
    for (const p of parts) hmac.update(p);
    return hmac.digest('hex');
  }
}

/**
 * Remembers the signatures of recent messages, so that a captured message sent again is refused.
 * A signature covers the header with its unique `msg_id`, so a genuine message never repeats;
 * a msg_id serves as the key as well. Memory is bounded by keeping two generations of
 * `generation` keys each, as Jupyter's session keeps a bounded digest history; checking costs
 * two set lookups.
 */
export class ReplayGuard {
  private current = new Set<string>();
  private previous = new Set<string>();

  constructor(
    private readonly generation = 65_536,
    /**
     * A message counts as seen per recipient, named by its identities: on a link several
     * engines share (see `ChannelOptions.onePeer`), the hub's news for all of them is one
     * message, sent to each.
     */
    private readonly perRecipient = false,
  ) {}

  /**
   * False when `key`, a signature (for recipient `identities`) or a msg_id, was seen before;
   * remembers it otherwise.
   */
  firstSight(key: Buffer | string, identities: Buffer[] = []): boolean {
    const seen = typeof key === 'string' ? key : key.toString('latin1');
    const entry = this.perRecipient
      ? [seen, ...identities.map((i) => i.toString('latin1'))].join('\n')
      : seen;
    if (this.current.has(entry) || this.previous.has(entry)) return false;
    if (this.current.size >= this.generation) {
      this.previous = this.current;
      this.current = new Set();
    }
    this.current.add(entry);
    return true;
  }
}

/** Where the `<IDS|MSG>` delimiter is among a message's frames; identities come before it. */
function delimiterAt(frames: Frame[]): number {
  return frames.findIndex((f) => typeof f !== 'string' && f.equals(DELIMITER));
}

/** A raw message checked against tsparallel's table. */
function validated(raw: RawEnvelope): Message {
  validateMessage(raw);
  return raw;
}

function safeUsername(): string {
  try {
    return userInfo().username;
  } catch {
    return 'tsparallel';
  }
}

/**
 * Jupyter-style multipart framing: `[identities..., "<IDS|MSG>", signature, header,
 * parent_header, metadata, content, buffers...]`, signed with HMAC-SHA256 over the four JSON
 * frames. A `Session` builds, signs, parses and verifies messages for one process.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { userInfo } from 'node:os';
import { ProtocolError } from './errors';
import {
  isHeader,
  validateMessage,
  type ContentMap,
  type IMessage,
  type Message,
  type MsgType,
} from './messages';

/** Separates routing identities from the message frames. */
export const DELIMITER = Buffer.from('<IDS|MSG>');
const PROTOCOL_VERSION = '5.3';

/** What a new message answers, and how it is routed. */
export interface BuildOptions {
  parent?: IMessage['header'] | Record<string, never>;
  metadata?: Record<string, unknown>;
  buffers?: Buffer[];
  identities?: Buffer[];
}

/** One process's side of the protocol: builds, signs, parses and verifies messages. */
export class Session {
  readonly id = randomUUID();
  private readonly key: Buffer;
  private readonly username: string;

  /** `key` is the shared secret from the connection file; an empty key disables signing. */
  constructor(key: string) {
    this.key = Buffer.from(key, 'utf8');
    this.username = safeUsername();
  }

  /** A new message of `type`, not yet on the wire. */
  msg<T extends MsgType>(type: T, content: ContentMap[T], options: BuildOptions = {}): IMessage<T> {
    return {
      identities: options.identities ?? [],
      header: {
        msg_id: randomUUID(),
        msg_type: type,
        session: this.id,
        username: this.username,
        date: new Date().toISOString(),
        version: PROTOCOL_VERSION,
      },
      parent_header: options.parent ?? {},
      metadata: options.metadata ?? {},
      content,
      buffers: options.buffers ?? [],
    };
  }

  /** The frames for `msg`, signed. Buffers are passed through without copying. */
  serialize(msg: IMessage): Buffer[] {
    const parts = [msg.header, msg.parent_header, msg.metadata, msg.content].map((p) =>
      Buffer.from(JSON.stringify(p)),
    );
    return [...msg.identities, DELIMITER, Buffer.from(this.sign(parts)), ...parts, ...msg.buffers];
  }

  /**
   * Parses and verifies frames as received from a socket. Throws `ProtocolError` for missing
   * frames, a bad signature, a message `replays` has seen before, invalid JSON or content that
   * does not match its type.
   */
  deserialize(frames: Buffer[], replays?: ReplayGuard): Message {
    const d = frames.findIndex((f) => f.equals(DELIMITER));
    if (d < 0) throw new ProtocolError('message has no <IDS|MSG> delimiter');
    if (frames.length < d + 6) {
      throw new ProtocolError(
        `message has ${frames.length - d - 1} frames after the delimiter, needs 5`,
      );
    }
    const parts = frames.slice(d + 2, d + 6);
    if (this.key.length > 0) {
      const expected = Buffer.from(this.sign(parts));
      const given = frames[d + 1];
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        throw new ProtocolError('message signature is missing or wrong', 'signature');
      }
      if (replays && !replays.firstSight(given)) {
        throw new ProtocolError('message replayed: its signature was seen before', 'replay');
      }
    }
    let json: unknown[];
    try {
      json = parts.map((p) => JSON.parse(p.toString('utf8')) as unknown);
    } catch (e) {
      throw new ProtocolError('message frame is not valid JSON', 'malformed', { cause: e });
    }
    const msg = {
      identities: frames.slice(0, d),
      header: json[0],
      parent_header: json[1],
      metadata: json[2],
      content: json[3],
      buffers: frames.slice(d + 6),
    };
    try {
      validateMessage(msg);
    } catch (e) {
      if (e instanceof ProtocolError && isHeader(msg.header)) {
        e.refused = { identities: msg.identities, header: msg.header };
      }
      throw e;
    }
    return msg;
  }

  private sign(parts: Buffer[]): string {
    if (this.key.length === 0) return '';
    const hmac = createHmac('sha256', this.key);
    for (const p of parts) hmac.update(p);
    return hmac.digest('hex');
  }
}

/**
 * Remembers the signatures of recent messages, so that a captured message sent again is refused.
 * A signature covers the header with its unique `msg_id`, so a genuine message never repeats.
 * Memory is bounded by keeping two generations of `generation` signatures each, as Jupyter's
 * session keeps a bounded digest history; checking costs two set lookups.
 */
export class ReplayGuard {
  private current = new Set<string>();
  private previous = new Set<string>();

  constructor(private readonly generation = 65_536) {}

  /** False when `signature` was seen before; remembers it otherwise. */
  firstSight(signature: Buffer): boolean {
    const key = signature.toString('latin1');
    if (this.current.has(key) || this.previous.has(key)) return false;
    if (this.current.size >= this.generation) {
      this.previous = this.current;
      this.current = new Set();
    }
    this.current.add(key);
    return true;
  }
}

function safeUsername(): string {
  try {
    return userInfo().username;
  } catch {
    return 'tsparallel';
  }
}

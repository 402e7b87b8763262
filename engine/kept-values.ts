/**
 * Values that stay where they were made. A task's result of `KEEP_BYTES` or more stays on its
 * engine (the reply says only how large it is), until the hub says that no client holds its
 * `AsyncResult` and no task waiting for it needs it. A client that awaits it fetches it, and so
 * does an engine running a task that takes it as an argument: engine to engine, through the
 * keeping engine's direct socket (and shared memory on one host), never through the client.
 */
import * as zmq from 'zeromq';
import { Channel, connectTo, NO_DROPPING } from '../protocol/channel';
import { DependencyError, errorFromWire } from '../protocol/errors';
import type { DirectAddress, IMessage, ResultArg, ValueSource } from '../protocol/messages';
import { decodeValue } from '../protocol/serialize';
import type { Session } from '../protocol/session';
import type { SharedMemory } from '../protocol/shared-memory';

/**
 * Results this large stay on their engine. Smaller ones ride in the reply, where the hub keeps
 * them for `rc.result` and for the tasks that take them as arguments: sending one along costs
 * less than a millisecond, about a round trip to fetch it later.
 */
export const KEEP_BYTES = 1024 * 1024;

/** The values this engine keeps, by the id of the task that made each. */
export class KeptValues {
  private readonly values = new Map<string, Buffer[]>();
  /** Bytes kept now, where the heartbeat thread reads them too (see `keptBytes`). */
  readonly counter = new SharedArrayBuffer(8);
  private readonly total = new BigInt64Array(this.counter);

  /** Keeps `frames` when they are `least` bytes or more; their size then, else undefined. */
  keep(msgId: string, frames: Buffer[], least = KEEP_BYTES): number | undefined {
    const size = frames.reduce((n, f) => n + f.byteLength, 0);
    if (size < least) return undefined;
    // A task run here again replaces its value.
    this.release([msgId]);
    this.values.set(msgId, frames);
    Atomics.add(this.total, 0, BigInt(size));
    return size;
  }

  get(msgId: string): Buffer[] | undefined {
    return this.values.get(msgId);
  }

  /** Nobody needs these any more. */
  release(msgIds: readonly string[]): void {
    for (const id of msgIds) {
      const frames = this.values.get(id);
      if (!frames) continue;
      this.values.delete(id);
      Atomics.sub(this.total, 0, BigInt(frames.reduce((n, f) => n + f.byteLength, 0)));
    }
  }
}

/** The bytes a `KeptValues` keeps now, read through its `counter` from any thread. */
export function keptBytes(counter: SharedArrayBuffer): number {
  return Number(Atomics.load(new BigInt64Array(counter), 0));
}

/** A value being fetched from another engine. */
interface Fetch {
  msgId: string;
  engineId: number;
  address: string;
  resolve: (frames: Buffer[]) => void;
  reject: (e: Error) => void;
}

/** A socket to another engine's direct socket, and whether it ever connected. */
interface Peer {
  channel: Channel;
  connected: boolean;
}

/** How long a socket to another engine has to connect, by default. */
const CONNECT_PATIENCE = 10_000;

/**
 * This engine's side of fetching values other engines keep: one DEALER per engine asked, to
 * its direct socket.
 */
export class PeerValues {
  private readonly peers = new Map<string, Peer>();
  /** Fetches in flight, by their request's id. */
  private readonly waiting = new Map<string, Fetch>();

  constructor(
    private readonly session: Session,
    private readonly sharedMemory: SharedMemory,
    private readonly log: (line: string) => void,
    /** Milliseconds a socket to another engine has to connect before its fetches fail. */
    private readonly patience = CONNECT_PATIENCE,
  ) {}

  /** The frames of task `msgId`'s value, from engine `engineId` at `direct`. */
  fetch(msgId: string, engineId: number, direct: DirectAddress | undefined): Promise<Buffer[]> {
    if (!direct) {
      return Promise.reject(
        new DependencyError(
          `engine ${engineId} keeps the value of task ${msgId} but has no direct socket other ` +
            'engines can reach (it found no address toward the controller); start it where it has one',
        ),
      );
    }
    const request = this.session.msg(
      'value_request',
      { msg_id: msgId },
      { metadata: this.sharedMemory.readerMetadata(this.sharedMemory.host) },
    );
    const { address } = direct;
    return new Promise<Buffer[]>((resolve, reject) => {
      this.waiting.set(request.header.msg_id, { msgId, engineId, address, resolve, reject });
      this.peerAt(direct).channel.send(request);
    });
  }

  /** Engine `engineId` is gone: what was being fetched from it is lost. */
  lost(engineId: number, reason: string): void {
    for (const [id, f] of this.waiting) {
      if (f.engineId !== engineId) continue;
      this.waiting.delete(id);
      f.reject(
        new DependencyError(
          `the value of task ${f.msgId} is lost: engine ${engineId}, which kept it, is gone (${reason})`,
        ),
      );
    }
  }

  close(): void {
    for (const p of this.peers.values()) p.channel.close();
    this.peers.clear();
  }

  /** Fails what waits on `address`, to which this engine found no way. */
  private unreachable(address: string): void {
    const peer = this.peers.get(address);
    if (!peer || peer.connected) return;
    peer.channel.close();
    this.peers.delete(address);
    for (const [id, f] of this.waiting) {
      if (f.address !== address) continue;
      this.waiting.delete(id);
      f.reject(
        new DependencyError(
          `engine ${f.engineId} keeps the value of task ${f.msgId}, but this engine could not ` +
            `connect to its direct socket at ${address} within ${this.patience} ms: engines ` +
            'pass kept values to each other there, so each must reach the others (a firewall or ' +
            'another network between them?)',
        ),
      );
    }
  }

  private peerAt(direct: DirectAddress): Peer {
    const known = this.peers.get(direct.address);
    if (known) return known;
    const curve =
      direct.curve_serverkey === undefined
        ? {}
        : (({ publicKey, secretKey }) => ({
            curveServerKey: direct.curve_serverkey,
            curvePublicKey: publicKey,
            curveSecretKey: secretKey,
          }))(zmq.curveKeyPair());
    const socket = new zmq.Dealer({ ...NO_DROPPING, linger: 0, ...curve });
    const channel = new Channel(socket, this.session, (e) =>
      this.log(`dropped a message from ${direct.address}: ${e.message}`),
    );
    const peer: Peer = { channel, connected: false };
    socket.events.on('handshake', () => (peer.connected = true));
    connectTo(socket, direct.address);
    this.peers.set(direct.address, peer);
    setTimeout(() => this.unreachable(direct.address), this.patience).unref();
    void this.receive(channel);
    return peer;
  }

  private async receive(channel: Channel): Promise<void> {
    for await (const reply of channel.messages()) {
      const id = String(reply.parent_header.msg_id);
      const f = this.waiting.get(id);
      if (!f || reply.header.msg_type !== 'value_reply') {
        this.sharedMemory.release(reply.metadata);
        continue;
      }
      this.waiting.delete(id);
      const { content, buffers, metadata } = reply as IMessage<'value_reply'>;
      if (content.status === 'error') {
        const cause = errorFromWire(content, f.engineId);
        f.reject(
          new DependencyError(
            `the value of task ${f.msgId} could not be fetched from engine ${f.engineId}: ${cause.message}`,
            { cause },
          ),
        );
        continue;
      }
      this.sharedMemory
        .read(buffers, metadata)
        .then(f.resolve, f.reject)
        .finally(() => this.sharedMemory.release(metadata));
    }
  }
}

/**
 * The values of the tasks an apply request takes as arguments (`content.results`), each as the
 * hub said where it is (`content.sources`): in the request's last buffers, kept here, or kept on
 * another engine. Returns the request's own argument frames and those values by task id.
 */
export async function gatherResults(
  request: IMessage<'apply_request'>,
  kept: KeptValues,
  peers: PeerValues,
): Promise<{ argFrames: Buffer[]; values: Map<string, unknown> }> {
  const sources = Object.entries(request.content.sources ?? {});
  const inlineCount = sources.reduce((n, [, s]) => n + ('inline' in s ? s.inline : 0), 0);
  const buffers = request.buffers;
  const argFrames = buffers.slice(0, buffers.length - inlineCount);
  let at = argFrames.length;
  const frames = sources.map(([msgId, s]: [string, ValueSource]) => {
    if ('inline' in s) return buffers.slice(at, (at += s.inline));
    // A copy of one kept here, so that a task changing its argument leaves the kept value as is.
    return kept.get(msgId)?.map((f) => Buffer.from(f)) ?? peers.fetch(msgId, s.kept_on, s.direct);
  });
  const values = new Map<string, unknown>();
  const gathered = await Promise.all(frames);
  sources.forEach(([msgId], i) => values.set(msgId, decodeValue(gathered[i])));
  return { argFrames, values };
}

/** Puts each result argument's value in its place among `args` (see `ResultArg`). */
export function fillResults(
  args: unknown[],
  results: readonly ResultArg[],
  values: Map<string, unknown>,
): void {
  for (const { path, msg_ids, combine } of results) {
    const parts = msg_ids.map((id) => {
      if (!values.has(id)) throw new DependencyError(`the hub sent no value for task ${id}`);
      return values.get(id);
    });
    const value =
      combine === 'one' ? parts[0] : combine === 'array' ? parts : (parts as unknown[][]).flat();
    if (path.length === 1) args[path[0]] = value;
    else (args[path[0]] as unknown[])[path[1]] = value;
  }
}

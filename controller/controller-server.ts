/**
 * The controller process's sockets: binds them on ephemeral ports, writes the connection files,
 * feeds verified messages to the hub and carries out its sends.
 */
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import * as zmq from 'zeromq';
import { Channel, NO_DROPPING, notifyDisconnects } from '../protocol/channel';
import { ProtocolError } from '../protocol/errors';
import {
  connectionFilePath,
  curveKeysPath,
  newCurveServerKeys,
  newKey,
  readConnectionFile,
  writeConnectionFile,
  type ClientConnectionInfo,
  type CurveServerKeys,
  type EngineConnectionInfo,
} from '../protocol/connection';
import type { Message } from '../protocol/messages';
import { Session, type Frame } from '../protocol/session';
import { resolveOptions } from '../options/schema';
import { Hub } from './hub';
import { controllerOptions, sqlitePath, type ControllerOptions } from './options';
import { SqliteTaskRecords } from './sqlite-task-records';
import { MemoryTaskRecords, type TaskRecordStore } from './task-records';

const defaultLog = (line: string): void => void process.stderr.write(`[controller] ${line}\n`);

/** Thrown when the controller cannot do what it is asked (restore from unreadable files). */
export class ControllerConfigError extends Error {
  override name = 'ControllerConfigError';
}

/** Opens the task store the `db` option names, making the SQLite file's folder if need be. */
async function openStore(options: ControllerOptions): Promise<TaskRecordStore> {
  const path = sqlitePath(options.db, options);
  if (path === null) return new MemoryTaskRecords(options.recordLimit, options.recordBytes);
  await fs.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  return new SqliteTaskRecords(path);
}

/**
 * The client socket's inbound queue. A client may submit tens of thousands of tasks in one burst,
 * faster than the hub reads them; unbounded, they all wait in libzmq's queue, one allocation per
 * frame, and the allocator keeps the memory after they are read. A full inbound queue drops
 * nothing: libzmq stops reading that client's connection, so the rest waits in its own send
 * queue until the hub has read these.
 */
const CLIENT_INBOUND = { receiveHighWaterMark: 1000 };

/**
 * The client socket's watch on its clients, so that one that dies without closing (kill -9, a
 * notebook kernel that crashed) does not leave the values it held on the engines for good. The
 * ROUTER notifies each client connection that closes; a process that ends has its connection
 * closed by its kernel at once. For a host that stops answering, TCP keepalive probes an idle
 * connection (`deadline` / 3 after its last traffic, then twice more `deadline` / 3 apart) and
 * `TCP_USER_TIMEOUT` bounds how long sent data may go unacknowledged: both are answered by the
 * client's kernel, so a client busy in synchronous code for hours, or holding a large message
 * half sent, is never taken for gone, as it would be by a ping from its event loop or by
 * ZeroMQ's own heartbeats (which a message taking longer than their timeout to arrive cuts off).
 * Its libzmq reads whatever comes (no high-water mark), so its receive window closes only when
 * the whole process is stopped (SIGSTOP): one stopped past the deadline while the hub has more
 * than the socket buffers to send it counts as gone (Linux's `TCP_USER_TIMEOUT` counts a closed
 * window), the price of noticing a vanished host that the hub was sending to.
 */
function watchingClients(router: zmq.Router, deadline: number, log: (line: string) => void): void {
  const probe = Math.max(1, Math.round(deadline / 3000));
  Object.assign(router, {
    tcpKeepalive: 1,
    tcpKeepaliveIdle: probe,
    tcpKeepaliveInterval: probe,
    tcpKeepaliveCount: 2,
    tcpMaxRetransmitTimeout: deadline,
  });
  try {
    notifyDisconnects(router);
  } catch (e) {
    log(`clients that die without closing keep their values on engines: ${(e as Error).message}`);
  }
}

/** The controller process: binds the hub's sockets and serves until shut down. */
export class ControllerServer {
  readonly hub: Hub;
  private readonly client: Channel;
  private readonly iopub: Channel;
  private readonly engine: Channel;
  private readonly heartbeat: Channel;
  private readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  readonly files: { client: string; engine: string };

  private constructor(
    private readonly options: ControllerOptions,
    session: Session,
    curve: CurveServerKeys | undefined,
    store: TaskRecordStore,
  ) {
    const dropped =
      (name: 'client' | 'iopub' | 'engine' | 'heartbeat') =>
      (e: Error): void => {
        const n = this[name].dropped;
        options.log(
          `dropped a message on the ${name} socket (${n.replay} replays, ${n.signature} bad ` +
            `signatures, ${n.malformed} malformed so far): ${e.message}`,
        );
      };
    const refuse = (e: Error): void => {
      dropped('client')(e);
      if (e instanceof ProtocolError && e.refused) {
        this.hub.refuse(e.refused.identities, e.refused.header, e.message);
      }
    };
    const security = curve ? { curveServer: true, curveSecretKey: curve.curve_secretkey } : {};
    const router = (options = {}): zmq.Router =>
      new zmq.Router({ ...NO_DROPPING, ...security, ...options });
    const batch = { batch: true, holdFirst: true };
    const clientRouter = router(CLIENT_INBOUND);
    watchingClients(clientRouter, options.clientDeadline, options.log);
    this.client = new Channel(clientRouter, session, refuse, {
      ...batch,
      peerGone: (identity) => {
        try {
          this.hub.clientGone(identity);
        } catch (e) {
          // A bug here must not stop the receive loop.
          options.log(`error letting a gone client's values go: ${(e as Error).stack}`);
        }
      },
    });
    this.iopub = new Channel(new zmq.Publisher(security), session, dropped('iopub'), batch);
    this.engine = new Channel(router(), session, dropped('engine'), batch);
    // Answers to the engines of one process that share a link leave together (see `batch`).
    this.heartbeat = new Channel(router(), session, dropped('heartbeat'), batch);
    this.hub = new Hub(session, this.outlet(), options, { records: store });
    this.files = {
      client: connectionFilePath('client', options),
      engine: connectionFilePath('engine', options),
    };
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  /**
   * Binds, writes the connection files and starts serving. With `restore`, binds where the
   * existing files say and takes over the database's unfinished tasks instead.
   */
  static async start(partial: Partial<ControllerOptions> = {}): Promise<ControllerServer> {
    const { log = defaultLog, ...given } = partial;
    const options = { ...resolveOptions(controllerOptions, given), log };
    const where = { profile: options.profile, clusterId: options.clusterId };
    const previous = options.restore ? await ControllerServer.previous(where) : undefined;
    const key = previous?.client.key ?? newKey();
    const curve = previous?.curve ?? (options.curve ? newCurveServerKeys() : undefined);
    const store = await openStore(options);
    const server = new ControllerServer(options, new Session(key), curve, store);
    const addresses = await server.bind(
      previous && [
        previous.client.client,
        previous.client.iopub,
        previous.engine.engine,
        previous.engine.heartbeat,
      ],
    );
    const common = {
      key,
      signature_scheme: 'hmac-sha256' as const,
      cluster_id: options.clusterId,
      ...(curve ? { curve_serverkey: curve.curve_publickey } : {}),
    };
    if (curve) await writeConnectionFile(curveKeysPath(where), curve);
    const clientInfo: ClientConnectionInfo = {
      ...common,
      client: addresses[0],
      iopub: addresses[1],
    };
    const engineInfo: EngineConnectionInfo = {
      ...common,
      engine: addresses[2],
      heartbeat: addresses[3],
    };
    await writeConnectionFile(server.files.engine, engineInfo);
    await writeConnectionFile(server.files.client, clientInfo);
    if (options.restore) server.hub.restore();
    server.serve();
    options.log(`listening; connection files in ${server.files.client} and ${server.files.engine}`);
    return server;
  }

  /** The connection files (and CURVE keys) of the controller a restored one takes over from. */
  private static async previous(where: { profile: string; clusterId: string }): Promise<{
    client: ClientConnectionInfo;
    engine: EngineConnectionInfo;
    curve: CurveServerKeys | undefined;
  }> {
    const client = await readConnectionFile(connectionFilePath('client', where), 'client');
    const engine = await readConnectionFile(connectionFilePath('engine', where), 'engine');
    let curve: CurveServerKeys | undefined;
    if (client.curve_serverkey !== undefined) {
      try {
        curve = JSON.parse(await fs.readFile(curveKeysPath(where), 'utf8')) as CurveServerKeys;
      } catch (e) {
        throw new ControllerConfigError(
          `cannot restore: the connection files name a CURVE key but ${curveKeysPath(where)} is unreadable`,
          { cause: e },
        );
      }
    }
    return { client, engine, curve };
  }

  /** Resolves once the controller has stopped. */
  get done(): Promise<void> {
    return this.closed;
  }

  async close(): Promise<void> {
    this.hub.stop();
    for (const c of [this.client, this.iopub, this.engine, this.heartbeat]) c.close();
    await Promise.all(Object.values(this.files).map((f) => fs.rm(f, { force: true })));
    this.resolveClosed();
  }

  /** Binds each socket to `at` (a restored controller's addresses), or an ephemeral port. */
  private async bind(at?: string[]): Promise<string[]> {
    const sockets = [this.client, this.iopub, this.engine, this.heartbeat].map((c) => c.socket);
    const addresses: string[] = [];
    for (const [i, s] of sockets.entries()) {
      await s.bind(at?.[i] ?? `tcp://${this.options.ip}:*`);
      addresses.push(s.lastEndpoint as string);
    }
    return addresses;
  }

  private serve(): void {
    this.hub.start();
    const loop = (channel: Channel, handle: (m: Message, wire: Frame[]) => void): Promise<void> =>
      channel.serve(({ msg, wire }) => {
        try {
          handle(msg, wire);
        } catch (e) {
          // A bug in one handler must not stop the receive loop.
          this.options.log(`error handling ${msg.header.msg_type}: ${(e as Error).stack}`);
        }
      });
    void loop(this.client, (m, wire) => this.hub.handleClient(m, wire));
    void loop(this.engine, (m, wire) => this.hub.handleEngine(m, wire));
    void loop(this.heartbeat, (m) => this.hub.handleHeartbeat(m));
  }

  private outlet(): ConstructorParameters<typeof Hub>[1] {
    return {
      toClient: (msg, wire) => this.client.send(msg, wire),
      toEngine: (msg, wire) => this.engine.send(msg, wire),
      toEngineControl: (msg) => this.heartbeat.send(msg),
      publish: (topic, msg) => this.iopub.send({ ...msg, identities: [Buffer.from(topic)] }),
      shutdown: () => {
        // Let the shutdown replies leave before the sockets close.
        setTimeout(() => void this.close(), 100);
      },
    };
  }
}

/**
 * The controller process's sockets: binds them on ephemeral ports, writes the connection files,
 * feeds verified messages to the hub and carries out its sends.
 */
import { promises as fs } from 'node:fs';
import * as zmq from 'zeromq';
import { Channel, NO_DROPPING } from '../protocol/channel';
import { ProtocolError } from '../protocol/errors';
import {
  connectionFilePath,
  newKey,
  writeConnectionFile,
  type ClientConnectionInfo,
  type EngineConnectionInfo,
} from '../protocol/connection';
import type { Message } from '../protocol/messages';
import { Session } from '../protocol/session';
import { Hub, type HubOptions } from './hub';
import { DEFAULT_RECORD_BYTE_LIMIT, DEFAULT_RECORD_LIMIT } from './task-records';

/** Everything `tsparallel controller` can be told. */
export interface ControllerOptions extends HubOptions {
  /** Address to listen on. */
  ip: string;
  profile: string;
  clusterId: string;
  log: (line: string) => void;
}

/** The defaults of `tsparallel controller` and of clusters. */
export const controllerDefaults: ControllerOptions = {
  ip: '127.0.0.1',
  scheme: 'leastload',
  hwm: 1,
  recordLimit: DEFAULT_RECORD_LIMIT,
  recordBytes: DEFAULT_RECORD_BYTE_LIMIT,
  heartbeatPeriod: 1000,
  heartbeatDeadline: 3000,
  profile: 'default',
  clusterId: '',
  log: (line) => process.stderr.write(`[controller] ${line}\n`),
};

/** The deadline when none is given: the default, or three missed beats if periods are long. */
export function defaultDeadline(heartbeatPeriod: number): number {
  return Math.max(controllerDefaults.heartbeatDeadline, 3 * heartbeatPeriod);
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
  ) {
    const dropped = (e: Error): void => options.log(`dropped a message: ${e.message}`);
    const refuse = (e: Error): void => {
      dropped(e);
      if (e instanceof ProtocolError && e.refused) {
        this.hub.refuse(e.refused.identities, e.refused.header, e.message);
      }
    };
    this.client = new Channel(new zmq.Router(NO_DROPPING), session, refuse);
    this.iopub = new Channel(new zmq.Publisher(), session, dropped);
    this.engine = new Channel(new zmq.Router(NO_DROPPING), session, dropped);
    this.heartbeat = new Channel(new zmq.Router(NO_DROPPING), session, dropped);
    this.hub = new Hub(session, this.outlet(), options);
    this.files = {
      client: connectionFilePath('client', options),
      engine: connectionFilePath('engine', options),
    };
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  /** Binds, writes the connection files and starts serving. */
  static async start(partial: Partial<ControllerOptions> = {}): Promise<ControllerServer> {
    const options = { ...controllerDefaults, ...partial };
    const key = newKey();
    const server = new ControllerServer(options, new Session(key));
    const addresses = await server.bind();
    const common = { key, signature_scheme: 'hmac-sha256' as const, cluster_id: options.clusterId };
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
    server.serve();
    options.log(`listening; connection files in ${server.files.client} and ${server.files.engine}`);
    return server;
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

  private async bind(): Promise<string[]> {
    const sockets = [this.client, this.iopub, this.engine, this.heartbeat].map((c) => c.socket);
    const addresses: string[] = [];
    for (const s of sockets) {
      await s.bind(`tcp://${this.options.ip}:*`);
      addresses.push(s.lastEndpoint as string);
    }
    return addresses;
  }

  private serve(): void {
    this.hub.start();
    const loop = async (channel: Channel, handle: (m: Message) => void): Promise<void> => {
      for await (const msg of channel.messages()) {
        try {
          handle(msg);
        } catch (e) {
          // A bug in one handler must not stop the receive loop.
          this.options.log(`error handling ${msg.header.msg_type}: ${(e as Error).stack}`);
        }
      }
    };
    void loop(this.client, (m) => this.hub.handleClient(m));
    void loop(this.engine, (m) => this.hub.handleEngine(m));
    void loop(this.heartbeat, (m) => this.hub.handleHeartbeat(m));
  }

  private outlet(): ConstructorParameters<typeof Hub>[1] {
    return {
      toClient: (msg) => this.client.send(msg),
      toEngine: (msg) => this.engine.send(msg),
      toEngineControl: (msg) => this.heartbeat.send(msg),
      publish: (topic, msg) => this.iopub.send({ ...msg, identities: [Buffer.from(topic)] }),
      shutdown: () => {
        // Let the shutdown replies leave before the sockets close.
        setTimeout(() => void this.close(), 100);
      },
    };
  }
}

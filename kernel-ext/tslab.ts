/**
 * The one module that touches tslab (pinned at 1.0.22), so that a tslab upgrade changes this
 * file only. tslab's `ZmqServer` owns the Jupyter sockets and answers kernel_info, is_complete,
 * inspect, complete and shutdown with its TypeScript language service; this subclass takes
 * execution, comms and interrupts in front of it and gives them to the kernel's `KernelFront`,
 * which runs magics itself and hands TypeScript cells back to tslab through `Tslab.execute`.
 */
import { createConverter, type Converter } from 'tslab/dist/converter';
import { createExecutor, type ConverterSet } from 'tslab/dist/executor';
import { JupyterHandlerImpl, ZmqServer } from 'tslab/dist/jupyter';
import type * as zmq from 'zeromq';
import { Channel } from '../protocol/channel';
import { Session, type Envelope } from '../protocol/session';
import { parseKernelRequest, type KernelRequest } from './kernel-messages';

/** Where a cell's output goes: IOPub messages with the request as their parent. */
export interface Outlet {
  stream(name: 'stdout' | 'stderr', text: string): void;
  /** Any IOPub message: `display_data`, `update_display_data`, `execute_result`, `error`, ... */
  publish(type: string, content: object): void;
}

/** How the front answers one request. */
export interface Exchange extends Outlet {
  /** Sends the request's reply on the socket it came from. */
  reply(type: string, content: object): void;
}

/** What tslab gives the kernel. */
export interface Tslab {
  /**
   * Runs a TypeScript cell as tslab does: type-checked, in the notebook's namespace, output to
   * `out`. Resolves true when it ran without error (errors are printed to `out`'s stderr).
   */
  execute(code: string, out: Outlet): Promise<boolean>;
  /** Interrupts an awaiting TypeScript cell (a busy loop is broken by SIGINT itself). */
  interrupt(): void;
}

/** The kernel's side: handles the requests tslab does not see, and the kernel's end. */
export interface KernelFront {
  handle(request: KernelRequest, exchange: Exchange): Promise<void>;
  /** The kernel got SIGINT. */
  interrupt(): void;
  /** The kernel is shutting down: release what it holds (clusters it started). */
  close(): Promise<void>;
}

/** tslab's converter pair, built on first use as tslab's own kernel does. */
class Converters implements ConverterSet {
  private converters: { node?: Converter; browser?: Converter } = {};
  get node(): Converter {
    return (this.converters.node ??= createConverter({ isJS: false, isBrowser: false }));
  }
  get browser(): Converter {
    return (this.converters.browser ??= createConverter({ isJS: false, isBrowser: true }));
  }
  close(): void {
    this.converters.node?.close();
    this.converters.browser?.close();
  }
}

/** tslab's server with execution, comms and interrupts taken over by the front. */
class KernelServer extends ZmqServer {
  private session: Session | undefined;
  private iopubChannel: Channel | undefined;

  constructor(
    handler: JupyterHandlerImpl,
    connectionFile: string,
    private readonly front: KernelFront,
    private readonly version: string,
  ) {
    super(handler, connectionFile);
  }

  override async init(): Promise<void> {
    await super.init();
    this.session = new Session(this.connInfo.key);
    this.iopubChannel = new Channel(this.iopub, this.session);
  }

  override handleKernelInfo(sock: zmq.Router, msg: Parameters<ZmqServer['handleKernelInfo']>[1]): void {
    const reply = msg.createReply();
    reply.header.msg_type = 'kernel_info_reply';
    reply.content = {
      ...this.handler.handleKernel(),
      implementation: 'tsparallel',
      implementation_version: this.version,
      banner: `TypeScript with tsparallel ${this.version} (tslab underneath); %lsmagic lists the magics`,
      status: 'ok',
    };
    reply.signAndSend(this.connInfo.key, sock);
  }

  override async handleShellMessage(sock: zmq.Router, ...frames: Buffer[]): Promise<void> {
    const session = this.session as Session;
    let request: KernelRequest | undefined;
    try {
      request = parseKernelRequest(session.parse(frames));
    } catch (e) {
      process.emitWarning(`tsparallel kernel: dropped a message: ${(e as Error).message}`);
      return;
    }
    if (request === undefined) return super.handleShellMessage(sock, ...frames);
    const socket = new Channel(sock, session);
    const { identities, header: parent } = request.envelope;
    const send = (channel: Channel, identities: Buffer[], type: string, content: object): void =>
      channel.send({
        identities,
        header: session.header(type),
        parent_header: parent,
        metadata: {},
        content,
        buffers: [],
      } satisfies Envelope);
    const iopub = this.iopubChannel as Channel;
    const exchange: Exchange = {
      publish: (type, content) => send(iopub, [], type, content),
      stream: (name, text) => send(iopub, [], 'stream', { name, text }),
      reply: (type, content) => send(socket, identities, type, content),
    };
    exchange.publish('status', { execution_state: 'busy' });
    try {
      await this.front.handle(request, exchange);
    } finally {
      exchange.publish('status', { execution_state: 'idle' });
    }
  }

  override close(): void {
    void this.front.close().finally(() => super.close());
  }
}

/**
 * Starts the kernel on `connectionFile`: tslab's executor in this process's working directory,
 * its server with the front in charge of execution, and SIGINT wired to both.
 */
export async function startKernel(
  connectionFile: string,
  version: string,
  makeFront: (tslab: Tslab) => KernelFront,
): Promise<void> {
  const converters = new Converters();
  const executor = createExecutor(process.cwd(), converters, {
    log: (...args: unknown[]) => console.log(...args),
    error: (...args: unknown[]) => console.error(...args),
  });
  const handler = new JupyterHandlerImpl(executor, false);
  const tslab: Tslab = {
    async execute(code, out) {
      const reply = await handler.handleExecute(
        { code, silent: false, store_history: true, user_expressions: {} },
        (name, text) => out.stream(name === 'stderr' ? 'stderr' : 'stdout', text),
        (data, update) => out.publish(update ? 'update_display_data' : 'display_data', data),
      );
      return reply.status === 'ok';
    },
    interrupt: () => executor.interrupt(),
  };
  const front = makeFront(tslab);
  const server = new KernelServer(handler, connectionFile, front, version);
  process.on('SIGINT', () => {
    executor.interrupt();
    front.interrupt();
  });
  await server.init();
}

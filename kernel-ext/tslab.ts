/**
 * The one module that touches tslab (pinned at 1.0.22), so that a tslab upgrade changes this
 * file only. tslab's `ZmqServer` owns the Jupyter sockets and answers kernel_info, is_complete,
 * inspect, complete and shutdown with its TypeScript language service; this subclass takes
 * execution, comms and interrupts in front of it and gives them to the kernel's `KernelFront`,
 * which runs magics itself and hands TypeScript cells back to tslab through `Tslab.execute`.
 */
import { createConverter, type Converter } from 'tslab/dist/converter';
import { createExecutor, type ConverterSet } from 'tslab/dist/executor';
import * as jupyter from 'tslab/dist/jupyter';
import { JupyterHandlerImpl, ZmqServer } from 'tslab/dist/jupyter';
import { readFileSync } from 'node:fs';
import { format } from 'node:util';
import type * as zmq from 'zeromq';
import { holdSigint } from '../engine/sigint-thread';
import { Channel } from '../protocol/channel';
import { ReplayGuard, Session, type Envelope } from '../protocol/session';
import { KERNEL_IMPLEMENTATION } from './comm-messages';
import {
  parseKernelRequest,
  type DisplayContent,
  type ErrorContent,
  type IopubContent,
  type KernelRequest,
  type ReplyContent,
} from './kernel-messages';

/** The `typescript` package the engines' cell transform loads (tslab bundles older ones). */
const ENGINE_TYPESCRIPT_VERSION = (
  JSON.parse(readFileSync(require.resolve('typescript/package.json'), 'utf8')) as {
    version: string;
  }
).version;

/** `kernel_info_reply.help_links`: JupyterLab lists them in its Help menu. */
const HELP_LINKS = [
  { text: 'TypeScript Handbook', url: 'https://www.typescriptlang.org/docs/handbook/' },
  { text: 'Node.js API', url: 'https://nodejs.org/docs/latest-v20.x/api/' },
];

/** Where a cell's output goes: IOPub messages with the request as their parent. */
export interface Outlet {
  stream(name: 'stdout' | 'stderr', text: string): void;
  publish<T extends keyof IopubContent>(type: T, content: IopubContent[T]): void;
}

/** How the front answers one request. */
export interface Exchange extends Outlet {
  /** Sends the request's reply on the socket it came from. */
  reply<T extends keyof ReplyContent>(type: T, content: ReplyContent[T]): void;
}

/** What a cell that failed reports: the `error` message's content. */
export type CellError = ErrorContent;

/** What tslab gives the kernel. */
export interface Tslab {
  /**
   * Runs a TypeScript cell as tslab does: type-checked, in the notebook's namespace, output to
   * `out`, its last expression's value as the `execute_result` numbered `count`. Resolves with
   * the type errors or the exception when it failed.
   */
  execute(code: string, out: Outlet, count: number): Promise<CellError | undefined>;
  /**
   * Interrupts an awaiting TypeScript cell. A busy loop is broken by SIGINT itself, which then
   * comes to `KernelFront.interrupt` as well.
   */
  interrupt(): void;
}

/** The kernel's side: handles the requests tslab does not see, and the kernel's end. */
export interface KernelFront {
  handle(request: KernelRequest, exchange: Exchange): Promise<void>;
  /**
   * The kernel got SIGINT (or an interrupt_request), also one that broke a cell's synchronous
   * code: stop what the current cell started and waits for.
   */
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
  private channels:
    | {
        session: Session;
        replays: ReplayGuard;
        iopub: Channel;
        replies: Map<zmq.Router, Channel>;
      }
    | undefined;

  constructor(
    handler: JupyterHandlerImpl,
    connectionFile: string,
    private readonly front: KernelFront,
    private readonly version: string,
  ) {
    super(handler, connectionFile);
  }

  /** The project's signing and send queues on tslab's sockets, made once they exist. */
  private get wire(): NonNullable<KernelServer['channels']> {
    if (!this.channels) {
      const session = new Session(this.connInfo.key);
      this.channels = {
        session,
        replays: new ReplayGuard(),
        iopub: new Channel(this.iopub, session),
        replies: new Map([this.shell, this.control].map((s) => [s, new Channel(s, session)])),
      };
    }
    return this.channels;
  }

  override handleKernelInfo(
    sock: zmq.Router,
    msg: Parameters<ZmqServer['handleKernelInfo']>[1],
  ): void {
    const reply = msg.createReply();
    reply.header.msg_type = 'kernel_info_reply';
    const info = this.handler.handleKernel();
    reply.content = {
      ...info,
      // The TypeScript the engines compile cells with (tslab names its own), that there is no
      // debugger (the protocol's field for it), and where to read about the language.
      language_info: { ...info.language_info, version: ENGINE_TYPESCRIPT_VERSION },
      debugger: false,
      help_links: HELP_LINKS,
      implementation: KERNEL_IMPLEMENTATION,
      implementation_version: this.version,
      banner: `TypeScript with tsparallel ${this.version} (tslab underneath); %lsmagic lists the magics`,
      status: 'ok',
    };
    reply.signAndSend(this.connInfo.key, sock);
  }

  override async handleShellMessage(sock: zmq.Router, ...frames: Buffer[]): Promise<void> {
    const { session, replays, iopub, replies } = this.wire;
    let request: KernelRequest | undefined;
    try {
      // A replayed message is dropped here, before tslab could see it too.
      request = session.receive(frames, replays, parseKernelRequest).msg;
    } catch (e) {
      process.emitWarning(`tsparallel kernel: dropped a message: ${(e as Error).message}`);
      return;
    }
    if (request === undefined) return super.handleShellMessage(sock, ...frames);
    const socket = replies.get(sock) as Channel;
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

/** A `write` for `process.stdout`/`stderr` that sends what user code prints to the cell. */
function writeTo(out: Outlet, name: 'stdout' | 'stderr'): typeof process.stdout.write {
  const decoder = new TextDecoder();
  return ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    out.stream(name, typeof chunk === 'string' ? chunk : decoder.decode(chunk));
    const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    callback?.();
    return true;
  }) as typeof process.stdout.write;
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
  // tslab's executor reports a cell's value with `log` and its failure with `error`; these turn
  // them into an execute_result and one error for the cell that runs now.
  let cell: { out: Outlet; count: number; diagnostics: string[]; error?: CellError } | undefined;
  const executor = createExecutor(process.cwd(), converters, {
    log: (...args: unknown[]) =>
      cell?.out.publish('execute_result', {
        execution_count: cell.count,
        data: { 'text/plain': format(...args) },
        metadata: {},
      }),
    error: (...args: unknown[]) => {
      const [e] = args;
      if (!cell) return;
      if (e instanceof Error) {
        // SIGINT that broke the cell's synchronous code never reaches the SIGINT listener.
        if ((e as NodeJS.ErrnoException).code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED') {
          front.interrupt();
        }
        const stack = (e.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l));
        cell.error = {
          ename: e.name,
          evalue: e.message,
          traceback: [`${e.name}: ${e.message}`, ...stack],
        };
      } else if (args.length === 1) {
        cell.error = { ename: 'Error', evalue: String(e), traceback: [`Uncaught ${format(e)}`] };
      } else {
        cell.diagnostics.push(format(...args));
      }
    },
  });
  const handler = new JupyterHandlerImpl(executor, false);
  // One cell at a time, so that `cell` is the one whose output the executor reports.
  let queue: Promise<unknown> = Promise.resolve();
  const run = async (code: string, out: Outlet, count: number): Promise<CellError | undefined> => {
    cell = { out, count, diagnostics: [] };
    const mine = cell;
    // What tslab's handler does around a cell, without its habit of cancelling the cells that
    // arrive within 200 ms of a failed one: the kernel's front queues cells itself.
    process.stdout.write = writeTo(out, 'stdout');
    process.stderr.write = writeTo(out, 'stderr');
    Object.assign(jupyter, {
      lastWriteDisplayData: (data: DisplayContent, update: boolean) =>
        out.publish(update ? 'update_display_data' : 'display_data', data),
    });
    if (await executor.execute(code)) return undefined;
    if (mine.error) return mine.error;
    const n = mine.diagnostics.length;
    return {
      ename: 'TypeScriptError',
      evalue:
        n > 0
          ? `${n} type error${n === 1 ? '' : 's'}: ${mine.diagnostics[0]}`
          : 'the cell did not run',
      traceback: mine.diagnostics,
    };
  };
  const tslab: Tslab = {
    execute(code, out, count) {
      const result = queue.then(() => run(code, out, count));
      queue = result.catch(() => undefined);
      return result;
    },
    interrupt: () => executor.interrupt(),
  };
  const front = makeFront(tslab);
  const server = new KernelServer(handler, connectionFile, front, version);
  // SIGINT outside a cell's synchronous code goes to a thread holding Node's watchdog: with a
  // listener here instead, each `breakOnSigint` run of tslab's removes and restores it, and a
  // signal that comes while it does is lost, leaving the cell awaiting its engines.
  const onSigint = (): void => front.interrupt();
  process.on('SIGINT', onSigint);
  holdSigint(onSigint);
  await server.init();
}

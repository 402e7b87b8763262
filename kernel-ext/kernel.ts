/**
 * The kernel's front layer: it takes each cell before tslab does, runs magic lines and cells
 * itself (the rows of `magics.ts`), hands TypeScript to tslab unchanged, and serves the lab
 * panel's comm. Magics and panel commands act on the one `SharedCluster`.
 */
import { resultAwaited } from '../client/async-result';
import { taskSubmitted, type Client } from '../client/client';
import type { Cluster } from '../cluster/cluster';
import { launcherNames, type LauncherName } from '../cluster/launchers';
import {
  COMM_TARGET,
  parsePanelMessage,
  type KernelMessage,
  type KernelState,
  type PanelCommand,
  type TaskOutputState,
} from './comm-messages';
import type { KernelRequest, RequestContent } from './kernel-messages';
import { checkTargets, DEFAULT_PX_CONFIG, type PxConfig, type PxOptions } from './magic-options';
import { parseMagic, runMagic, splitCell, type Magic, type MagicKernel } from './magics';
import {
  installNotebookHook,
  NOTEBOOK_HOOK_KEY,
  PACKAGE_TYPES,
  type NotebookHook,
} from './notebook';
import { CellTasks } from './cell-tasks';
import { PanelModel, usageMoves } from './panel';
import { ProgressBars } from './progress';
import { errorContent, type Failure, type PxRun } from './px';
import { SharedCluster } from './shared-cluster';
import type { CellError, Exchange, KernelFront, Outlet, Tslab } from './tslab';

/** Output nobody sees: silent requests, and bindings made for the panel. */
const QUIET: Outlet = { stream: () => {}, publish: () => {} };

/** How long state pushes to the panel are gathered into one message. */
const STATE_COALESCE_MS = 100;

/**
 * How often a panel gets a fresh state while engines work or the panel is in use: engines' CPU
 * and memory move without an event. An idle cluster nobody looks at is not polled.
 */
const USAGE_REFRESH_MS = 2000;

/** How long after the panel's last message it counts as in use. */
const PANEL_IN_USE_MS = 10_000;

/** See the file's comment. */
export class NotebookKernel implements KernelFront, NotebookHook, MagicKernel {
  private readonly settings: PxConfig = { ...DEFAULT_PX_CONFIG };
  autopx = false;
  lastPx: { run: PxRun; options: PxOptions } | undefined;
  private executionCount = 0;
  /** The cell running now, or the last one; it never rejects. */
  private cells: Promise<unknown> = Promise.resolve();
  private running: AbortController | undefined;
  /** Values on their way into notebook variables (see `bind`). */
  private readonly bindings = new Map<string, unknown>();
  private readonly comms = new Map<string, (msg: KernelMessage) => void>();
  private readonly panel = new PanelModel(
    () => this.settings.targets,
    () => this.schedulePush(),
  );
  readonly shared = new SharedCluster(
    (values, out) => this.bind(values, out),
    (client, cluster) => this.panel.follow(client, cluster),
  );
  private pushTimer: NodeJS.Timeout | undefined;
  private usageTimer: NodeJS.Timeout | undefined;
  /** When a panel last opened its comm or sent a command. */
  private panelSeen = 0;
  /** Bars for what TypeScript cells await; told of it by the client. */
  private readonly bars = new ProgressBars();
  /** What TypeScript cells send and await, aborted when they are interrupted. */
  private readonly cellTasks = new CellTasks();
  private readonly unlisten = [
    resultAwaited.listen((awaited) => {
      this.bars.watch(awaited);
      this.cellTasks.awaited(awaited.result);
    }),
    taskSubmitted.listen((submitted) => this.cellTasks.sent(submitted)),
  ];

  constructor(private readonly tslab: Tslab) {
    installNotebookHook(this);
  }

  get cluster(): Cluster | undefined {
    return this.shared.cluster;
  }

  get client(): Client | undefined {
    return this.shared.client;
  }

  get config(): Readonly<PxConfig> {
    return this.settings;
  }

  configure(options: Partial<PxConfig>): void {
    Object.assign(this.settings, options);
    this.schedulePush();
  }

  async state(): Promise<KernelState> {
    await this.panel.refresh();
    return this.panel.state();
  }

  take(name: string): unknown {
    const value = this.bindings.get(name);
    this.bindings.delete(name);
    return value;
  }

  async handle(request: KernelRequest, ex: Exchange): Promise<void> {
    switch (request.type) {
      case 'execute_request':
        return this.execute(request.content, ex);
      case 'interrupt_request':
        this.interrupt();
        return ex.reply('interrupt_reply', { status: 'ok' });
      case 'comm_info_request': {
        const { target_name: target } = request.content;
        const comms = Object.fromEntries(
          [...this.comms.keys()]
            .filter(() => target === undefined || target === COMM_TARGET)
            .map((id) => [id, { target_name: COMM_TARGET }]),
        );
        return ex.reply('comm_info_reply', { status: 'ok', comms });
      }
      case 'comm_open':
        return this.openComm(request.content, ex);
      case 'comm_msg':
        return this.commMessage(request.content);
      case 'comm_close':
        this.comms.delete(request.content.comm_id);
    }
  }

  interrupt(): void {
    // What the cell sent and awaits is picked before the interrupt ends the cell.
    void this.cellTasks.abort();
    this.tslab.interrupt();
    this.running?.abort();
  }

  async close(): Promise<void> {
    for (const unlisten of this.unlisten) unlisten();
    this.bars.end();
    this.panel.close();
    clearTimeout(this.pushTimer);
    clearTimeout(this.usageTimer);
    await this.shared.close();
  }

  // --- cells ---------------------------------------------------------------------------------

  private async execute(content: RequestContent['execute_request'], ex: Exchange): Promise<void> {
    const count = content.silent ? this.executionCount : ++this.executionCount;
    if (!content.silent)
      ex.publish('execute_input', { code: content.code, execution_count: count });
    // Cells run one at a time, in the order they came, as in any kernel.
    const cell = this.cells.then(() =>
      this.runCell(content.code, content.silent ? QUIET : ex, count),
    );
    this.cells = cell;
    const failure = await cell;
    if (failure && !failure.shown) ex.publish('error', errorContent(failure));
    ex.reply(
      'execute_reply',
      failure
        ? { status: 'error', execution_count: count, ...errorContent(failure) }
        : { status: 'ok', execution_count: count, user_expressions: {}, payload: [] },
    );
  }

  /** Runs a cell's magics and TypeScript in order; resolves with its failure, if any. */
  private async runCell(code: string, out: Outlet, count: number): Promise<Failure | undefined> {
    const steps = splitCell(code);
    let plan: ({ code: string } | { magic: Magic; body: string | undefined })[];
    try {
      // Every magic line is checked before anything runs, so a bad option runs nothing.
      plan = steps.map((s) =>
        s.kind === 'code' ? s : { magic: parseMagic(s.name, s.args), body: s.body },
      );
    } catch (e) {
      return { ...asCellError(e), shown: false };
    }
    if (this.autopx && plan.every((s) => 'code' in s)) {
      plan = [{ magic: { magic: 'px', code, options: {} }, body: undefined }];
    }
    this.running = new AbortController();
    try {
      for (const step of plan) {
        const failure =
          'code' in step
            ? await this.runTypeScript(step.code, out, count)
            : await runMagic(step.magic, this, {
                out,
                count,
                body: step.body,
                interrupted: this.running.signal,
              });
        if (failure) return failure;
      }
      return undefined;
    } catch (e) {
      return { ...asCellError(e), shown: false };
    } finally {
      this.running = undefined;
    }
  }

  async runTypeScript(code: string, out: Outlet, count: number): Promise<Failure | undefined> {
    this.bars.begin(out);
    this.cellTasks.begin();
    try {
      const error = await this.tslab.execute(code, out, count);
      return error && { ...error, shown: false };
    } finally {
      this.cellTasks.end();
      this.bars.end();
    }
  }

  // --- notebook variables -------------------------------------------------------------------

  /**
   * Makes notebook variables of `values` (name: [value, type in the package]), with their
   * types, by running a declaration through tslab, so later cells type-check against them.
   */
  async bind(values: Record<string, [unknown, string]>, out: Outlet): Promise<void> {
    const lines = Object.entries(values).map(([name, [value, type]]) => {
      this.bindings.set(name, value);
      return `const ${name} = (globalThis as any)[Symbol.for(${JSON.stringify(NOTEBOOK_HOOK_KEY)})].take(${JSON.stringify(name)}) as import(${PACKAGE_TYPES}).${type};`;
    });
    const error = await this.tslab.execute(lines.join('\n'), out, this.executionCount);
    if (error) {
      throw new Error(
        `could not set ${Object.keys(values).join(', ')} in the notebook: ${error.evalue}`,
      );
    }
  }

  // --- the panel's comm ----------------------------------------------------------------------

  private async openComm(content: RequestContent['comm_open'], ex: Exchange): Promise<void> {
    const id = content.comm_id;
    if (content.target_name !== COMM_TARGET) {
      // Jupyter's convention: an unknown target is answered by closing the comm.
      ex.publish('comm_close', { comm_id: id, data: {} });
      return;
    }
    const send = (msg: KernelMessage): void => ex.publish('comm_msg', { comm_id: id, data: msg });
    this.comms.set(id, send);
    this.panelSeen = Date.now();
    await this.panel.refresh();
    send({ type: 'state', state: this.panel.state() });
  }

  private async commMessage(content: RequestContent['comm_msg']): Promise<void> {
    const send = this.comms.get(content.comm_id);
    if (!send) return;
    this.panelSeen = Date.now();
    // A command the kernel cannot read is still answered under the id it came with, if any.
    const data = content.data as { requestId?: unknown } | null;
    const requestId = typeof data?.requestId === 'string' ? data.requestId : '';
    try {
      const output = await this.command(parsePanelMessage(content.data));
      send({ type: 'reply', requestId, ok: true, ...(output && { output }) });
    } catch (e) {
      send({ type: 'reply', requestId, ok: false, error: (e as Error).message });
    }
    this.schedulePush();
  }

  /** Carries out a panel command; resolves with what its reply carries, if anything. */
  private async command(c: PanelCommand): Promise<TaskOutputState | void> {
    switch (c.type) {
      case 'cluster:start':
        await this.shared.start(
          { engines: c.engines, launcher: launcherName(c.launcher ?? 'local') },
          QUIET,
        );
        return;
      case 'cluster:stop':
        await this.shared.stop();
        return;
      case 'engine:add':
        await this.shared.addEngines(c.count);
        return;
      case 'cluster:scale':
        await this.shared.scale(c.engines);
        return;
      case 'engine:stop':
        await this.shared.stopEngine(c.id);
        return;
      case 'engine:restart': {
        this.shared.requireCluster();
        this.panel.restarting(c.id);
        // The panel sees the engine restarting before the restart takes it away.
        await this.push();
        let newId: number | undefined;
        try {
          newId = await this.shared.restartEngine(c.id);
        } finally {
          this.panel.restarted(c.id, newId);
        }
        return;
      }
      case 'engine:interrupt':
        await this.shared.interruptEngine(c.id);
        return;
      case 'task:abort':
        await this.shared.abortTask(c.id);
        return;
      case 'task:output':
        return this.panel.output(c.id);
      case 'tasks:clear':
        this.panel.clearFinished();
        return;
      case 'targets:set':
        this.configure({ targets: checkTargets(c.targets) });
    }
  }

  private schedulePush(): void {
    if (this.comms.size === 0) return;
    this.pushTimer ??= setTimeout(() => void this.push(), STATE_COALESCE_MS);
  }

  /** Sends the state to every panel now, with fresh queues. */
  private async push(): Promise<void> {
    // Changes while the queues are fetched schedule the next push.
    clearTimeout(this.pushTimer);
    this.pushTimer = undefined;
    await this.panel.refresh();
    const state = this.panel.state();
    for (const send of this.comms.values()) send({ type: 'state', state });
    clearTimeout(this.usageTimer);
    const inUse = Date.now() - this.panelSeen < PANEL_IN_USE_MS;
    if (this.comms.size > 0 && usageMoves(state, inUse)) {
      this.usageTimer = setTimeout(() => this.schedulePush(), USAGE_REFRESH_MS);
    }
  }
}

/** A launcher the panel names, checked. */
function launcherName(name: string): LauncherName {
  const known: readonly string[] = launcherNames;
  if (!known.includes(name)) {
    throw new TypeError(`launcher "${name}" is unknown; the launchers are ${known.join(', ')}`);
  }
  return name as LauncherName;
}

/** Any failure as the `error` message shows it. */
function asCellError(e: unknown): CellError {
  const err = e instanceof Error ? e : new Error(String(e));
  const ename = err.name;
  return { ename, evalue: err.message, traceback: [`${ename}: ${err.message}`] };
}

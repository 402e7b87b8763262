/**
 * The kernel's front layer: it takes each cell before tslab does, runs magic lines and cells
 * itself, hands TypeScript to tslab unchanged, keeps the one cluster and client that magics and
 * code share, and serves the lab panel's comm.
 */
import { resolve } from 'node:path';
import { Client } from '../client/client';
import { installNotebookHook, NOTEBOOK_HOOK_KEY, type NotebookHook } from '../client/notebook';
import { Cluster } from '../cluster/cluster';
import { launcherNames, type LauncherName } from '../cluster/launchers';
import {
  COMM_TARGET,
  parsePanelMessage,
  type KernelMessage,
  type PanelCommand,
  type TaskOutputState,
} from './comm-messages';
import type { KernelRequest, RequestContent } from './kernel-messages';
import {
  checkTargets,
  DEFAULT_PX_CONFIG,
  MagicUsageError,
  magicHelp,
  magicList,
  parseMagic,
  splitCell,
  type Magic,
  type PxConfig,
  type PxOptions,
} from './magics';
import { PanelModel } from './panel';
import { showPx, submitPx, type PxRun } from './px';
import type { CellError, Exchange, KernelFront, Outlet, Tslab } from './tslab';

/** The package's type declarations, for the types of the names the kernel binds in cells. */
const TYPES = JSON.stringify(resolve(__dirname, '..', 'index'));

/** Output nobody sees: silent requests, and bindings made for the panel. */
const QUIET: Outlet = { stream: () => {}, publish: () => {} };

/** What a cell ends with when it failed. */
type Failure = CellError & { shown: boolean };

/** How long state pushes to the panel are gathered into one message. */
const STATE_COALESCE_MS = 100;

/** How often a panel watching a cluster gets a fresh state: engines' CPU and memory move silently. */
const USAGE_REFRESH_MS = 2000;

/** See the file's comment. */
export class NotebookKernel implements KernelFront, NotebookHook {
  cluster: Cluster | undefined;
  client: Client | undefined;
  private config: PxConfig = { ...DEFAULT_PX_CONFIG };
  private autopx = false;
  private executionCount = 0;
  /** The cell running now, or the last one; it never rejects. */
  private cells: Promise<unknown> = Promise.resolve();
  private running: AbortController | undefined;
  private last: { run: PxRun; options: PxOptions } | undefined;
  /** Values on their way into notebook variables (see `bind`). */
  private readonly bindings = new Map<string, unknown>();
  private readonly comms = new Map<string, (msg: KernelMessage) => void>();
  private readonly panel = new PanelModel(
    () => this.config.targets,
    () => this.schedulePush(),
  );
  private pushTimer: NodeJS.Timeout | undefined;
  private usageTimer: NodeJS.Timeout | undefined;

  constructor(private readonly tslab: Tslab) {
    installNotebookHook(this);
  }

  adopt(created: { cluster: Cluster } | { client: Client }): void {
    if ('cluster' in created) {
      this.cluster = created.cluster;
      this.client = undefined;
    } else {
      this.client = created.client;
    }
    this.panel.follow(this.client, this.cluster);
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
    this.tslab.interrupt();
    this.running?.abort();
  }

  async close(): Promise<void> {
    this.panel.close();
    clearTimeout(this.pushTimer);
    clearTimeout(this.usageTimer);
    await this.cluster?.stop();
    this.client?.close();
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
            : await this.runMagic(step.magic, step.body, out, count, this.running.signal);
        if (failure) return failure;
      }
      return undefined;
    } catch (e) {
      return { ...asCellError(e), shown: false };
    } finally {
      this.running = undefined;
    }
  }

  private async runTypeScript(
    code: string,
    out: Outlet,
    count: number,
  ): Promise<Failure | undefined> {
    const error = await this.tslab.execute(code, out, count);
    return error && { ...error, shown: false };
  }

  private async runMagic(
    m: Magic,
    body: string | undefined,
    out: Outlet,
    count: number,
    interrupted: AbortSignal,
  ): Promise<Failure | undefined> {
    const say = (text: string): void =>
      out.stream('stdout', text.endsWith('\n') ? text : `${text}\n`);
    switch (m.magic) {
      case 'cluster start': {
        const rc = await this.startCluster(m.engines, m.launcher, out);
        say(
          `Started a cluster with ${rc.ids.length} engines (ids ${rc.ids.join(', ')}); ` +
            `cluster and rc are set in the notebook, and %px runs on it.`,
        );
        return undefined;
      }
      case 'cluster stop':
        say(await this.stopCluster());
        return undefined;
      case 'cluster connect': {
        const rc = await Client.connect(m.file === undefined ? {} : { connectionFile: m.file });
        await this.bind({ rc: [rc, 'Client'] }, out);
        say(
          `Connected to ${rc.connection.client} with ${rc.ids.length} engine${rc.ids.length === 1 ? '' : 's'}; rc is set in the notebook.`,
        );
        return undefined;
      }
      case 'cluster status':
        say(await this.status());
        return undefined;
      case 'cluster scale': {
        const ids = await this.requireCluster().scale(m.engines);
        say(
          `The cluster has ${ids.length} engine${ids.length === 1 ? '' : 's'}: ${ids.join(', ') || 'none'}.`,
        );
        return undefined;
      }
      case 'px':
        return this.runPx(
          m.code || (body ?? ''),
          { ...this.config, local: false, out: undefined, ...m.options },
          out,
          count,
          interrupted,
        );
      case 'pxresult': {
        if (!this.last)
          throw new MagicUsageError('no %px has run yet; %pxresult shows the last one.');
        const { run, options } = this.last;
        return this.showErrors(
          await showPx(
            this.requireClient(),
            run,
            { ...options, stream: true },
            out,
            count,
            interrupted,
          ),
          out,
        );
      }
      case 'pxconfig':
        Object.assign(this.config, m.options);
        this.schedulePush();
        say(
          Object.entries(this.config)
            .map(([k, v]) => `${k}: ${v === undefined ? '(none)' : String(v)}`)
            .join('\n'),
        );
        return undefined;
      case 'autopx':
        this.autopx = !this.autopx;
        say(
          this.autopx
            ? '%autopx enabled: every cell now runs on the engines; %autopx again turns it off.'
            : '%autopx disabled: cells run in the notebook again.',
        );
        return undefined;
      case 'lsmagic':
        say(magicList());
        return undefined;
      case 'help':
        say(magicHelp(m.topic));
        return undefined;
    }
  }

  private async runPx(
    code: string,
    options: PxOptions,
    out: Outlet,
    count: number,
    interrupted: AbortSignal,
  ): Promise<Failure | undefined> {
    if (code.trim() === '')
      throw new MagicUsageError('%%px needs code in the cell below its first line.');
    const client = await this.ensureClient();
    const run = submitPx(client, code, options);
    this.last = { run, options };
    if (options.out !== undefined) {
      await this.bind(
        { [options.out]: [run.ar, `AsyncResult<import(${TYPES}).ExecuteReply[]>`] },
        out,
      );
    }
    // --local runs the cell here while the engines run it; its error is shown with theirs.
    const local = options.local ? await this.runTypeScript(code, out, count) : undefined;
    if (local) out.publish('error', errorContent(local));
    const remote = options.block
      ? this.showErrors(await showPx(client, run, options, out, count, interrupted), out)
      : undefined;
    return remote ?? (local && { ...local, shown: true });
  }

  /** Shows each engine's error; the cell fails with the first, or with all when several failed. */
  private showErrors(errors: CellError[], out: Outlet): Failure | undefined {
    for (const e of errors) out.publish('error', errorContent(e));
    if (errors.length === 0) return undefined;
    const first = errors[0];
    return errors.length === 1
      ? { ...first, shown: true }
      : {
          ename: 'CompositeError',
          evalue: `${errors.length} engines failed; see above`,
          traceback: [],
          shown: true,
        };
  }

  // --- the shared cluster and client ----------------------------------------------------------

  /**
   * Makes notebook variables of `values` (name: [value, type in the package]), with their
   * types, by running a declaration through tslab, so later cells type-check against them.
   */
  private async bind(values: Record<string, [unknown, string]>, out: Outlet): Promise<void> {
    const lines = Object.entries(values).map(([name, [value, type]]) => {
      this.bindings.set(name, value);
      return `const ${name} = (globalThis as any)[Symbol.for(${JSON.stringify(NOTEBOOK_HOOK_KEY)})].take(${JSON.stringify(name)}) as import(${TYPES}).${type};`;
    });
    const error = await this.tslab.execute(lines.join('\n'), out, this.executionCount);
    if (error) {
      throw new Error(
        `could not set ${Object.keys(values).join(', ')} in the notebook: ${error.evalue}`,
      );
    }
  }

  private async startCluster(
    engines: number | undefined,
    launcher: LauncherName,
    out: Outlet,
  ): Promise<Client> {
    if (this.cluster) {
      throw new MagicUsageError(
        'a cluster is running already; %cluster stop it first, or use it with %px.',
      );
    }
    const cluster = await Cluster.start({ engines, launcher });
    const rc = await cluster.connect();
    await this.bind({ cluster: [cluster, 'Cluster'], rc: [rc, 'Client'] }, out);
    return rc;
  }

  private async stopCluster(): Promise<string> {
    const { cluster, client } = this;
    if (!cluster && !client)
      throw new MagicUsageError('there is no cluster to stop; %cluster start -n 4 starts one.');
    this.cluster = undefined;
    this.client = undefined;
    this.panel.follow(undefined, undefined);
    if (cluster) {
      await cluster.stop();
      return 'Stopped the cluster: its controller and engines have exited.';
    }
    client?.close();
    return 'Closed the connection; the cluster keeps running (it was not started here).';
  }

  private requireClient(): Client {
    if (this.client) return this.client;
    throw new MagicUsageError(
      'there is no cluster: %cluster start -n 4 starts one, %cluster connect uses a running one, or create a Client or Cluster in a cell.',
    );
  }

  private requireCluster(): Cluster {
    if (this.cluster) return this.cluster;
    throw new MagicUsageError(
      'this needs a cluster started here (%cluster start), not only a connection.',
    );
  }

  /** The client `%px` uses, connecting to a cluster that code started without connecting. */
  private async ensureClient(): Promise<Client> {
    if (!this.client && this.cluster) await this.cluster.connect();
    return this.requireClient();
  }

  private async status(): Promise<string> {
    await this.panel.refresh();
    const state = this.panel.state();
    if (!state.cluster) return 'No cluster: %cluster start -n 4 starts one.';
    const c = state.cluster;
    const lines = [
      `controller ${c.controller}, launcher ${c.launcher ?? '(connected, not started here)'}, up ${Math.round(c.uptime)} s`,
      `%px targets: ${state.targets}${this.autopx ? ' (%autopx on)' : ''}`,
      ...state.engines.map(
        (e) =>
          `engine ${e.id}: ${e.status}, pid ${e.pid} on ${e.host}, queue ${e.queue}, done ${e.completed}`,
      ),
    ];
    return lines.join('\n');
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
    await this.panel.refresh();
    send({ type: 'state', state: this.panel.state() });
  }

  private async commMessage(content: RequestContent['comm_msg']): Promise<void> {
    const send = this.comms.get(content.comm_id);
    if (!send) return;
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
        await this.startCluster(c.engines, launcherName(c.launcher ?? 'local'), QUIET);
        return;
      case 'cluster:stop':
        await this.stopCluster();
        return;
      case 'engine:add':
        await this.requireCluster().addEngines(c.count);
        return;
      case 'cluster:scale':
        await this.requireCluster().scale(c.engines);
        return;
      case 'engine:stop':
        await this.requireCluster().stopEngine(c.id);
        return;
      case 'engine:restart': {
        const cluster = this.requireCluster();
        this.panel.restarting(c.id);
        // The panel sees the engine restarting before the restart takes it away.
        await this.push();
        let newId: number | undefined;
        try {
          newId = await cluster.restartEngine(c.id);
        } finally {
          this.panel.restarted(c.id, newId);
        }
        return;
      }
      case 'engine:interrupt':
        await this.requireClient().sendSignal('SIGINT', c.id);
        return;
      case 'task:abort':
        await this.requireClient().abort(c.id);
        return;
      case 'task:output':
        return this.panel.output(c.id);
      case 'tasks:clear':
        this.panel.clearFinished();
        return;
      case 'targets:set':
        this.config.targets = checkTargets(c.targets);
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
    if (this.comms.size > 0 && state.cluster) {
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

function errorContent(e: CellError): CellError {
  return { ename: e.ename, evalue: e.evalue, traceback: e.traceback };
}

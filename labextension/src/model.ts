/**
 * The panel's state, free of the DOM and of JupyterLab so that mocha tests it in Node: what the
 * kernel last said (`state` messages), the commands waiting for their reply, the tasks the user
 * opened and their fetched output, and where the connection to the notebook's kernel stands.
 * The widget renders it and the kernel follower feeds it; both only call the methods below.
 */
import {
  parseKernelMessage,
  type PanelEngine,
  type KernelMessage,
  type KernelState,
  type PanelMap,
  type PanelCommand,
  type PanelMessage,
  type TaskOutputState,
  type PanelTask,
} from '../../kernel-ext/comm-messages';

/** Where the panel stands with the current notebook's kernel. */
export type Phase =
  | 'no-notebook'
  | 'no-kernel'
  | 'not-tsparallel'
  | 'connecting'
  | 'restarting'
  | 'connected';

/** A task's full output, as far as the kernel has answered for it. */
export type OutputSlot =
  | { status: 'loading' }
  | { status: 'ready'; output: TaskOutputState }
  | { status: 'failed'; error: string };

/** One bar of the task stream: a task's time on its engine, in SVG units. */
export interface StreamBar {
  id: string;
  state: PanelTask['state'];
  x: number;
  width: number;
  /** What hovering the bar says: `task 1a2b3c · engine 0 · 1.2 s · done`. */
  summary: string;
}

/** A mark on the task stream's time axis. */
export interface AxisTick {
  x: number;
  /** Time before the window's end (`-4 s`), or `now` at the end. */
  label: string;
}

/** One engine's lane of the task stream. */
export interface StreamLane {
  engine: number;
  status: PanelEngine['status'];
  bars: StreamBar[];
}

/** The task stream's lanes over the window `[start, end]` (kernel-clock milliseconds). */
export interface TaskStream {
  start: number;
  end: number;
  lanes: StreamLane[];
  ticks: AxisTick[];
}

/** A map's progress bar. */
export interface MapProgress {
  map: PanelMap;
  /** Finished tasks (done or failed) over all, 0 to 1. */
  fraction: number;
  running: boolean;
}

/** See the file's comment. */
export class ClusterModel {
  phase: Phase = 'no-notebook';
  /** The kernel's name when it is not a tsparallel kernel, for the message that says so. */
  otherKernel: string | null = null;
  /** The kernel's last state, null until the first one arrives. */
  state: KernelState | null = null;
  /** Commands sent and not answered yet, by request id. */
  readonly pending = new Map<string, PanelCommand>();
  /** The last command's failure, until the user dismisses it or sends another command. */
  error: string | null = null;
  /** Tasks whose full output the user opened. */
  readonly expanded = new Set<string>();
  readonly outputs = new Map<string, OutputSlot>();

  /** Local clock (ms) when `state` arrived, to advance the kernel's clock between states. */
  private receivedAt = 0;
  /**
   * Each task's state and count of published data when its output was last asked for, to
   * refetch when either moves.
   */
  private readonly fetchedUnder = new Map<string, string | undefined>();
  private send: ((m: PanelMessage) => void) | null = null;
  private requests = 0;
  private readonly listeners = new Set<() => void>();

  /** Calls `listener` after every change; returns the function that stops it. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A comm to a tsparallel kernel is open: commands go to `send`; the first state follows. */
  attach(send: (m: PanelMessage) => void): void {
    this.reset();
    this.send = send;
    this.phase = 'connecting';
    this.emit();
  }

  /** The comm is gone or there is none, for the reason `phase` names. */
  detach(phase: Exclude<Phase, 'connected'>, otherKernel: string | null = null): void {
    const unanswered = this.pending.size > 0;
    this.reset();
    this.phase = phase;
    this.otherKernel = otherKernel;
    if (unanswered && phase === 'restarting') {
      this.error = 'The kernel restarted before it answered; its cluster stopped with it.';
    }
    this.emit();
  }

  /** Takes in what the kernel sent over the comm; drops what it cannot read, saying so. */
  receive(data: unknown): void {
    let msg: KernelMessage;
    try {
      msg = parseKernelMessage(data);
    } catch (e) {
      this.error = `The panel cannot read a message from the kernel (${(e as Error).message}): run the same tsparallel version in the kernel and in JupyterLab.`;
      this.emit();
      return;
    }
    if (msg.type === 'state') {
      this.state = msg.state;
      this.receivedAt = Date.now();
      this.phase = 'connected';
      // An open output fetched before its task finished, or before it published its latest
      // data, lacks them. Output of tasks the kernel no longer keeps stays as it was fetched.
      for (const id of this.expanded) {
        const now = this.taskVersion(id);
        if (now !== undefined && now !== this.fetchedUnder.get(id)) this.fetchOutput(id);
      }
    } else {
      const command = this.pending.get(msg.requestId);
      if (!command) return;
      this.pending.delete(msg.requestId);
      if (command.type === 'task:output') {
        this.outputs.set(
          command.id,
          msg.ok && msg.output
            ? { status: 'ready', output: msg.output }
            : { status: 'failed', error: msg.ok ? 'the kernel sent no output' : msg.error },
        );
      } else if (!msg.ok) {
        this.error = msg.error;
      }
    }
    this.emit();
  }

  /**
   * Sends `command` to the kernel; returns its request id, or undefined when no kernel is
   * connected (the panel offers no command then) or the send failed (the error line says so).
   */
  run(command: PanelCommand): string | undefined {
    if (!this.send) return undefined;
    const requestId = `r${++this.requests}`;
    try {
      this.send({ ...command, requestId });
    } catch (e) {
      // Not pending: no reply will come for a message that never left.
      this.error = `The command did not reach the kernel (${(e as Error).message}): wait for the kernel to be ready and try again.`;
      this.emit();
      return undefined;
    }
    this.pending.set(requestId, command);
    if (command.type !== 'task:output') this.error = null;
    this.emit();
    return requestId;
  }

  /** True while a command of `type` (for engine `id`, if given) waits for its reply. */
  waiting(type: PanelCommand['type'], id?: number | string): boolean {
    return [...this.pending.values()].some(
      (c) => c.type === type && (id === undefined || ('id' in c && c.id === id)),
    );
  }

  /** True while a command on the whole cluster (start, stop, scale, add) waits for its reply. */
  clusterBusy(): boolean {
    return CLUSTER_COMMANDS.some((type) => this.waiting(type));
  }

  /**
   * Opens or closes a task's full output, fetching it when it first opens and again when the
   * task has moved on since.
   */
  toggle(taskId: string): void {
    if (this.expanded.delete(taskId)) {
      this.emit();
      return;
    }
    this.expanded.add(taskId);
    const slot = this.outputs.get(taskId);
    // A pending task's output grows, so it is fetched again each time it opens.
    if (
      !slot ||
      slot.status === 'failed' ||
      this.taskState(taskId) === 'pending' ||
      this.taskVersion(taskId) !== this.fetchedUnder.get(taskId)
    ) {
      this.fetchOutput(taskId);
    }
    this.emit();
  }

  /** Asks the kernel to forget finished tasks and maps; running ones stay. */
  clearFinished(): void {
    this.run({ type: 'tasks:clear' });
  }

  /** True when there are finished tasks or maps to clear. */
  hasFinished(): boolean {
    const s = this.state;
    return Boolean(
      s &&
        (s.tasks.some((t) => t.state !== 'pending') ||
          s.maps.some((m) => m.done + m.failed >= m.total)),
    );
  }

  /** The latest maps' progress, newest first: `count` at most. */
  mapProgress(count = 5): MapProgress[] {
    return (this.state?.maps ?? [])
      .slice(-count)
      .reverse()
      .map((map) => {
        const finished = map.done + map.failed;
        return {
          map,
          fraction: map.total === 0 ? 1 : finished / map.total,
          running: finished < map.total,
        };
      });
  }

  dismissError(): void {
    this.error = null;
    this.emit();
  }

  /** Why the panel has nothing to show, or null when a cluster runs. */
  emptyReason(): string | null {
    switch (this.phase) {
      case 'no-notebook':
        return 'No notebook is open: open one that runs the "TypeScript (tsparallel)" kernel to see its cluster here.';
      case 'no-kernel':
        return 'This notebook has no running kernel: start the "TypeScript (tsparallel)" kernel.';
      case 'not-tsparallel':
        return `This notebook's kernel${this.otherKernel ? ` (${this.otherKernel})` : ''} is not a tsparallel kernel: change the kernel to "TypeScript (tsparallel)".`;
      case 'connecting':
        return 'Connecting to the kernel…';
      case 'restarting':
        return 'The kernel is restarting; the panel reconnects when it is back.';
      case 'connected':
        return this.state?.cluster
          ? null
          : 'No cluster is running: start one here, or run %cluster start -n 4 in the notebook.';
    }
  }

  /** The kernel's clock (ms) at local time `localNow`. */
  kernelTime(localNow: number): number {
    return this.state ? Date.parse(this.state.time) + (localNow - this.receivedAt) : localNow;
  }

  /** Seconds the cluster has been up at local time `localNow`. */
  uptime(localNow: number): number {
    const c = this.state?.cluster;
    return c ? c.uptime + Math.max(0, localNow - this.receivedAt) / 1000 : 0;
  }

  /** Engines still registered (not dead). */
  liveEngines(): PanelEngine[] {
    return (this.state?.engines ?? []).filter((e) => e.status !== 'dead');
  }

  private taskState(taskId: string): PanelTask['state'] | undefined {
    return this.state?.tasks.find((t) => t.id === taskId)?.state;
  }

  /** What moves a task's output: its state and how often it published data. */
  private taskVersion(taskId: string): string | undefined {
    const t = this.state?.tasks.find((task) => task.id === taskId);
    return t && `${t.state}/${t.published}`;
  }

  private fetchOutput(taskId: string): void {
    this.fetchedUnder.set(taskId, this.taskVersion(taskId));
    this.outputs.set(taskId, { status: 'loading' });
    if (this.run({ type: 'task:output', id: taskId }) === undefined) {
      this.outputs.set(taskId, { status: 'failed', error: 'the request did not reach the kernel' });
    }
  }

  private reset(): void {
    this.send = null;
    this.state = null;
    this.pending.clear();
    this.expanded.clear();
    this.outputs.clear();
    this.fetchedUnder.clear();
    this.error = null;
    this.otherKernel = null;
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }
}

const CLUSTER_COMMANDS: PanelCommand['type'][] = [
  'cluster:start',
  'cluster:stop',
  'cluster:scale',
  'engine:add',
];

/** The start of a message id: enough to tell tasks apart in a narrow column. */
export const shortId = (id: string): string => id.slice(0, 6);

/** Of the tasks a waiting task waits for, how many its row names before `…`. */
const WAITS_NAMED = 3;

/**
 * What a waiting task's row says it waits for, each task by its label or the start of its id:
 * `waits for 2: load, ab12cd…`; empty for a task that waits for nothing.
 */
export function waitsForText(t: PanelTask): string {
  if (t.state !== 'pending' || t.waitsFor.length === 0) return '';
  const names = t.waitsFor.slice(0, WAITS_NAMED).map((w) => w.label ?? `${shortId(w.id)}…`);
  if (t.waitsFor.length > WAITS_NAMED) names.push('…');
  return `waits for ${t.waitsFor.length}: ${names.join(', ')}`;
}

/** Seconds a task took, or has taken so far at kernel time `now` (ms). */
export function taskSeconds(t: PanelTask, now: number): number {
  const start = Date.parse(t.started ?? t.submitted);
  const end = t.completed ? Date.parse(t.completed) : now;
  return Math.max(0, end - start) / 1000;
}

/** `250 ms`, `4.4 s`, `12 s`, `3 min 4 s`, `2 h 5 min`. */
export function formatSeconds(s: number): string {
  // Each branch rounds first and is chosen by the rounded value, so 59.6 s reads `1 min 0 s`.
  const ms = Math.round(s * 1000);
  if (ms < 1000) return `${ms} ms`;
  const tenths = Math.round(s * 10);
  if (tenths < 100) return `${(tenths / 10).toFixed(1)} s`;
  const whole = Math.round(s);
  if (whole < 60) return `${whole} s`;
  const m = Math.floor(whole / 60);
  return m < 60 ? `${m} min ${whole % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** `512 KB`, `85 MB`, `1.2 GB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 && unit > 0 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** One resource of an engine, as its meter shows it. */
export interface ResourceUse {
  name: string;
  inUse: number;
  held: number;
  /** Of what the engine holds, the part in use, 0 to 1 (1 when it holds none but some is used). */
  fraction: number;
  /** `gpu 1/1`, `mem 2G/8G`: amounts as the command line spells them. */
  text: string;
}

/** What an engine holds and what its tasks occupy, a row per resource, in the order declared. */
export function resourceUse(e: PanelEngine): ResourceUse[] {
  const names = [...new Set([...Object.keys(e.resources), ...Object.keys(e.resourcesInUse)])];
  return names.map((name) => {
    const held = e.resources[name] ?? 0;
    const inUse = e.resourcesInUse[name] ?? 0;
    return {
      name,
      inUse,
      held,
      fraction: held > 0 ? Math.min(1, inUse / held) : inUse > 0 ? 1 : 0,
      text: `${name} ${formatAmount(inUse)}/${formatAmount(held)}`,
    };
  });
}

/** `4`, `0.5`, `1.5K`, `8G`: an amount with K, M, G or T for thousands to trillions, as `--resources` takes it. */
export function formatAmount(n: number): string {
  const steps: [number, string][] = [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'K'],
  ];
  const [size, suffix] = steps.find(([s]) => n >= s) ?? [1, ''];
  return `${Number((n / size).toPrecision(3))}${suffix}`;
}

/** Steps of the time axis, in seconds: the first that gives at most `MAX_TICKS` marks wins. */
const TICK_STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];
const MAX_TICKS = 5;

/**
 * Marks for a time axis over `span` ms drawn `width` units wide, counted back from its right
 * end (`now`) in round steps.
 */
export function axisTicks(span: number, width: number): AxisTick[] {
  const seconds = span / 1000;
  const step = TICK_STEPS.find((s) => seconds / s <= MAX_TICKS) ?? seconds / MAX_TICKS;
  const ticks: AxisTick[] = [];
  for (let i = 0; i * step <= seconds + 1e-9; i++) {
    const back = i * step;
    const x = width - (back / Math.max(seconds, 1e-9)) * width;
    const label = back < 60 ? `-${Number(back.toFixed(1))} s` : `-${formatSeconds(back)}`;
    ticks.push({ x, label: i === 0 ? 'now' : label });
  }
  return ticks;
}

/**
 * The task stream of `state` at kernel time `now` (ms), `width` units wide: one lane per
 * engine (dead ones too while they have bars), a bar per task from its start (its submission
 * until the engine reports the start) to its end (or `now` while it runs). Load-balanced tasks
 * get their lane when their engine becomes known.
 */
export function taskStream(state: KernelState, now: number, width: number): TaskStream {
  const placed = state.tasks.filter((t) => t.engine !== null);
  const startOf = (t: PanelTask): number => Date.parse(t.started ?? t.submitted);
  const endOf = (t: PanelTask): number => (t.completed ? Date.parse(t.completed) : now);
  const start = Math.min(now, ...placed.map(startOf));
  const end = Math.max(now, ...placed.map(endOf));
  const scale = width / Math.max(1, end - start);
  const lanes = state.engines
    .map((e) => ({
      engine: e.id,
      status: e.status,
      bars: placed
        .filter((t) => t.engine === e.id)
        .map((t) => ({
          id: t.id,
          state: t.state,
          x: (startOf(t) - start) * scale,
          // A task too short to see still gets a visible sliver.
          width: Math.max(1, (endOf(t) - startOf(t)) * scale),
          summary: `task ${t.id.slice(0, 6)} · engine ${e.id} · ${formatSeconds((endOf(t) - startOf(t)) / 1000)} · ${t.state}`,
        })),
    }))
    .filter((l) => l.status !== 'dead' || l.bars.length > 0);
  return { start, end, lanes, ticks: axisTicks(end - start, width) };
}

/**
 * The messages between the kernel and the JupyterLab panel, over a Jupyter comm with target
 * `tsparallel`. The panel opens the comm; the kernel answers with `state` at once and again
 * whenever the cluster, its engines or its tasks change. The panel sends commands; each gets a
 * `reply` carrying the command's `requestId`. This file has no runtime dependencies so that the
 * lab extension can import it as it is.
 */

/** The comm target name the kernel registers. */
export const COMM_TARGET = 'tsparallel';

/** What a tsparallel kernel says in `kernel_info_reply.implementation`; the panel checks it. */
export const KERNEL_IMPLEMENTATION = 'tsparallel';

/** Engines as `%px --targets` takes them: `all`, `0`, `0,2`, `1:3` or `::2`. */
export type TargetsState = string;

/** The controller and how its engines were started. */
export interface ClusterInfo {
  /** The controller's address for clients, e.g. `tcp://127.0.0.1:5555`. */
  controller: string;
  /** How the engines were started (`local`, ...), or null when the kernel only connected. */
  launcher: string | null;
  /** ISO time the cluster started, or null when the kernel only connected. */
  started: string | null;
  /** Seconds since `started` (or since the kernel connected) when this state was sent. */
  uptime: number;
}

const ENGINE_STATUSES = ['idle', 'busy', 'dead', 'restarting'] as const;
const TASK_STATES = ['pending', 'done', 'error'] as const;
const VIEW_KINDS = ['direct', 'balanced'] as const;

/** One engine as the panel shows it. */
export interface EngineState {
  id: number;
  host: string;
  pid: number;
  /**
   * `dead` engines stay listed after they unregister; `restarting` while the panel's
   * `engine:restart` replaces the engine.
   */
  status: (typeof ENGINE_STATUSES)[number];
  /** Tasks sent to the engine and not finished. */
  queue: number;
  /** Tasks the engine finished. */
  completed: number;
  /** Message id of a task of this kernel running there, if any. */
  currentTask: string | null;
  /** The engine that took this one's place after an `engine:restart` (ids are never reused). */
  replacedBy: number | null;
  /** CPU use of the engine's process, percent of one core, as its latest heartbeat said. */
  cpu: number | null;
  /** The engine process's resident memory in bytes, as its latest heartbeat said. */
  memory: number | null;
}

/** One task this kernel sent (from `%px` or from a view in a code cell). */
export interface TaskState {
  id: string;
  view: (typeof VIEW_KINDS)[number];
  /** The engine it ran on, null until known (a load-balanced task's engine comes with its reply). */
  engine: number | null;
  label: string | null;
  state: (typeof TASK_STATES)[number];
  /** ISO times. */
  submitted: string;
  started: string | null;
  completed: string | null;
  /** The start of the value when it succeeded. */
  resultPreview: string | null;
  /** The error's first line when it failed. */
  errorPreview: string | null;
  /** The map it is part of, if any (`MapState.id`). */
  map: number | null;
}

/** A view's `map`: how many of its tasks have finished. */
export interface MapState {
  /** Numbers maps in the order they were sent. */
  id: number;
  view: (typeof VIEW_KINDS)[number];
  total: number;
  done: number;
  failed: number;
}

/** A view that code or `%px` sent tasks through. */
export interface ViewState {
  /** Numbers views in the order they were first used. */
  id: number;
  kind: (typeof VIEW_KINDS)[number];
  /** The engines it may use: `all`, ids, or null for any (load-balanced without targets). */
  targets: 'all' | number[] | null;
  /** Tasks sent through it. */
  tasks: number;
}

/** A task's whole output, which the panel asks for with `task:output`. */
export interface TaskOutputState {
  id: string;
  stdout: string;
  stderr: string;
  /** The value, or the cell's last expression for `%px` code, as text; null while pending. */
  result: string | null;
  /** The error with the engine's traceback when it failed. */
  error: string | null;
  /** True when a part was cut at `OUTPUT_CHARS` characters. */
  truncated: boolean;
}

/** How many characters of each part of a task's output `task:output` sends at most. */
export const OUTPUT_CHARS = 200_000;

/** Everything the panel shows; sent whole on each change. */
export interface KernelState {
  /** ISO time on the kernel's clock when the state was built, for durations of running tasks. */
  time: string;
  /** Null while the notebook has no cluster or client. */
  cluster: ClusterInfo | null;
  engines: EngineState[];
  /** The latest tasks, oldest first (bounded). */
  tasks: TaskState[];
  /** What `%px` runs on. */
  targets: TargetsState;
  views: ViewState[];
  /** The latest maps, oldest first (bounded). */
  maps: MapState[];
}

/** Kernel to panel. */
export type KernelMessage =
  | { type: 'state'; state: KernelState }
  /** `output` answers `task:output`. */
  | { type: 'reply'; requestId: string; ok: true; output?: TaskOutputState }
  | { type: 'reply'; requestId: string; ok: false; error: string };

/** Panel to kernel: what the panel asks for. */
export type PanelCommand =
  | { type: 'cluster:start'; engines: number; launcher?: string }
  | { type: 'cluster:stop' }
  | { type: 'engine:add'; count: number }
  /** Grow or shrink to `engines` (idle engines are stopped first). */
  | { type: 'cluster:scale'; engines: number }
  | { type: 'engine:stop'; id: number }
  | { type: 'engine:restart'; id: number }
  /** Interrupts the engine's running task (SIGINT), as the notebook's interrupt does. */
  | { type: 'engine:interrupt'; id: number }
  | { type: 'task:abort'; id: string }
  /** Asks for a task's whole output; the reply carries it. */
  | { type: 'task:output'; id: string }
  /** Forgets the finished tasks and maps, so that the lists and the task stream start afresh. */
  | { type: 'tasks:clear' }
  | { type: 'targets:set'; targets: TargetsState };

/** A command with the id its reply carries. */
export type PanelMessage = PanelCommand & { requestId: string };

const isCount = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0;
const isTargets = (v: unknown): v is TargetsState => typeof v === 'string';

/** What each command needs besides `type` and `requestId`. */
const commandFields: { [T in PanelCommand['type']]: Record<string, (v: unknown) => boolean> } = {
  'cluster:start': {
    engines: isCount,
    launcher: (v) => v === undefined || typeof v === 'string',
  },
  'cluster:stop': {},
  'engine:add': { count: (v) => isCount(v) && v > 0 },
  'cluster:scale': { engines: isCount },
  'engine:stop': { id: isCount },
  'engine:restart': { id: isCount },
  'engine:interrupt': { id: isCount },
  'task:abort': { id: (v) => typeof v === 'string' },
  'task:output': { id: (v) => typeof v === 'string' },
  'tasks:clear': {},
  'targets:set': { targets: isTargets },
};

/**
 * Checks what the panel sent; throws `TypeError` naming the problem. Past this point the
 * command is trusted to match its type.
 */
export function parsePanelMessage(data: unknown): PanelMessage {
  const d = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  if (typeof d.requestId !== 'string') throw new TypeError('a panel command needs a requestId');
  const type = d.type;
  if (typeof type !== 'string' || !Object.hasOwn(commandFields, type)) {
    throw new TypeError(
      `unknown panel command ${JSON.stringify(type)}; known: ${Object.keys(commandFields).join(', ')}`,
    );
  }
  const fields = commandFields[type as PanelCommand['type']];
  const bad = Object.keys(fields).filter((k) => !fields[k](d[k]));
  if (bad.length > 0) throw new TypeError(`${type}: bad or missing ${bad.join(', ')}`);
  return d as PanelMessage;
}

/** Says what is wrong with `v`, found at `path`, or returns null when nothing is. */
type Rule = (v: unknown, path: string) => string | null;

const is =
  (test: (v: unknown) => boolean, what: string): Rule =>
  (v, path) =>
    test(v) ? null : `${path} is not ${what}`;
const str = is((v) => typeof v === 'string', 'a string');
const num = is((v) => typeof v === 'number' && Number.isFinite(v), 'a number');
const bool = is((v) => typeof v === 'boolean', 'true or false');
const oneOf = (values: readonly string[]): Rule =>
  is((v) => values.includes(v as string), `one of ${values.join(', ')}`);
const nullable =
  (rule: Rule): Rule =>
  (v, path) =>
    v === null ? null : rule(v, path);
const object =
  (fields: Record<string, Rule>): Rule =>
  (v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return `${path} is not an object`;
    for (const [k, rule] of Object.entries(fields)) {
      const problem = rule((v as Record<string, unknown>)[k], `${path}.${k}`);
      if (problem) return problem;
    }
    return null;
  };
const array =
  (item: Rule): Rule =>
  (v, path) => {
    if (!Array.isArray(v)) return `${path} is not an array`;
    for (const [i, x] of v.entries()) {
      const problem = item(x, `${path}[${i}]`);
      if (problem) return problem;
    }
    return null;
  };

/** The fields of each kernel message the panel reads. */
const outputRule = object({
  id: str,
  stdout: str,
  stderr: str,
  result: nullable(str),
  error: nullable(str),
  truncated: bool,
});
const kernelRules: { [T in KernelMessage['type']]: Rule } = {
  state: object({
    state: object({
      time: str,
      cluster: nullable(
        object({ controller: str, launcher: nullable(str), started: nullable(str), uptime: num }),
      ),
      engines: array(
        object({
          id: num,
          host: str,
          pid: num,
          status: oneOf(ENGINE_STATUSES),
          queue: num,
          completed: num,
          currentTask: nullable(str),
          replacedBy: nullable(num),
          cpu: nullable(num),
          memory: nullable(num),
        }),
      ),
      tasks: array(
        object({
          id: str,
          view: oneOf(VIEW_KINDS),
          engine: nullable(num),
          label: nullable(str),
          state: oneOf(TASK_STATES),
          submitted: str,
          started: nullable(str),
          completed: nullable(str),
          resultPreview: nullable(str),
          errorPreview: nullable(str),
          map: nullable(num),
        }),
      ),
      targets: str,
      views: array(
        object({
          id: num,
          kind: oneOf(VIEW_KINDS),
          targets: (v, path) => (v === 'all' ? null : nullable(array(num))(v, path)),
          tasks: num,
        }),
      ),
      maps: array(object({ id: num, view: oneOf(VIEW_KINDS), total: num, done: num, failed: num })),
    }),
  }),
  reply: (v, path) => {
    const ok = (v as { ok?: unknown } | null)?.ok;
    return object(
      ok === false
        ? { requestId: str, ok: bool, error: str }
        : {
            requestId: str,
            ok: bool,
            output: (o, p) => (o === undefined ? null : outputRule(o, p)),
          },
    )(v, path);
  },
};

/**
 * Checks what the kernel sent; throws `TypeError` naming the first field the panel cannot read.
 * Past this point the message is trusted to match its type.
 */
export function parseKernelMessage(data: unknown): KernelMessage {
  const type = (data as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !Object.hasOwn(kernelRules, type)) {
    throw new TypeError(
      `unknown kernel message ${JSON.stringify(type)}; known: ${Object.keys(kernelRules).join(', ')}`,
    );
  }
  const problem = kernelRules[type as KernelMessage['type']](data, 'message');
  if (problem) throw new TypeError(`${type}: ${problem}`);
  return data as KernelMessage;
}

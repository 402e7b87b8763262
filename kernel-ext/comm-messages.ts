/**
 * The messages between the kernel and the JupyterLab panel, over a Jupyter comm with target
 * `tsparallel`. The panel opens the comm; the kernel answers with `state` at once and again
 * whenever the cluster, its engines or its tasks change. The panel sends commands; each gets a
 * `reply` carrying the command's `requestId`. This file depends only on the dependency-free
 * checks of `protocol/validate`, so that the lab extension can import it as it is.
 */
import {
  arrayOf,
  bool,
  explain,
  is,
  isObject,
  nullable,
  num,
  obj,
  oneOf,
  optional,
  recordOf,
  shape,
  str,
  type Check,
} from '../protocol/validate';

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
export interface PanelEngine {
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
  /** What the engine declared it holds for tasks that ask (`{ cpu: 1, gpu: 1 }`). */
  resources: Record<string, number>;
  /** Of those, what the tasks it holds occupy now; a resource not named is free. */
  resourcesInUse: Record<string, number>;
}

/** One task this kernel sent (from `%px` or from a view in a code cell). */
export interface PanelTask {
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
  /** The map it is part of, if any (`PanelMap.id`). */
  map: number | null;
  /** How many times it published data (`publish(data)`); its output holds the latest. */
  published: number;
  /**
   * The tasks it waits for that have not finished (through `after`/`follow`, or whose results
   * are its arguments), with their labels where they had one; empty once it runs.
   */
  waitsFor: { id: string; label: string | null }[];
}

/** A view's `map`: how many of its tasks have finished. */
export interface PanelMap {
  /** Numbers maps in the order they were sent. */
  id: number;
  view: (typeof VIEW_KINDS)[number];
  total: number;
  done: number;
  failed: number;
}

/** An actor (`lv.actor(Class)`), whose method calls the views list shows as a view of their own. */
export interface PanelActor {
  /** The name of its class. */
  className: string;
  /** The engine it lives on; another one after a restart. */
  engine: number;
  /** Its calls that finished, well or not. */
  calls: number;
}

/** A view that code or `%px` sent tasks through. */
export interface PanelView {
  /** Numbers views in the order they were first used. */
  id: number;
  kind: (typeof VIEW_KINDS)[number];
  /** The engines it may use: `all`, ids, or null for any (load-balanced without targets). */
  targets: 'all' | number[] | null;
  /** Tasks sent through it. */
  tasks: number;
  /** For an actor's calls: the actor; null for a view. */
  actor: PanelActor | null;
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
  /** The latest data the task published (`publish(data)`) as text; null when it published none. */
  data: string | null;
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
  engines: PanelEngine[];
  /** The latest tasks, oldest first (bounded). */
  tasks: PanelTask[];
  /** What `%px` runs on. */
  targets: TargetsState;
  views: PanelView[];
  /** The latest maps, oldest first (bounded). */
  maps: PanelMap[];
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

const count = is((v) => Number.isInteger(v) && (v as number) >= 0, 'a whole number');
const positive = is((v) => Number.isInteger(v) && (v as number) > 0, 'a whole number above 0');

/** What each command needs besides `type` and `requestId`. */
const commandChecks: { [T in PanelCommand['type']]: Check } = {
  'cluster:start': shape({ engines: count, launcher: optional(str) }),
  'cluster:stop': obj,
  'engine:add': shape({ count: positive }),
  'cluster:scale': shape({ engines: count }),
  'engine:stop': shape({ id: count }),
  'engine:restart': shape({ id: count }),
  'engine:interrupt': shape({ id: count }),
  'task:abort': shape({ id: str }),
  'task:output': shape({ id: str }),
  'tasks:clear': obj,
  'targets:set': shape({ targets: str }),
};

/**
 * Checks what the panel sent; throws `TypeError` naming the problem. Past this point the
 * command is trusted to match its type.
 */
export function parsePanelMessage(data: unknown): PanelMessage {
  const d = isObject(data) ? data : {};
  if (typeof d.requestId !== 'string') throw new TypeError('a panel command needs a requestId');
  const type = d.type;
  if (typeof type !== 'string' || !Object.hasOwn(commandChecks, type)) {
    throw new TypeError(
      `unknown panel command ${JSON.stringify(type)}; known: ${Object.keys(commandChecks).join(', ')}`,
    );
  }
  const problem = commandChecks[type as PanelCommand['type']](d);
  if (problem) throw new TypeError(`${type}: ${explain(problem, 'command')}`);
  return d as PanelMessage;
}

/** The fields of each kernel message the panel reads. */
const outputCheck = shape({
  id: str,
  stdout: str,
  stderr: str,
  result: nullable(str),
  error: nullable(str),
  data: nullable(str),
  truncated: bool,
});
const replyOk = shape({ requestId: str, ok: bool, output: optional(outputCheck) });
const replyFailed = shape({ requestId: str, ok: bool, error: str });
const kernelChecks: { [T in KernelMessage['type']]: Check } = {
  state: shape({
    state: shape({
      time: str,
      cluster: nullable(
        shape({ controller: str, launcher: nullable(str), started: nullable(str), uptime: num }),
      ),
      engines: arrayOf(
        shape({
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
          resources: recordOf(num),
          resourcesInUse: recordOf(num),
        }),
      ),
      tasks: arrayOf(
        shape({
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
          published: count,
          waitsFor: arrayOf(shape({ id: str, label: nullable(str) })),
        }),
      ),
      targets: str,
      views: arrayOf(
        shape({
          id: num,
          kind: oneOf(VIEW_KINDS),
          targets: (v) => (v === 'all' ? null : nullable(arrayOf(num))(v)),
          tasks: num,
          actor: nullable(shape({ className: str, engine: num, calls: count })),
        }),
      ),
      maps: arrayOf(
        shape({ id: num, view: oneOf(VIEW_KINDS), total: num, done: num, failed: num }),
      ),
    }),
  }),
  reply: (v) => (isObject(v) && v.ok === false ? replyFailed(v) : replyOk(v)),
};

/**
 * Checks what the kernel sent; throws `TypeError` naming the first field the panel cannot read.
 * Past this point the message is trusted to match its type.
 */
export function parseKernelMessage(data: unknown): KernelMessage {
  const type = isObject(data) ? data.type : undefined;
  if (typeof type !== 'string' || !Object.hasOwn(kernelChecks, type)) {
    throw new TypeError(
      `unknown kernel message ${JSON.stringify(type)}; known: ${Object.keys(kernelChecks).join(', ')}`,
    );
  }
  const problem = kernelChecks[type as KernelMessage['type']](data);
  if (problem) throw new TypeError(`${type}: ${explain(problem, 'message')}`);
  return data as KernelMessage;
}

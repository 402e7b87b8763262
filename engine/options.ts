/**
 * Everything an engine can be told, once: `EngineServer.start` resolves these, `tsparallel engine`
 * offers them as flags, and a cluster's launcher writes an engine's command line from them.
 * A new option is one entry below (and its use).
 */
import { custom, defineOptions, flag, integer, string, type SpecsOf } from '../options/schema';
import { placeOptions, type PlaceOptions } from '../protocol/connection';
import { DEFAULT_RESOURCES, resourcesOption, type Resources } from '../protocol/resources';

/**
 * What `EngineServer.start` takes; `tsparallel engine` takes the same as flags.
 * @example await EngineServer.start({ connectionFile, log: console.error })
 */
export interface EngineOptions extends PlaceOptions {
  /** The controller's engine connection file; default the one of `profile` and `clusterId`. */
  connectionFile?: string;
  /** Milliseconds to wait for the controller to answer registration; default 30000. */
  registrationTimeout?: number;
  /**
   * Milliseconds without the controller after which the engine exits; until then it waits for
   * the controller to come back (restarted) and registers again. Default 60000.
   */
  hubTimeout?: number;
  /** The engine set a cluster's launcher started this engine in; reported at registration. */
  engineSet?: string;
  /** Exit when the process that started this one ends, even while user code runs. */
  exitWithParent?: boolean;
  /**
   * One of many engines in this process, for clusters larger than the machine: it beats from
   * the main thread instead of a thread of its own and leaves the process alone (signals,
   * stdout and stderr, exit). Its tasks share the process's namespace with the other engines',
   * their console output is not captured, and a busy task delays its heartbeats.
   */
  lightweight?: boolean;
  /**
   * What the engine holds for tasks that ask for resources (`{ gpu: 1, mem: 8e9 }`); one CPU
   * unless `cpu` is named. Default `{ cpu: 1 }`.
   */
  resources?: Resources;
  /** Where the engine's log lines go. */
  log: (line: string) => void;
}

/** `EngineOptions`' schema. */
export const engineOptions = defineOptions('engine', {
  connectionFile: {
    kind: string('<path>'),
    flag: '--file',
    help: "the controller's engine connection file (default: the profile's)",
  },
  ...placeOptions.specs,
  registrationTimeout: {
    kind: integer(1, '<ms>'),
    default: 30_000,
    help: 'milliseconds to wait for the controller',
  },
  hubTimeout: {
    kind: integer(1, '<ms>'),
    default: 60_000,
    help: 'milliseconds to wait for a controller that went away (to be restarted) before exiting',
  },
  engineSet: {
    kind: string('<id>'),
    help: "the launch this engine belongs to (used by clusters' launchers)",
  },
  exitWithParent: {
    kind: flag,
    default: false,
    help: 'exit when the parent process ends (used by clusters)',
  },
  lightweight: {
    kind: flag,
    default: false,
    cli: false,
    help: 'one of many engines in this process, sharing it',
  },
  resources: resourcesOption(
    'what the engine holds for tasks that ask, as name=amount pairs (cpu=4,gpu=1,mem=8G); one cpu unless cpu is named',
    { ...DEFAULT_RESOURCES },
  ),
  log: {
    kind: custom('a function', (v): v is (line: string) => void => typeof v === 'function'),
    required: true,
    cli: false,
    help: "where the engine's log lines go",
  },
} satisfies SpecsOf<EngineOptions>);

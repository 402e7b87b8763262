/**
 * What `Cluster.start` and `tsparallel cluster start` take, once: the flags, the defaults and the
 * checks come from here. The controller's own options are `controller/options.ts`'s.
 */
import { availableParallelism } from 'node:os';
import type { ControllerSettings } from '../controller/options';
import { clusterIdSpec, placeOptions } from '../protocol/connection';
import { resourcesOption, type Resources } from '../protocol/resources';
import {
  custom,
  defineOptions,
  flag,
  integer,
  jsonObject,
  oneOf,
  type SpecsOf,
} from '../options/schema';
import {
  launcherNames,
  type EngineLaunch,
  type LauncherName,
  type LauncherOptionsMap,
} from './launchers';

/**
 * What `Cluster.start` can be told; `tsparallel cluster start` takes the same as flags.
 * @example await Cluster.start({ engines: 4, launcher: 'ssh', launcherOptions: { hosts: ['node1'] } })
 */
export interface ClusterOptions<L extends LauncherName = LauncherName> {
  /** Number of engines; default one per core. */
  engines?: number;
  /** How engines start: `local` (default), `mpi`, `ssh`, `slurm`, `pbs`, `sge` or `lsf`. */
  launcher?: L;
  /** The launcher's options; see the README's section on each launcher. */
  launcherOptions?: LauncherOptionsMap[L];
  /** Profile whose files to use; default `default`. */
  profile?: string;
  /** Names the cluster, so several can share a profile; default a fresh id. */
  clusterId?: string;
  /** The controller's options (`tsparallel controller --help` lists them). */
  controller?: ControllerSettings;
  /** Start in the background: the processes outlive this one. Default false. */
  daemonize?: boolean;
  /** Milliseconds to wait for the controller and each batch of engines; default 30000. */
  timeout?: number;
  /** Start a new engine in place of one that dies, at most n times a minute; default 0, not with `daemonize`. */
  restartEngines?: number;
  /**
   * What each engine declares it holds, for tasks that ask (`{ gpu: 1, mem: 8e9 }`); one CPU
   * unless `cpu` is named. `addEngines(n, { resources })` starts others differently.
   */
  resources?: Resources;
}

/** What `cluster.addEngines(n, options)` takes, and `tsparallel cluster engines --add`. */
export const engineLaunchOptions = defineOptions('addEngines', {
  resources: resourcesOption(
    "what the new engines hold, as name=amount pairs (cpu=4,gpu=1,mem=8G); default the cluster's",
  ),
} satisfies SpecsOf<EngineLaunch>);

/** The options of `Cluster.start`; the controller's own come as `controller` (`controller/options.ts`). */
export const clusterOptions = defineOptions(
  'cluster',
  {
    engines: {
      kind: integer(0),
      short: '-n',
      default: () => availableParallelism(),
      help: 'number of engines (default: one per core)',
    },
    launcher: {
      kind: oneOf(launcherNames),
      default: 'local' as LauncherName,
      help: 'how engines start',
    },
    launcherOptions: {
      kind: jsonObject<LauncherOptionsMap[LauncherName]>('{"hosts": ["node1"]}'),
      help: 'the launcher\'s options, e.g. \'{"hosts": ["node1"]}\' for ssh (see the README\'s section on each launcher)',
    },
    profile: placeOptions.specs.profile,
    clusterId: {
      ...clusterIdSpec,
      help: `${clusterIdSpec.help} (default: Cluster.start makes a fresh id; the command line means the profile's default cluster)`,
    },
    controller: {
      kind: custom(
        'an object of controller options',
        (v): v is ControllerSettings => typeof v === 'object' && v !== null,
      ),
      cli: false,
      help: 'the controller\'s options (the command line takes them as flags: see "tsparallel controller --help")',
    },
    daemonize: {
      kind: flag,
      default: false,
      help: 'start in the background and return (the processes outlive this one)',
    },
    timeout: {
      kind: integer(1, '<ms>'),
      default: 30_000,
      help: 'milliseconds to wait for the controller and each batch of engines',
    },
    restartEngines: {
      kind: integer(0),
      default: 0,
      help: 'start a new engine in place of one that dies, at most n times a minute (not with --daemonize)',
    },
    resources: resourcesOption(
      'what each engine holds for tasks that ask, as name=amount pairs (cpu=4,gpu=1,mem=8G); one cpu unless cpu is named',
    ),
  } satisfies SpecsOf<ClusterOptions>,
  (o, name) =>
    o.restartEngines > 0 && o.daemonize
      ? `${name('restartEngines')} needs the process that started the cluster to keep running, ` +
        `as it replaces the engines; drop ${name('daemonize')} or ${name('restartEngines')}`
      : undefined,
);

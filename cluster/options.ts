/**
 * What `Cluster.start` and `tsparallel cluster start` take, once: the flags, the defaults and the
 * checks come from here. The controller's own options are `controller/options.ts`'s.
 */
import { availableParallelism } from 'node:os';
import { fileNameProblem, placeOptions, type ControllerSettings } from '../controller/options';
import {
  custom,
  defineOptions,
  flag,
  integer,
  jsonObject,
  oneOf,
  string,
  type Given,
} from '../options/schema';
import { launcherNames, type LauncherName, type LauncherOptionsMap } from './launchers';

/** The options of `Cluster.start`; the controller's own come as `controller` (`controller/options.ts`). */
export const clusterOptions = defineOptions('cluster', {
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
    kind: jsonObject<object>('{"hosts": ["node1"]}'),
    help: 'the launcher\'s options, e.g. \'{"hosts": ["node1"]}\' for ssh (see the README\'s section on each launcher)',
  },
  profile: placeOptions.specs.profile,
  clusterId: {
    kind: string('<id>'),
    check: fileNameProblem,
    help: 'names the cluster, so several can share a profile',
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
});

/** What `Cluster.start` can be told. */
export type ClusterOptions<L extends LauncherName = LauncherName> = Omit<
  Given<typeof clusterOptions.specs>,
  'launcher' | 'launcherOptions'
> & {
  /** How engines start: `local` (default), `mpi`, `ssh`, `slurm`, `pbs`, `sge` or `lsf`. */
  launcher?: L;
  /** The launcher's options; see the README's section on each launcher. */
  launcherOptions?: LauncherOptionsMap[L];
};

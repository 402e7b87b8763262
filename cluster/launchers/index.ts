/**
 * The launchers by name, and the one typed object of options each takes
 * (`Cluster.start({ launcher: 'slurm', launcherOptions: { partition: 'debug' } })`).
 */
import { BatchLauncher, type QueueOptions, type SlurmOptions } from './batch';
import { launcherNames, type LaunchContext, type Launcher, type LauncherName } from './launcher';
import { LocalLauncher, type LocalOptions } from './local';
import { MpiLauncher, type MpiOptions } from './mpi';
import { SshLauncher, type SshOptions } from './ssh';

export { renderBatchScript, DEFAULT_TEMPLATE, type BatchJob } from './batch';
export { launcherNames, type EngineSet, type LauncherName, Launcher } from './launcher';
export { LocalLauncher };
export type { LocalOptions, MpiOptions, SshOptions, SlurmOptions, QueueOptions };

/** Each launcher's options. */
export interface LauncherOptionsMap {
  local: LocalOptions;
  mpi: MpiOptions;
  ssh: SshOptions;
  slurm: SlurmOptions;
  pbs: QueueOptions;
  sge: QueueOptions;
  lsf: QueueOptions;
}

/** The launcher called `name`; throws naming an unknown launcher or option. */
export function createLauncher(
  name: LauncherName,
  options: object | undefined,
  context: LaunchContext,
): Launcher {
  const o = options ?? {};
  if (typeof o !== 'object' || o === null || Array.isArray(o)) {
    throw new TypeError(`launcherOptions must be an object of ${name} launcher options`);
  }
  switch (name) {
    case 'local':
      return new LocalLauncher(context, o as LocalOptions);
    case 'mpi':
      return new MpiLauncher(context, o as MpiOptions);
    case 'ssh':
      return new SshLauncher(context, o as SshOptions);
    case 'slurm':
    case 'pbs':
    case 'sge':
    case 'lsf':
      return new BatchLauncher(name, context, o);
    default:
      throw new RangeError(
        `launcher "${String(name)}" is unknown; the launchers are ${launcherNames.join(', ')}`,
      );
  }
}

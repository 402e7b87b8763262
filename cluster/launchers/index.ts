/**
 * The launchers by name: each is one row of `launchers`, its options' schema and how to make it
 * (`Cluster.start({ launcher: 'slurm', launcherOptions: { partition: 'debug' } })`). A new
 * launcher is its file and a row here; a new batch system is a row of `batch.ts`'s `systems`.
 */
import type { OptionSchema } from '../../options/schema';
import { batchLaunchers, type QueueOptions, type SlurmOptions } from './batch';
import type { LaunchContext, Launcher, LauncherRow } from './launcher';
import { LocalLauncher, localOptions, type LocalOptions } from './local';
import { MpiLauncher, mpiOptions, type MpiOptions } from './mpi';
import { SshLauncher, sshOptions, type SshOptions } from './ssh';

export { renderBatchScript, DEFAULT_TEMPLATE, type BatchJob } from './batch';
export { type EngineLaunch, type EngineSet, Launcher } from './launcher';
export { LocalLauncher };
export type { LocalOptions, MpiOptions, SshOptions, SlurmOptions, QueueOptions };

function row<O>(
  options: OptionSchema,
  create: (context: LaunchContext, options: O) => Launcher,
): LauncherRow<O> {
  return { options, create };
}

const launchers = {
  local: row<LocalOptions>(localOptions, (context, o) => new LocalLauncher(context, o)),
  mpi: row<MpiOptions>(mpiOptions, (context, o) => new MpiLauncher(context, o)),
  ssh: row<SshOptions>(sshOptions, (context, o) => new SshLauncher(context, o)),
  ...batchLaunchers,
};

/** How engines can start: `local`, `mpi`, `ssh` or a batch system. */
export type LauncherName = keyof typeof launchers;

/** The launchers `Cluster.start({ launcher })` knows. */
export const launcherNames = Object.keys(launchers) as readonly LauncherName[];

/** Each launcher's options. */
export type LauncherOptionsMap = {
  [K in LauncherName]: (typeof launchers)[K] extends LauncherRow<infer O> ? O : never;
};

/** The launcher called `name`; throws naming an unknown launcher or option. */
export function createLauncher(
  name: LauncherName,
  options: object | undefined,
  context: LaunchContext,
): Launcher {
  if (!Object.hasOwn(launchers, name)) {
    throw new RangeError(
      `launcher "${String(name)}" is unknown; the launchers are ${launcherNames.join(', ')}`,
    );
  }
  // Each launcher checks its options against its schema (an object, no unknown names).
  return (launchers[name] as LauncherRow<object>).create(context, options ?? {});
}

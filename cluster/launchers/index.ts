/**
 * The launchers by name: each is one row of `launchers`, its options' schema and how to make it
 * (`Cluster.start({ launcher: 'slurm', launcherOptions: { partition: 'debug' } })`). A new
 * launcher is its file and a row here.
 */
import type { Given, OptionSchema, OptionSpecs } from '../../options/schema';
import { BatchLauncher, batchOptions, type QueueOptions, type SlurmOptions } from './batch';
import type { LaunchContext, Launcher } from './launcher';
import { LocalLauncher, localOptions, type LocalOptions } from './local';
import { MpiLauncher, mpiOptions, type MpiOptions } from './mpi';
import { SshLauncher, sshOptions, type SshOptions } from './ssh';

export { renderBatchScript, DEFAULT_TEMPLATE, type BatchJob } from './batch';
export { type EngineSet, Launcher } from './launcher';
export { LocalLauncher };
export type { LocalOptions, MpiOptions, SshOptions, SlurmOptions, QueueOptions };

/** A launcher's options and its constructor. */
interface LauncherRow<S extends OptionSpecs> {
  options: OptionSchema<S>;
  create(context: LaunchContext, options: Given<S>): Launcher;
}

function row<S extends OptionSpecs>(
  options: OptionSchema<S>,
  create: (context: LaunchContext, options: Given<S>) => Launcher,
): LauncherRow<S> {
  return { options, create };
}

const launchers = {
  local: row(localOptions, (context, o) => new LocalLauncher(context, o)),
  mpi: row(mpiOptions, (context, o) => new MpiLauncher(context, o)),
  ssh: row(sshOptions, (context, o) => new SshLauncher(context, o)),
  slurm: row(batchOptions.slurm, (context, o) => new BatchLauncher('slurm', context, o)),
  pbs: row(batchOptions.pbs, (context, o) => new BatchLauncher('pbs', context, o)),
  sge: row(batchOptions.sge, (context, o) => new BatchLauncher('sge', context, o)),
  lsf: row(batchOptions.lsf, (context, o) => new BatchLauncher('lsf', context, o)),
};

/** How engines can start: `local`, `mpi`, `ssh` or a batch system. */
export type LauncherName = keyof typeof launchers;

/** The launchers `Cluster.start({ launcher })` knows. */
export const launcherNames = Object.keys(launchers) as readonly LauncherName[];

/** Each launcher's options. */
export type LauncherOptionsMap = {
  [K in LauncherName]: (typeof launchers)[K] extends LauncherRow<infer S> ? Given<S> : never;
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
  return (launchers[name] as LauncherRow<OptionSpecs>).create(context, options ?? {});
}

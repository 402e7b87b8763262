/**
 * Engines as the ranks of one `mpiexec -n N` job per launch. Each engine learns its rank and the
 * job's size from the environment `mpiexec` gives it (`mpi` in its namespace, `EngineInfo.mpi`).
 */
import {
  defineOptions,
  resolveOptions,
  string,
  strings,
  type Resolved,
  type SpecsOf,
} from '../../options/schema';
import {
  Launcher,
  remoteCommandOptions,
  type EngineLaunch,
  type EngineSet,
  type LaunchContext,
  type RemoteCommand,
} from './launcher';

/**
 * Options of the `mpi` launcher.
 * @example await Cluster.start({ launcher: 'mpi', launcherOptions: { args: ['--hostfile', 'hosts'] } })
 */
export interface MpiOptions extends RemoteCommand {
  /** The `mpiexec` to run; default `mpiexec` on PATH. */
  mpiexec?: string;
  /** More `mpiexec` arguments, before the engine's command: `['--hostfile', 'hosts']`. */
  args?: string[];
}

/** `MpiOptions`' schema. */
export const mpiOptions = defineOptions('mpi launcher', {
  mpiexec: { kind: string('<path>'), help: 'the `mpiexec` to run (default `mpiexec` on PATH)' },
  args: {
    kind: strings,
    help: "more `mpiexec` arguments, before the engine's command: `['--hostfile', 'hosts']`",
  },
  ...remoteCommandOptions.specs,
} satisfies SpecsOf<MpiOptions>);

/**
 * Starts engines with `mpiexec`; see the file's comment. Signals go to `mpiexec`: Open MPI passes
 * SIGUSR1 and SIGUSR2 on, and ends the job on SIGTERM.
 */
export class MpiLauncher extends Launcher {
  private readonly options: Resolved<typeof mpiOptions.specs>;

  constructor(context: LaunchContext, options: MpiOptions = {}) {
    super('mpi', context);
    this.options = resolveOptions(mpiOptions, options);
  }

  async start(n: number, launch: EngineLaunch = {}): Promise<EngineSet[]> {
    if (n === 0) return [];
    const set = this.newSet(n, launch);
    // Ranks other than 0 have no stdin, so they cannot watch this process through it: they end
    // when the controller (which does) is gone.
    const engine = this.engineCommand(set, this.context.engineFile, this.options, false);
    const mpiexec = this.options.mpiexec ?? 'mpiexec';
    const child = this.spawnLogged(
      mpiexec,
      ['-n', String(n), ...(this.options.args ?? []), ...engine],
      this.logFile(`mpi-${set.id}`),
      openMpiEnvironment(),
    );
    if (child.pid === undefined) {
      throw new Error(`cannot run ${mpiexec}: is an MPI (Debian: openmpi-bin) installed?`);
    }
    set.pids.push(child.pid);
    return [set];
  }
}

/**
 * Open MPI's defaults refuse two things engines need: more ranks than cores (engines mostly wait,
 * so a machine holds more of them than cores), and running as root (containers, CI). The
 * variables are Open MPI's own; other MPIs ignore them, and a user's setting wins.
 */
function openMpiEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { OMPI_MCA_rmaps_base_oversubscribe: '1' };
  if (process.getuid?.() === 0) {
    env.OMPI_ALLOW_RUN_AS_ROOT = '1';
    env.OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = '1';
  }
  return { ...env, ...process.env };
}

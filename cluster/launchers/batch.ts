/**
 * Engines as a job of a batch scheduler: Slurm, PBS, SGE or LSF. Each launch submits one job
 * array with one engine per array task, from a script rendered from a template (one template,
 * each system's directives); the scheduler decides where and when the engines run. The engines
 * read the connection file from the path the controller wrote it to, so the nodes need to share
 * that file system (as home directories on clusters do).
 *
 * Slurm is tested against a real single-node Slurm; PBS, SGE and LSF scripts are unit-tested,
 * and their job commands follow those systems' manuals.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import {
  defineOptions,
  resolveOptions,
  string,
  strings,
  type OptionSpec,
  type SpecsOf,
} from '../../options/schema';
import {
  Launcher,
  remoteCommandOptions,
  run,
  runOk,
  shellQuote,
  type EngineLaunch,
  type EngineSet,
  type LaunchContext,
  type LauncherRow,
  type RemoteCommand,
} from './launcher';

/** Options every batch launcher takes, after the system's own. */
export interface BatchOptions extends RemoteCommand {
  /** Wall-clock limit in the system's own format (Slurm `1:00:00`, PBS `01:00:00`, LSF `60`). */
  time?: string;
  /** The account (project) the job is charged to. */
  account?: string;
  /** More directives, one per line, without the prefix: `['--mem=2G']` becomes `#SBATCH --mem=2G`. */
  directives?: string[];
  /** Your own script, with `{directives}` and `{command}` (see `DEFAULT_TEMPLATE`). */
  template?: string;
}

/**
 * Options of the `slurm` launcher.
 * @example await Cluster.start({ launcher: 'slurm', launcherOptions: { partition: 'debug', time: '1:00:00' } })
 */
export interface SlurmOptions extends BatchOptions {
  /** The partition the job runs in. */
  partition?: string;
}

/**
 * Options of the `pbs`, `sge` and `lsf` launchers.
 * @example await Cluster.start({ launcher: 'pbs', launcherOptions: { queue: 'short' } })
 */
export interface QueueOptions extends BatchOptions {
  /** The queue the job is submitted to. */
  queue?: string;
}

const batchCommon = {
  time: {
    kind: string('<time>'),
    help: "wall-clock limit in the system's own format (Slurm `1:00:00`, PBS `01:00:00`, LSF `60`)",
  },
  account: { kind: string('<name>'), help: 'the account (project) the job is charged to' },
  directives: {
    kind: strings,
    help: "more directives, one per line, without the prefix: `['--mem=2G']` becomes `#SBATCH --mem=2G`",
  },
  template: {
    kind: string('<script>'),
    help: 'your own script, with `{directives}` and `{command}` (see `DEFAULT_TEMPLATE`)',
  },
  ...remoteCommandOptions.specs,
} satisfies SpecsOf<BatchOptions>;

/** A string option that becomes a directive of the job script. */
type DirectiveSpec = OptionSpec<string> & { directive(value: string): string };

/** `QueueOptions.queue`, whose directive each system spells. */
const queue = (directive: (value: string) => string): DirectiveSpec => ({
  kind: string('<name>'),
  help: 'the queue the job is submitted to',
  directive,
});

/**
 * One batch system: the options it adds to `BatchOptions` (a directive each), the directives of
 * `time` and `account`, and its commands. A new system is one row of `systems`.
 */
interface BatchSystem<O extends BatchOptions> {
  own: { [K in Exclude<keyof O, keyof BatchOptions>]-?: DirectiveSpec };
  time(value: string): string;
  account(value: string): string;
  prefix: string;
  /** Directives of every job: its name, one array task per engine, where output goes. */
  basics(job: { name: string; n: number; logDir: string }): string[];
  submit(path: string, script: string): { command: string; args: string[]; input?: string };
  /** Picks the job id from the submit command's output. */
  jobId: RegExp;
  status(jobId: string): { command: string; args: string[] };
  /** How many of the job's array tasks are pending or running, from `status`'s output. */
  active(output: string): number;
  /** Absent where the system cannot signal a job's tasks. */
  signal?(jobId: string, signal: string): { command: string; args: string[] };
  cancel(jobId: string): { command: string; args: string[] };
}

/** A row of `systems`, typed by its options. */
const system = <O extends BatchOptions>(row: BatchSystem<O>): BatchSystem<O> => row;

const lines = (s: string): string[] => s.split('\n').filter((l) => l.trim() !== '');

const systems = {
  slurm: system<SlurmOptions>({
    own: {
      partition: {
        kind: string('<name>'),
        help: 'the partition the job runs in',
        directive: (v) => `--partition=${v}`,
      },
    },
    time: (v) => `--time=${v}`,
    account: (v) => `--account=${v}`,
    prefix: '#SBATCH',
    basics: ({ name, n, logDir }) => [
      `--job-name=${name}`,
      `--array=0-${n - 1}`,
      `--output=${join(logDir, `${name}-%a.log`)}`,
    ],
    submit: (path) => ({ command: 'sbatch', args: ['--parsable', path] }),
    jobId: /^(\d+)/,
    // One line per array task (--array), pending ones too; nothing once the job has ended.
    status: (id) => ({ command: 'squeue', args: ['--noheader', '--array', '--jobs', id] }),
    active: (out) => lines(out).length,
    // --full: the engine is the batch step's own process (the script execs it).
    signal: (id, signal) => ({ command: 'scancel', args: ['--full', `--signal=${signal}`, id] }),
    cancel: (id) => ({ command: 'scancel', args: [id] }),
  }),
  pbs: system<QueueOptions>({
    own: { queue: queue((v) => `-q ${v}`) },
    time: (v) => `-l walltime=${v}`,
    account: (v) => `-A ${v}`,
    prefix: '#PBS',
    basics: ({ name, n, logDir }) => [`-N ${name}`, `-J 0-${n - 1}`, '-j oe', `-o ${logDir}/`],
    submit: (path) => ({ command: 'qsub', args: [path] }),
    jobId: /^(\S+)/,
    // Subjobs, one per line, with their state in the fifth column.
    status: (id) => ({ command: 'qstat', args: ['-t', id] }),
    active: (out) => lines(out).filter((l) => /\]\S*\s.*\s[QRHW]\s/.test(l)).length,
    signal: (id, signal) => ({ command: 'qsig', args: ['-s', signal, id] }),
    cancel: (id) => ({ command: 'qdel', args: [id] }),
  }),
  sge: system<QueueOptions>({
    own: { queue: queue((v) => `-q ${v}`) },
    time: (v) => `-l h_rt=${v}`,
    account: (v) => `-A ${v}`,
    prefix: '#$',
    basics: ({ name, n, logDir }) => [`-N ${name}`, `-t 1-${n}`, '-j y', `-o ${logDir}/`],
    submit: (path) => ({ command: 'qsub', args: ['-terse', path] }),
    jobId: /^(\d+)/,
    status: (id) => ({ command: 'qstat', args: ['-j', id] }),
    // `qstat -j` knows the job until its last task ends; tasks are not listed one by one.
    active: (out) => (/job_number/.test(out) ? Infinity : 0),
    cancel: (id) => ({ command: 'qdel', args: [id] }),
  }),
  lsf: system<QueueOptions>({
    own: { queue: queue((v) => `-q ${v}`) },
    time: (v) => `-W ${v}`,
    account: (v) => `-P ${v}`,
    prefix: '#BSUB',
    basics: ({ name, n, logDir }) => [`-J ${name}[1-${n}]`, `-o ${logDir}/${name}-%I.log`],
    // bsub reads the script's directives only from its stdin.
    submit: (_path, script) => ({ command: 'bsub', args: [], input: script }),
    jobId: /Job <(\d+)>/,
    status: (id) => ({ command: 'bjobs', args: ['-noheader', '-o', 'stat', id] }),
    active: (out) => lines(out).filter((l) => /PEND|RUN|SUSP/.test(l)).length,
    signal: (id, signal) => ({ command: 'bkill', args: ['-s', signal, id] }),
    cancel: (id) => ({ command: 'bkill', args: [id] }),
  }),
};

/** The batch systems tsparallel renders job scripts for. */
export type BatchSystemName = keyof typeof systems;

/** The options of batch system `N`'s launcher. */
type OptionsOf<N extends BatchSystemName> =
  (typeof systems)[N] extends BatchSystem<infer O> ? O : never;

/** A batch system's launcher row: its schema is the system's own options and `BatchOptions`. */
const batchLauncher = (name: BatchSystemName): LauncherRow<BatchOptions> => ({
  options: defineOptions(`${name} launcher`, { ...systems[name].own, ...batchCommon }),
  create: (context, options) => new BatchLauncher(name, context, options),
});

/** A launcher row per batch system, derived from `systems`. */
export const batchLaunchers = Object.fromEntries(
  Object.keys(systems).map((name) => [name, batchLauncher(name as BatchSystemName)]),
) as { [N in BatchSystemName]: LauncherRow<OptionsOf<N>> };

/**
 * The script every batch job runs unless `template` says otherwise. `{directives}` becomes the
 * system's `#SBATCH`/`#PBS`/`#$`/`#BSUB` lines, `{command}` the engine's command line; also
 * known: `{name}` (the job's name) and `{n}` (engines in the job).
 */
export const DEFAULT_TEMPLATE = '#!/bin/sh\n{directives}\n\nexec {command}\n';

/** What `renderBatchScript` fills in. */
export interface BatchJob {
  /** The job's name, also in its log files' names. */
  name: string;
  /** Engines, one per array task. */
  n: number;
  /** Where the tasks' output goes. */
  logDir: string;
  /** One engine's command line. */
  command: string[];
}

/**
 * The job script for `system`: `options.template` (or `DEFAULT_TEMPLATE`) with its placeholders
 * filled in. Throws a `TypeError` naming an unknown option or placeholder.
 * @example renderBatchScript('slurm', job, { partition: 'debug', time: '1:00:00' })
 */
export function renderBatchScript(
  system: BatchSystemName,
  job: BatchJob,
  options: SlurmOptions | QueueOptions = {},
): string {
  const s: BatchSystem<BatchOptions> = systems[system];
  checkBatchOptions(system, options);
  const own = s.own as Record<string, DirectiveSpec>;
  const directive = (option: string, value: string): string | undefined =>
    option === 'time' || option === 'account'
      ? s[option](value)
      : Object.hasOwn(own, option)
        ? own[option].directive(value)
        : undefined;
  const directives = [
    ...s.basics(job),
    ...Object.entries(options).flatMap(([k, v]) =>
      typeof v === 'string' ? (directive(k, v) ?? []) : [],
    ),
    ...(options.directives ?? []),
  ].map((d) => `${s.prefix} ${d}`);
  const values: Record<string, string> = {
    directives: directives.join('\n'),
    command: job.command.map(shellQuote).join(' '),
    name: job.name,
    n: String(job.n),
  };
  return (options.template ?? DEFAULT_TEMPLATE).replace(/\{(\w+)\}/g, (_, key: string) => {
    if (!Object.hasOwn(values, key)) {
      throw new TypeError(
        `the ${system} template has an unknown placeholder {${key}}; it may use ${Object.keys(
          values,
        )
          .map((k) => `{${k}}`)
          .join(', ')}`,
      );
    }
    return values[key];
  });
}

function checkBatchOptions(system: BatchSystemName, options: BatchOptions): void {
  resolveOptions(batchLaunchers[system].options, options as Record<string, unknown>);
}

/** Submits engines as batch jobs; see the file's comment. */
export class BatchLauncher extends Launcher {
  private readonly system: BatchSystem<BatchOptions>;
  /** Each look is a command the scheduler answers: a few a second at most. */
  override readonly pollInterval = 250;

  constructor(
    name: BatchSystemName,
    context: LaunchContext,
    private readonly options: BatchOptions = {},
  ) {
    super(name, context);
    this.system = systems[name];
    checkBatchOptions(name, options);
  }

  async start(n: number, launch: EngineLaunch = {}): Promise<EngineSet[]> {
    if (n === 0) return [];
    const set = this.newSet(n, launch);
    const name = `tsparallel-${this.context.clusterId || 'default'}-${set.id}`;
    const script = renderBatchScript(
      this.name as BatchSystemName,
      {
        name,
        n,
        logDir: this.context.logDir,
        // Batch jobs outlive the process that submitted them; they end with the controller.
        command: this.engineCommand(set, this.context.engineFile, this.options, false),
      },
      this.options,
    );
    const path = this.logFile(`${set.id}-job`).replace(/\.log$/, '.sh');
    await fs.writeFile(path, script, { mode: 0o700 });
    const { command, args, input } = this.system.submit(path, script);
    const out = await runOk(command, args, { input });
    const id = this.system.jobId.exec(out.trim())?.[1];
    if (id === undefined) throw new Error(`cannot find the job id in ${command}'s answer: ${out}`);
    set.jobId = id;
    return [set];
  }

  override async status(set: EngineSet): Promise<number> {
    const { command, args } = this.system.status(set.jobId as string);
    // A job the scheduler no longer knows has ended (its status command then fails).
    const r = await run(command, args);
    return r.status === 0 ? Math.min(set.engines, this.system.active(r.stdout)) : 0;
  }

  /** SIGKILL cancels the job; so does SIGTERM where the system cannot signal tasks (SGE). */
  override async signal(set: EngineSet, signal: NodeJS.Signals): Promise<void> {
    const id = set.jobId as string;
    const send = this.system.signal;
    if (signal === 'SIGKILL' || (signal === 'SIGTERM' && !send)) {
      const { command, args } = this.system.cancel(id);
      await runOk(command, args);
    } else if (send) {
      const { command, args } = send(id, signal.slice(3));
      await runOk(command, args);
    } else {
      throw new Error(
        `${this.name} cannot send ${signal} to a job's tasks; rc.sendSignal() reaches the engines through the controller`,
      );
    }
  }
}

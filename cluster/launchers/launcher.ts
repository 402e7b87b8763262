/**
 * What every launcher does: start engines somewhere (this machine, `mpiexec`, SSH hosts, a batch
 * scheduler), report how many of them still run, signal them and stop them. A `Cluster` keeps the
 * engine sets a launcher returns in its state file, so that another process can stop them too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { engineOptions } from '../../engine/options';
import {
  defineOptions,
  string,
  toArgv,
  type OptionSchema,
  type SpecsOf,
} from '../../options/schema';
import { ConnectionError, TimeoutError } from '../../protocol/errors';
import type { Resources } from '../../protocol/resources';
import { RECEIVER_TUNABLES } from '../../protocol/shared-memory';

/** Engines that one launch started: a process each, one `mpiexec`, one batch job, ... */
export interface EngineSet {
  /** Engines of the set report it at registration (`EngineInfo.engine_set`). */
  id: string;
  /** The launcher's name (`LauncherName`). */
  launcher: string;
  /** Engines started in the set and not stopped since. */
  engines: number;
  /** Processes on this machine that belong to the set: engines, `mpiexec`, `ssh` clients. */
  pids: number[];
  /** The SSH host the set's engine runs on. */
  host?: string;
  /** The batch scheduler's id of the set's job. */
  jobId?: string;
  /** What each engine of the set declares it holds (`--resources`); one CPU when absent. */
  resources?: Resources;
}

/** What the engines of one launch are told besides where the controller is. */
export type EngineLaunch = Pick<EngineSet, 'resources'>;

/** What a launcher needs to know about the cluster it starts engines for. */
export interface LaunchContext {
  profile: string;
  clusterId: string;
  /** The controller's connection files on this machine. */
  clientFile: string;
  engineFile: string;
  /** Where the launcher's processes write their logs. */
  logDir: string;
  /** Processes outlive this one (the CLI's `--daemonize`). */
  daemonize: boolean;
}

/** Where `tsparallel` runs and how, wherever a launcher starts it: options of most launchers. */
export interface RemoteCommand {
  /** The Node.js binary; default this process's, which suits shared file systems. */
  node?: string;
  /** tsparallel's `dist/cli/main.js`; default this installation's. */
  cli?: string;
}

/** `RemoteCommand`'s schema. */
export const remoteCommandOptions = defineOptions('launcher', {
  node: {
    kind: string('<path>'),
    help: "the Node.js binary (default: this process's, which suits shared file systems)",
  },
  cli: {
    kind: string('<path>'),
    help: "tsparallel's `dist/cli/main.js` (default: this installation's)",
  },
} satisfies SpecsOf<RemoteCommand>);

/** A launcher by name: its options' schema and how to make it (`launchers/index.ts`). */
export interface LauncherRow<O> {
  options: OptionSchema;
  /** Makes the launcher; throws naming a bad option before anything starts. */
  create(context: LaunchContext, options: O): Launcher;
}

/** A controller process being started. */
export interface StartingController {
  process: ChildProcess;
  /** Resolves once the controller's connection files are on this machine. */
  ready: Promise<void>;
}

/** This installation's command-line entry point. */
export const CLI = join(__dirname, '..', '..', 'cli', 'main.js');

/** Starts, watches, signals and stops engine sets; see the file's comment. */
export abstract class Launcher {
  /**
   * Children of this process, held until they exit: a child's stdin pipe lives only as long as
   * its `ChildProcess`, and an engine whose pipe is collected reads end-of-file and exits as if
   * this process had died.
   */
  private readonly children = new Set<ChildProcess>();
  /** Milliseconds between looks at `status` while waiting for a set to end. */
  readonly pollInterval: number = 50;

  constructor(
    readonly name: string,
    protected readonly context: LaunchContext,
  ) {}

  /**
   * Starts `n` engines, told `launch`; resolves once they are launched (not yet registered).
   */
  abstract start(n: number, launch?: EngineLaunch): Promise<EngineSet[]>;

  /**
   * How many of the set's engines run or wait to run; 0 once the set has ended. Here: all of
   * them while a process of the set on this machine runs (an `mpiexec`, an `ssh` session, the
   * engine itself); a batch job asks its scheduler.
   */
  async status(set: EngineSet): Promise<number> {
    return set.pids.some(isAlive) ? set.engines : 0;
  }

  /** Sends `signal` to the set's processes on this machine (for a batch job: to its tasks). */
  async signal(set: EngineSet, signal: NodeJS.Signals): Promise<void> {
    killAll(set.pids, signal);
  }

  /**
   * Starts `tsparallel controller` with `flags`, on this machine unless the launcher places it
   * elsewhere; ready once it wrote its client file.
   */
  startController(flags: string[], timeout: number): StartingController {
    const args = [CLI, 'controller', ...flags];
    if (!this.context.daemonize) args.push('--exit-with-parent');
    const log = this.logFile('controller');
    const child = this.spawnLogged(process.execPath, args, log);
    const written = (): Promise<boolean> =>
      fs.access(this.context.clientFile).then(
        () => true,
        () => false,
      );
    return { process: child, ready: waitForController(child, written, log, timeout) };
  }

  /**
   * Ends the set: waits `grace` ms for it to end by itself (engines the controller shut down do),
   * then sends SIGTERM, and SIGKILL to whatever is left. Resolves once nothing of it runs.
   */
  async stop(set: EngineSet, grace: number): Promise<void> {
    for (const signal of [undefined, 'SIGTERM', 'SIGKILL'] as const) {
      if (signal) await this.signal(set, signal).catch(() => undefined);
      const deadline = performance.now() + grace;
      for (;;) {
        if ((await this.status(set)) === 0) return;
        if (performance.now() > deadline) break;
        await delay(this.pollInterval);
      }
    }
    throw new Error(`engine set ${set.id} (${set.launcher}) did not end, even on SIGKILL`);
  }

  /**
   * The command line of one engine of `set`, for `where` the engine runs. Without --daemonize,
   * engines whose stdin comes from this process end with it (`exitWithParent`).
   */
  protected engineCommand(
    set: EngineSet,
    file: string,
    where: RemoteCommand = {},
    exitWithParent = !this.context.daemonize,
  ): string[] {
    return [
      where.node ?? process.execPath,
      where.cli ?? CLI,
      'engine',
      ...toArgv(engineOptions, {
        connectionFile: file,
        engineSet: set.id,
        exitWithParent,
        resources: set.resources,
      }),
    ];
  }

  /** A new engine set's id: unique among the cluster's sets, and readable in `ps` and logs. */
  protected newSet(engines: number, extra: Partial<EngineSet> = {}): EngineSet {
    const id = `${this.name}-${Date.now().toString(36)}-${(setCounter++).toString(36)}`;
    return { id, launcher: this.name, engines, pids: [], ...extra };
  }

  /** The log file of a set's process on this machine. */
  protected logFile(name: string): string {
    mkdirSync(this.context.logDir, { recursive: true, mode: 0o700 });
    return join(this.context.logDir, `${this.context.clusterId || 'default'}-${name}.log`);
  }

  /**
   * The environment of engines on this machine, `RECEIVER_TUNABLES` for glibc's allocator. A
   * setting of the user's `GLIBC_TUNABLES` is kept, and wins.
   */
  protected engineEnvironment(): NodeJS.ProcessEnv {
    const given = process.env.GLIBC_TUNABLES;
    const added = RECEIVER_TUNABLES.filter((t) => !given?.includes(`${t.split('=')[0]}=`));
    if (added.length === 0) return process.env;
    return { ...process.env, GLIBC_TUNABLES: [...(given ? [given] : []), ...added].join(':') };
  }

  /**
   * Starts a process of the cluster with its output in `log`. It gets a process group of its
   * own: Ctrl-C in a terminal reaches this process, which stops the cluster in order, rather than
   * every child at once. Without --daemonize the pipe on its stdin closes when this process dies.
   */
  protected spawnLogged(
    command: string,
    args: string[],
    log: string,
    env: NodeJS.ProcessEnv = process.env,
  ): ChildProcess {
    const fd = openSync(log, 'a');
    const child = spawn(command, args, {
      stdio: [this.context.daemonize ? 'ignore' : 'pipe', fd, fd],
      detached: true,
      env,
    });
    closeSync(fd);
    if (this.context.daemonize) child.unref();
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    // A failed spawn (command not found) shows as an exit; the caller reports it.
    child.on('error', () => undefined);
    return child;
  }
}

let setCounter = 0;

/**
 * Resolves once `ready()` holds, asking every `interval` ms; fails fast when the controller's
 * `child` exits first, and after `timeout` ms.
 */
export async function waitForController(
  child: ChildProcess,
  ready: () => Promise<boolean>,
  log: string,
  timeout: number,
  interval = 20,
): Promise<void> {
  const deadline = performance.now() + timeout;
  while (!(await ready())) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new ConnectionError(
        `the controller exited (${child.exitCode ?? child.signalCode}) before writing its connection files; see its log ${log}`,
      );
    }
    if (performance.now() > deadline) {
      throw new TimeoutError(
        `the controller did not write its connection files within ${timeout} ms; see its log ${log}`,
      );
    }
    await delay(interval);
  }
}

/** True while process `pid` exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Sends `signal` to those of `pids` that still run. */
export function killAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Ended already.
    }
  }
}

/** Resolves when process `pid` has ended; rejects after `timeout` ms. */
export async function waitForExit(pid: number, timeout: number): Promise<void> {
  const deadline = performance.now() + timeout;
  while (isAlive(pid)) {
    if (performance.now() > deadline)
      throw new Error(`process ${pid} did not exit within ${timeout} ms`);
    await delay(20);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** What `run` resolves with. */
export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to its end (`ssh`, `sbatch`, `squeue`...), with `input` on its stdin. Rejects
 * when it cannot start or outlives `timeout` ms; a failing status is the caller's to judge.
 */
export function run(
  command: string,
  args: string[],
  options: { input?: string; timeout?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timeout = options.timeout ?? 30_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${timeout} ms`));
    }, timeout);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${e.message}; is it installed and on PATH?`));
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

/** Runs a command that must succeed; rejects with its stderr otherwise. */
export async function runOk(
  command: string,
  args: string[],
  options: { input?: string; timeout?: number } = {},
): Promise<string> {
  const r = await run(command, args, options);
  if (r.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} failed (status ${r.status}): ${r.stderr.trim() || r.stdout.trim()}`,
    );
  }
  return r.stdout;
}

/** Quotes `arg` for a POSIX shell (ssh and batch scripts run command lines through one). */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_\-+=.,/:@%]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

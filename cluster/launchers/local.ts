/**
 * The default launcher: the controller and each engine are processes on this machine.
 */
import type { ChildProcess } from 'node:child_process';
import {
  CLI,
  checkOptionNames,
  isAlive,
  killAll,
  Launcher,
  type EngineSet,
  type LaunchContext,
} from './launcher';

/** The local launcher takes no options. */
export type LocalOptions = Record<string, never>;

/** Starts engines (and the controller) as child processes; one engine set per engine. */
export class LocalLauncher extends Launcher {
  constructor(context: LaunchContext, options: LocalOptions = {}) {
    super('local', context);
    checkOptionNames('local launcher', options, []);
  }

  async start(n: number): Promise<EngineSet[]> {
    return Array.from({ length: n }, () => {
      const set = this.newSet(1);
      const [node, ...args] = this.engineCommand(set, this.context.engineFile);
      set.pids.push(this.spawnLogged(node, args, this.logFile(`engine-${set.id}`)).pid as number);
      return set;
    });
  }

  async status(set: EngineSet): Promise<number> {
    return set.pids.filter(isAlive).length;
  }

  async signal(set: EngineSet, signal: NodeJS.Signals): Promise<void> {
    killAll(set.pids, signal);
  }

  /** Starts `tsparallel controller` with `flags`. */
  startController(flags: string[]): ChildProcess {
    const args = [CLI, 'controller', ...flags];
    if (!this.context.daemonize) args.push('--exit-with-parent');
    return this.spawnLogged(process.execPath, args, this.logFile('controller'));
  }
}

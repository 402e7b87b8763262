/**
 * The default launcher: the controller and each engine are processes on this machine.
 */
import { promises as fs } from 'node:fs';
import {
  CLI,
  checkOptionNames,
  isAlive,
  killAll,
  Launcher,
  type EngineSet,
  type LaunchContext,
  type StartingController,
  waitForController,
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

  /** Starts `tsparallel controller` with `flags`; ready once it wrote its client file. */
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
}

/**
 * The default launcher: the controller and each engine are processes on this machine.
 */
import { defineOptions, resolveOptions, type SpecsOf } from '../../options/schema';
import { Launcher, type EngineLaunch, type EngineSet, type LaunchContext } from './launcher';

/** The local launcher takes no options. */
export type LocalOptions = Record<string, never>;

/** `LocalOptions`' schema. */
export const localOptions = defineOptions('local launcher', {} satisfies SpecsOf<LocalOptions>);

/** Starts engines as child processes; one engine set per engine. */
export class LocalLauncher extends Launcher {
  constructor(context: LaunchContext, options: LocalOptions = {}) {
    super('local', context);
    resolveOptions(localOptions, options);
  }

  async start(n: number, launch: EngineLaunch = {}): Promise<EngineSet[]> {
    return Array.from({ length: n }, () => {
      const set = this.newSet(1, launch);
      const [node, ...args] = this.engineCommand(set, this.context.engineFile);
      const log = this.logFile(`engine-${set.id}`);
      set.pids.push(this.spawnLogged(node, args, log, this.engineEnvironment()).pid as number);
      return set;
    });
  }
}

/** `tsparallel engine`: runs an engine that registers with a controller and runs its tasks. */
import type { Command } from 'commander';
import { placeOptions } from '../controller/options';
import { EngineServer } from '../engine/engine-server';
import { defineOptions, integer, string } from '../options/schema';
import { connectionFilePath } from '../protocol/connection';
import { addFlags, exitWithParentFlag, log, pick, resolveFlags } from './flags';

/** The engine command's flags. */
const engineFlags = defineOptions('engine', {
  file: {
    kind: string('<path>'),
    help: "the controller's engine connection file (default: the profile's)",
  },
  ...placeOptions.specs,
  registrationTimeout: {
    kind: integer(1, '<ms>'),
    default: 30_000,
    help: 'milliseconds to wait for the controller',
  },
  hubTimeout: {
    kind: integer(1, '<ms>'),
    default: 60_000,
    help: 'milliseconds to wait for a controller that went away (to be restarted) before exiting',
  },
  engineSet: {
    kind: string('<id>'),
    help: "the launch this engine belongs to (used by clusters' launchers)",
  },
});

/** Adds the `engine` command to `program`. */
export function engineCommand(program: Command): void {
  const command = program
    .command('engine')
    .description('run an engine that registers with a controller and runs its tasks');
  addFlags(command, engineFlags)
    .addOption(exitWithParentFlag())
    .action(async (flags: Record<string, unknown>) => {
      const o = resolveFlags(command, engineFlags, pick(engineFlags, flags));
      await EngineServer.start({
        connectionFile: o.file ?? connectionFilePath('engine', o),
        registrationTimeout: o.registrationTimeout,
        hubTimeout: o.hubTimeout,
        parentPid: flags.exitWithParent ? process.ppid : undefined,
        engineSet: o.engineSet,
        log: log('engine'),
      });
    });
}

/** `tsparallel engine`: runs an engine that registers with a controller and runs its tasks. */
import type { Command } from 'commander';
import { EngineServer } from '../engine/engine-server';
import { engineOptions } from '../engine/options';
import { addFlags, pick, resolveFlags } from '../options/commander';
import { log } from './flags';

/** Adds the `engine` command to `program`. */
export function engineCommand(program: Command): void {
  const command = program
    .command('engine')
    .description('run an engine that registers with a controller and runs its tasks');
  addFlags(command, engineOptions).action(async (flags: Record<string, unknown>) => {
    const given = { ...pick(engineOptions, flags), log: log('engine') };
    await EngineServer.start(resolveFlags(command, engineOptions, given));
  });
}

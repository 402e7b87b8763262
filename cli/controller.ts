/** `tsparallel controller`: runs the hub that engines register with and clients send tasks to. */
import { setFlagsFromString } from 'node:v8';
import type { Command } from 'commander';
import { ControllerServer } from '../controller/controller-server';
import { controllerOptions } from '../controller/options';
import { addFlags, pick, resolveFlags } from '../options/commander';
import { exitWithParent, exitWithParentFlag, log } from './flags';

/**
 * How far V8 lets the heap grow past what survived the last full collection before it collects
 * again. A burst of queued tasks makes the hub allocate fast, and V8 then lets the heap grow to
 * up to four times what is alive: 1.5 times keeps the controller's memory near what it holds,
 * for a few more collections. Set here, in the controller's own process: a library must not
 * change the V8 settings of the process using it.
 */
const CONTROLLER_HEAP_GROWTH = '--heap-growing-percent=50';

/** Adds the `controller` command to `program`. */
export function controllerCommand(program: Command): void {
  const command = program
    .command('controller')
    .description('run the hub that engines register with and clients send tasks to');
  addFlags(command, controllerOptions)
    .addOption(exitWithParentFlag())
    .action(async (flags: Record<string, unknown>) => {
      const options = resolveFlags(command, controllerOptions, pick(controllerOptions, flags));
      setFlagsFromString(CONTROLLER_HEAP_GROWTH);
      const starting = ControllerServer.start({ ...options, log: log('controller') });
      // Listened for before the server says it listens: a signal as it starts stops it then.
      // A failed start is reported where it is awaited below.
      const stop = (): void => void starting.then((server) => server.close()).catch(() => {});
      process.on('SIGINT', stop).on('SIGTERM', stop);
      if (flags.exitWithParent) exitWithParent(stop);
      await (
        await starting
      ).done;
      process.exit(0);
    });
}

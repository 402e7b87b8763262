/**
 * What the role commands share besides their flags (which `options/commander.ts` makes from
 * option schemas): the log line, and ending with the parent process.
 */
import { writeSync } from 'node:fs';
import { Option } from 'commander';
import { engineOptions } from '../engine/options';

/** Writes to fd 2 directly, past the engine's capture of `process.stderr` into task output. */
export const log = (role: string) => (line: string) =>
  writeSync(2, `${new Date().toISOString()} [${role}] ${line}\n`);

/** The engine option `--exit-with-parent`, which the controller command takes too. */
export const exitWithParentFlag = (): Option =>
  new Option('--exit-with-parent', engineOptions.specs.exitWithParent.help);

/** Ends `stop` when this process's parent dies (its end of our stdin pipe closes). */
export function exitWithParent(stop: () => void): void {
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

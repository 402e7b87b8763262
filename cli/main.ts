#!/usr/bin/env node
/**
 * The `tsparallel` command, the entry point of every role: `controller`, `engine`,
 * `cluster start|stop|list|engines`, `kernel install` and `lab install`, one file each.
 * A bad flag or value prints one sentence naming it and exits with status 2.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { clusterCommand } from './cluster';
import { controllerCommand } from './controller';
import { engineCommand } from './engine';
import { USAGE_ERROR } from '../options/commander';
import { kernelCommand } from './kernel';
import { labCommand } from './lab';

function buildProgram(): Command {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  const program = new Command('tsparallel')
    .description('Parallel computing for TypeScript: a controller, engines and clusters of them.')
    .version(pkg.version)
    .exitOverride()
    // One line: the problem, and where to read more.
    .configureOutput({ outputError: (s, write) => write(`${s.trimEnd()} (see --help)\n`) });
  for (const add of [controllerCommand, engineCommand, clusterCommand, kernelCommand, labCommand]) {
    add(program);
  }
  return program;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      const ok =
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help';
      process.exit(ok ? 0 : USAGE_ERROR);
    }
    process.stderr.write(`tsparallel: ${(e as Error).message}\n`);
    process.exit(1);
  }
}

if (require.main === module) void main();

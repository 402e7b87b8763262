/**
 * Option schemas as commander flags: a flag per option (`heartbeatPeriod` is
 * `--heartbeat-period <ms>`), its help and default from the schema, and its value checked by the
 * schema's kind and check. A bad value is one sentence naming the flag, and status 2.
 */
import { writeSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { engineOptions } from '../engine/options';
import {
  fault,
  flagName,
  flagNames,
  resolveOptions,
  type Given,
  type OptionSchema,
  type OptionSpec,
  type OptionSpecs,
  type Resolved,
} from '../options/schema';

/** The exit status of a command given a bad flag or value. */
export const USAGE_ERROR = 2;

/**
 * Adds a flag for each of the schema's command-line options; `defaults` overrides the schema's
 * where the command means another one.
 */
export function addFlags<S extends OptionSpecs>(
  command: Command,
  schema: OptionSchema<S>,
  defaults: Partial<Record<keyof S, unknown>> = {},
): Command {
  for (const [name, spec] of Object.entries(schema.specs)) {
    if (spec.cli !== false) command.addOption(flagOf(name, spec, defaults[name]));
  }
  return command;
}

function flagOf(name: string, spec: OptionSpec<unknown>, override: unknown): Option {
  const { kind } = spec;
  const long = flagName(name, spec);
  const flags = `${spec.short ? `${spec.short}, ` : ''}${long}${kind.arg ? ` ${kind.arg}` : ''}`;
  const option = new Option(flags, spec.help);
  if (kind.arg === undefined) return option; // a switch
  if (kind.choices) option.choices(kind.choices);
  else {
    option.argParser((text: string) => {
      const value = kind.parse ? kind.parse(text) : text;
      const f = fault(spec, value);
      if (f) {
        throw new InvalidArgumentError(
          f.reason ? `${long} ${f.reason}.` : `it must be ${f.expected}.`,
        );
      }
      return value;
    });
  }
  const fallback = override ?? spec.default;
  if (fallback !== undefined && typeof fallback !== 'function') option.default(fallback);
  return option;
}

/**
 * The command's options with the defaults filled in and the checks across options made; a
 * failed check ends the command with one sentence naming the flags, and status 2.
 */
export function resolveFlags<S extends OptionSpecs>(
  command: Command,
  schema: OptionSchema<S>,
  flags: Given<S>,
): Resolved<S> {
  try {
    return resolveOptions(schema, flags, flagNames(schema));
  } catch (e) {
    return command.error(`error: ${(e as Error).message}.`, { exitCode: USAGE_ERROR });
  }
}

/** The values of a schema's options among a command's parsed flags. */
export function pick<S extends OptionSpecs>(
  schema: OptionSchema<S>,
  flags: Record<string, unknown>,
): Given<S> {
  const picked: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(schema.specs)) {
    // Commander keys a value by its flag: `--file` gives `file`.
    const value = flags[new Option(flagName(name, spec)).attributeName()];
    if (value !== undefined) picked[name] = value;
  }
  return picked as Given<S>;
}

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

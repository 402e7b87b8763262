/**
 * Option schemas as commander flags, for the CLI's commands and the kernel's magics alike: a flag
 * per option (`heartbeatPeriod` is `--heartbeat-period <ms>`), its help and default from the
 * schema, and its value checked by the schema's kind and check. What a bad value says is the
 * caller's: the CLI's default is commander's sentence and status 2; a magic says its own.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
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
} from './schema';

/** The exit status of a command given a bad flag or value. */
export const USAGE_ERROR = 2;

/** What is wrong with a value: its option's own words, or what its kind takes. */
type Fault = NonNullable<ReturnType<typeof fault>>;

/**
 * The error a bad command-line value throws: `flag` as the user most likely wrote it (`-n`),
 * `text` the word given. Commander turns an `InvalidArgumentError` into its own sentence;
 * any other error leaves its parse as it is.
 */
export type BadValue = (flag: string, fault: Fault, text: string) => Error;

const commanderSays: BadValue = (flag, f) =>
  new InvalidArgumentError(f.reason ? `${flag} ${f.reason}.` : `it must be ${f.expected}.`);

/** How a command's flags come from a schema. */
export interface FlagSettings<S extends OptionSpecs> {
  /**
   * Defaults other than the schema's, where the command means another one; `false` for none at
   * all, so that the parsed flags are only those given (a magic's, over settings kept elsewhere).
   */
  defaults?: Partial<Record<keyof S, unknown>> | false;
  /** What a bad value throws; commander's own sentence unless given. */
  badValue?: BadValue;
}

/** Adds a flag for each of the schema's command-line options (two for a switch with a negation). */
export function addFlags<S extends OptionSpecs>(
  command: Command,
  schema: OptionSchema<S>,
  settings: FlagSettings<S> = {},
): Command {
  const defaults: Partial<Record<string, unknown>> | false = settings.defaults ?? {};
  const badValue = settings.badValue ?? commanderSays;
  for (const [name, spec] of Object.entries(schema.specs)) {
    if (spec.cli === false) continue;
    const fallback = defaults === false ? undefined : (defaults[name] ?? spec.default);
    command.addOption(flagOf(name, spec, fallback, badValue));
    if (spec.negation) command.addOption(negationOf(name, spec.negation));
  }
  return command;
}

function flagOf(
  name: string,
  spec: OptionSpec<unknown>,
  fallback: unknown,
  badValue: BadValue,
): Option {
  const { kind } = spec;
  const long = flagName(name, spec);
  const flags = `${spec.short ? `${spec.short}, ` : ''}${long}${kind.arg ? ` ${kind.arg}` : ''}`;
  const option = new Option(flags, spec.help);
  if (kind.arg === undefined) return option; // a switch
  if (kind.choices) option.choices(kind.choices);
  else option.argParser(valueParser(spec, spec.short ?? long, badValue));
  if (fallback !== undefined && typeof fallback !== 'function') option.default(fallback);
  return option;
}

/**
 * The flag that turns switch `name` off. `--no-stream` is commander's own negation of
 * `--stream`; another spelling (`--noblock`) is a flag of its own that `pick` reads as `false`
 * and that cannot be given with the switch.
 */
function negationOf(name: string, negation: { flag: string; help: string }): Option {
  const option = new Option(negation.flag, negation.help);
  return option.attributeName() === name ? option : option.conflicts(name);
}

/**
 * The parser of one option's (or a command argument's) text: the value, or `badValue`'s error.
 * @example new Command('%cluster scale').argument('<n>', 'engines', valueParser(spec, '%cluster scale', say))
 */
export function valueParser<T>(
  spec: OptionSpec<T>,
  flag: string,
  badValue: BadValue = commanderSays,
): (text: string) => T {
  return (text) => {
    const value = spec.kind.parse ? spec.kind.parse(text) : text;
    const f = fault(spec as OptionSpec<unknown>, value);
    if (f) throw badValue(flag, f, text);
    // Without a fault, the value is of the kind's type.
    return value as T;
  };
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

/** The values of a schema's options among a command's parsed flags; a negation gives `false`. */
export function pick<S extends OptionSpecs>(
  schema: OptionSchema<S>,
  flags: Record<string, unknown>,
): Given<S> {
  const picked: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(schema.specs)) {
    // Commander keys a value by its flag: `--file` gives `file`.
    const key = new Option(flagName(name, spec)).attributeName();
    const off = spec.negation && new Option(spec.negation.flag).attributeName();
    if (off !== undefined && off !== key && flags[off] === true) picked[name] = false;
    else if (flags[key] !== undefined) picked[name] = flags[key];
  }
  return picked as Given<S>;
}

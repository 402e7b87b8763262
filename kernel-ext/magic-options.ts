/**
 * The magics' options: what `%pxconfig` and `%%px` set, as one schema from which their flags,
 * their defaults and their checks come, and `MagicUsageError`, the one sentence a mistake gets.
 * The magics themselves are the rows of `magics.ts`.
 */
import { constants } from 'node:os';
import { Command } from 'commander';
import { addFlags, pick, valueParser, type BadValue } from '../options/commander';
import {
  defineOptions,
  flag,
  identifier,
  oneOf,
  resolveOptions,
  string,
  type Kind,
  type SettingsSpecsOf,
} from '../options/schema';

/** A magic line or cell the user got wrong; its message is the one sentence shown. */
export class MagicUsageError extends Error {
  override name = 'UsageError';
}

const GROUPINGS = ['type', 'engine', 'order'] as const;

/** How `%px` groups the outputs it shows at the end. */
export type GroupOutputs = (typeof GROUPINGS)[number];

/** `--targets`: all engines, a list of ids, or a Python-style slice of the live ids. */
export type TargetSpec = string;

/** What `%pxconfig` sets and each `%%px` may override. */
export interface PxConfig {
  /** The engines a cell runs on: `all`, ids such as `0,2`, or a slice such as `1:3`. */
  targets: TargetSpec;
  /** Whether the cell waits for the engines and shows their output. */
  block: boolean;
  /** Whether output shows as it arrives, rather than when the engines are done. */
  stream: boolean;
  /** Seconds; undefined waits as long as it takes. */
  timeout?: number;
  /** The order of the output shown at the end. */
  groupOutputs: GroupOutputs;
  /** Seconds before a blocking cell shows a progress line. */
  progressAfter: number;
  /** The signal the engines get when the cell is interrupted. */
  signalOnInterrupt: NodeJS.Signals;
}

/** `%%px` options: the config's, plus those that apply to one cell. */
export interface PxOptions extends PxConfig {
  /** Also run the code in the notebook. */
  local: boolean;
  /** The notebook variable the cell's `AsyncResult` is bound to. */
  out?: string;
  /** Show the data the cell publishes (`publish(data)`): each engine's latest, updated in place. */
  data: boolean;
}

/** Throws a `MagicUsageError` saying `message`. */
export function usage(message: string): never {
  throw new MagicUsageError(message);
}

/** A bad value, as a magic says it: "--timeout needs a positive number of seconds, got '0'." */
export const badValue: BadValue = (flag, f, text) =>
  new MagicUsageError(`${flag} ${f.reason ?? `needs ${f.expected}`}, got '${text}'.`);

const number = (text: string): number => (text.trim() === '' ? NaN : Number(text));

/** A number of engines of at least `least`. */
export function engineCount(least: number): Kind<number> {
  return {
    expected: `a whole number of engines of at least ${least}`,
    arg: '<n>',
    is: (v): v is number => typeof v === 'number',
    allows: (v) => Number.isInteger(v) && v >= least,
    parse: number,
  };
}

function seconds(allowZero: boolean): Kind<number> {
  return {
    expected: `a ${allowZero ? 'non-negative' : 'positive'} number of seconds`,
    arg: '<seconds>',
    is: (v): v is number => typeof v === 'number',
    allows: (v) => Number.isFinite(v) && (allowZero ? v >= 0 : v > 0),
    parse: number,
  };
}

const signal: Kind<NodeJS.Signals> = {
  expected: 'a signal name such as SIGINT or SIGTERM',
  arg: '<signal>',
  is: (v): v is NodeJS.Signals => typeof v === 'string',
  allows: (v) => Object.hasOwn(constants.signals, v),
  parse: (t) => (t.startsWith('SIG') ? t : `SIG${t}`),
};

/** The options `%pxconfig` sets, with the settings a new kernel starts with. */
export const pxConfigOptions = defineOptions<SettingsSpecsOf<PxConfig>>('%pxconfig', {
  targets: {
    kind: string('<targets>'),
    default: 'all',
    // The ids themselves are checked against the live engines when used.
    check: (v) =>
      /^(all|\d+(,\d+)*|-?\d*:-?\d*(:-?\d*)?)$/.test(v)
        ? undefined
        : 'takes all, an engine id, ids such as 0,2, or a slice such as 1:3 or ::2',
    help: 'engines: all, 0, 0,2, 1:3 or ::2',
  },
  block: {
    kind: flag,
    default: true,
    help: 'wait for the engines and show their output (default)',
    negation: { flag: '--noblock', help: 'return at once; see the output with %pxresult' },
  },
  stream: {
    kind: flag,
    default: true,
    help: 'show output as it arrives (default)',
    negation: { flag: '--no-stream', help: 'show output when the engines are done' },
  },
  timeout: { kind: seconds(false), help: 'stop waiting after this long' },
  groupOutputs: {
    kind: oneOf(GROUPINGS, '<how>'),
    default: 'type',
    help: 'order of the final output',
  },
  progressAfter: {
    kind: seconds(true),
    default: 2,
    help: 'show a progress line once a cell runs this long',
  },
  signalOnInterrupt: {
    kind: signal,
    default: 'SIGINT',
    help: 'signal the engines get when the cell is interrupted',
  },
});

/** `%%px`'s options: `%pxconfig`'s, and those of one cell. */
export const pxOptions = defineOptions<SettingsSpecsOf<PxOptions>>('%%px', {
  ...pxConfigOptions.specs,
  local: { kind: flag, default: false, help: 'also run the code in the notebook' },
  out: {
    kind: identifier(),
    help: 'bind the AsyncResult to this variable in the notebook',
  },
  data: {
    kind: flag,
    default: false,
    help: "show what the cell publishes with publish(data), each engine's latest in place",
  },
});

/** The settings a new kernel starts with. */
export const DEFAULT_PX_CONFIG: PxConfig = resolveOptions(pxConfigOptions, {});

/** A command with `%pxconfig`'s options, without defaults: the kernel keeps the settings. */
export function configCommand(name: string): Command {
  return addFlags(new Command(name), pxConfigOptions, { defaults: false, badValue });
}

/** A command with the options of `%px` and `%%px`, without defaults (`%pxconfig`'s apply). */
export function pxCommand(name: string): Command {
  return addFlags(new Command(name), pxOptions, { defaults: false, badValue });
}

/** The `%pxconfig` options given on the command `cmd` parsed. */
export function configFrom(cmd: Command): Partial<PxConfig> {
  return pick(pxConfigOptions, cmd.opts());
}

/** The `%px` options given on the command `cmd` parsed. */
export function pxOptionsFrom(cmd: Command): Partial<PxOptions> {
  return pick(pxOptions, cmd.opts());
}

/** Checks `--targets` syntax, as the panel's `targets:set` gives it. */
export const checkTargets = valueParser(pxConfigOptions.specs.targets, '--targets', badValue);

/** The engine ids `spec` picks from the live ids. */
export function pickTargets(spec: TargetSpec, ids: number[]): number[] {
  if (spec === 'all') return ids;
  if (!spec.includes(':')) {
    const wanted = spec.split(',').map(Number);
    const missing = wanted.filter((id) => !ids.includes(id));
    if (missing.length > 0) {
      usage(
        `engine ${missing.join(', ')} is not running; live engines: ${ids.join(', ') || 'none'}.`,
      );
    }
    return wanted;
  }
  const [a, b, c] = spec.split(':').map((s) => (s === '' ? undefined : Number(s)));
  const step = c ?? 1;
  if (step === 0) usage(`--targets slice step cannot be zero ('${spec}').`);
  const norm = (i: number): number =>
    i < 0 ? Math.max(ids.length + i, 0) : Math.min(i, ids.length);
  const picked: number[] = [];
  if (step > 0) {
    for (let i = norm(a ?? 0); i < norm(b ?? ids.length); i += step) picked.push(ids[i]);
  } else {
    const start = a === undefined ? ids.length - 1 : Math.min(norm(a), ids.length - 1);
    const stop = b === undefined ? -1 : norm(b);
    for (let i = start; i > stop; i += step) picked.push(ids[i]);
  }
  return picked;
}

/**
 * The magics' options: what `%pxconfig` and `%%px` set, the checks every option value passes,
 * and `MagicUsageError`, the one sentence a mistake gets. The magics themselves are the rows of
 * `magics.ts`.
 */
import { constants } from 'node:os';
import { Command, Option } from 'commander';

/** A magic line or cell the user got wrong; its message is the one sentence shown. */
export class MagicUsageError extends Error {
  override name = 'UsageError';
}

/** How `%px` groups the outputs it shows at the end. */
export type GroupOutputs = 'type' | 'engine' | 'order';

/** `--targets`: all engines, a list of ids, or a Python-style slice of the live ids. */
export type TargetSpec = string;

/** What `%pxconfig` sets and each `%%px` may override. */
export interface PxConfig {
  targets: TargetSpec;
  block: boolean;
  stream: boolean;
  /** Seconds; undefined waits as long as it takes. */
  timeout: number | undefined;
  groupOutputs: GroupOutputs;
  /** Seconds before a blocking cell shows a progress line. */
  progressAfter: number;
  signalOnInterrupt: NodeJS.Signals;
}

/** `%%px` options: the config's, plus those that apply to one cell. */
export interface PxOptions extends PxConfig {
  local: boolean;
  out: string | undefined;
}

/** The settings a new kernel starts with. */
export const DEFAULT_PX_CONFIG: PxConfig = {
  targets: 'all',
  block: true,
  stream: true,
  timeout: undefined,
  groupOutputs: 'type',
  progressAfter: 2,
  signalOnInterrupt: 'SIGINT',
};

/** Throws a `MagicUsageError` saying `message`. */
export function usage(message: string): never {
  throw new MagicUsageError(message);
}

/** Checks a number of engines of at least `least`; `what` names the option in the message. */
export function engineCount(what: string, least: number): (v: string) => number {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < least) {
      usage(`${what} needs a whole number of engines of at least ${least}, got '${v}'.`);
    }
    return n;
  };
}

function seconds(flag: string, allowZero: boolean): (v: string) => number {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0 || (!allowZero && n === 0)) {
      usage(
        `${flag} needs a ${allowZero ? 'non-negative' : 'positive'} number of seconds, got '${v}'.`,
      );
    }
    return n;
  };
}

/** Checks `--targets` syntax; the ids themselves are checked against live engines when used. */
export function checkTargets(v: string): TargetSpec {
  if (!/^(all|\d+(,\d+)*|-?\d*:-?\d*(:-?\d*)?)$/.test(v)) {
    usage(
      `--targets takes all, an engine id, ids such as 0,2, or a slice such as 1:3 or ::2, got '${v}'.`,
    );
  }
  return v;
}

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

function signalName(v: string): NodeJS.Signals {
  const name = v.startsWith('SIG') ? v : `SIG${v}`;
  if (!Object.hasOwn(constants.signals, name)) {
    usage(`--signal-on-interrupt needs a signal name such as SIGINT or SIGTERM, got '${v}'.`);
  }
  return name as NodeJS.Signals;
}

function identifier(v: string): string {
  if (!/^[A-Za-z_$][\w$]*$/.test(v)) usage(`--out needs a variable name, got '${v}'.`);
  return v;
}

/** Adds the options `%pxconfig` and `%%px` share to `cmd`. */
export function addConfigOptions(cmd: Command): Command {
  return cmd
    .option('--targets <targets>', 'engines: all, 0, 0,2, 1:3 or ::2', checkTargets)
    .option('--block', 'wait for the engines and show their output (default)')
    .addOption(
      new Option('--noblock', 'return at once; see the output with %pxresult').conflicts('block'),
    )
    .option('--stream', 'show output as it arrives (default)')
    .addOption(new Option('--no-stream', 'show output when the engines are done'))
    .option('--timeout <seconds>', 'stop waiting after this long', seconds('--timeout', false))
    .addOption(
      new Option('--group-outputs <how>', 'order of the final output').choices([
        'type',
        'engine',
        'order',
      ]),
    )
    .option(
      '--progress-after <seconds>',
      'show a progress line once a cell runs this long',
      seconds('--progress-after', true),
    )
    .option(
      '--signal-on-interrupt <signal>',
      'signal the engines get when the cell is interrupted',
      signalName,
    );
}

/** The config options commander parsed, without the unset ones. */
export function configFrom(o: Record<string, unknown>): Partial<PxConfig> {
  const c: Partial<PxConfig> = {
    targets: o.targets as TargetSpec | undefined,
    block: o.noblock ? false : o.block ? true : undefined,
    stream: o.stream as boolean | undefined,
    timeout: o.timeout as number | undefined,
    groupOutputs: o.groupOutputs as GroupOutputs | undefined,
    progressAfter: o.progressAfter as number | undefined,
    signalOnInterrupt: o.signalOnInterrupt as NodeJS.Signals | undefined,
  };
  return Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined));
}

/** A command with the options of `%px` and `%%px`. */
export function pxCommand(name: string): Command {
  return addConfigOptions(new Command(name))
    .option('--local', 'also run the code in the notebook')
    .option('--out <name>', 'bind the AsyncResult to this variable in the notebook', identifier);
}

/** The `%px` options commander parsed, without the unset ones. */
export function pxOptionsFrom(o: Record<string, unknown>): Partial<PxOptions> {
  return {
    ...configFrom(o),
    ...(o.local ? { local: true } : {}),
    ...(o.out ? { out: o.out as string } : {}),
  };
}

/**
 * Recognising magics and parsing their options. A cell whose first line starts with `%%name`
 * is a cell magic; elsewhere a line starting with `%name` is a line magic, and the TypeScript
 * between magic lines goes to tslab unchanged. Options are parsed by commander, one fresh
 * command per magic line, and a bad one becomes a `MagicUsageError` with one sentence.
 */
import { constants } from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import { launcherNames, type LauncherName } from '../cluster/launchers';

/** A magic line or cell the user got wrong; its message is the one sentence shown. */
export class MagicUsageError extends Error {
  override name = 'UsageError';
}

/** One piece of a cell, run in order. */
export type Step =
  | { kind: 'code'; code: string }
  | { kind: 'magic'; name: string; args: string; body: string | undefined };

const LINE_MAGIC = /^%([A-Za-z]\w*\??)(?:[ \t]+(.*))?$/;
const CELL_MAGIC = /^%%([A-Za-z]\w*\??)(?:[ \t]+(.*))?$/;

/** Splits a cell into magic lines (or one cell magic) and TypeScript chunks. */
export function splitCell(code: string): Step[] {
  const lines = code.split('\n');
  const first = lines.findIndex((l) => l.trim() !== '');
  const cell = first >= 0 ? CELL_MAGIC.exec(lines[first].trimEnd()) : null;
  if (cell) {
    return [
      {
        kind: 'magic',
        name: `%${cell[1]}`,
        args: cell[2] ?? '',
        body: lines.slice(first + 1).join('\n'),
      },
    ];
  }
  const steps: Step[] = [];
  let chunk: string[] = [];
  const flush = (): void => {
    if (chunk.some((l) => l.trim() !== '')) steps.push({ kind: 'code', code: chunk.join('\n') });
    chunk = [];
  };
  for (const line of lines) {
    const m = LINE_MAGIC.exec(line.trimEnd());
    if (m) {
      flush();
      steps.push({ kind: 'magic', name: m[1], args: m[2] ?? '', body: undefined });
    } else {
      chunk.push(line);
    }
  }
  flush();
  return steps;
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

/** A parsed magic. */
export type Magic =
  | { magic: 'cluster start'; engines: number | undefined; launcher: LauncherName }
  | { magic: 'cluster connect'; file: string | undefined }
  | { magic: 'cluster scale'; engines: number }
  | { magic: 'cluster stop' | 'cluster status' | 'pxresult' | 'autopx' | 'lsmagic' }
  | { magic: 'px'; code: string; options: Partial<PxOptions> }
  | { magic: 'pxconfig'; options: Partial<PxConfig> }
  | { magic: 'help'; topic: string };

const usage = (message: string): never => {
  throw new MagicUsageError(message);
};

function engineCount(what: string, least: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < least) {
      usage(`${what} needs a whole number of engines of at least ${least}, got '${v}'.`);
    }
    return n;
  };
}

function seconds(flag: string, allowZero: boolean) {
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

/** The options `%pxconfig` and `%%px` share. */
function addConfigOptions(cmd: Command): Command {
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
function configFrom(o: Record<string, unknown>): Partial<PxConfig> {
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

/** One fresh commander command per magic (commander keeps parsed values on the command). */
const commands: Record<string, { help: string; build: () => Command }> = {
  'cluster start': {
    help: 'start a controller and engines: %cluster start [-n N] [--launcher local|mpi|ssh|slurm|...]',
    build: () =>
      new Command('%cluster start')
        .option(
          '-n, --engines <n>',
          'engines to start (default: one per core)',
          engineCount('-n', 1),
        )
        .addOption(
          new Option('--launcher <name>', 'how to start engines')
            .choices(launcherNames)
            .default('local'),
        ),
  },
  'cluster stop': {
    help: 'stop the cluster (or close the client of a cluster you connected to)',
    build: () => new Command('%cluster stop'),
  },
  'cluster connect': {
    help: 'use a running cluster: %cluster connect [controller-client.json] (default profile if omitted)',
    build: () => new Command('%cluster connect').argument('[file]'),
  },
  'cluster status': {
    help: 'show the controller, the engines and their queues',
    build: () => new Command('%cluster status'),
  },
  'cluster scale': {
    help: 'grow or shrink the cluster to N engines (idle ones stop first): %cluster scale N',
    build: () =>
      new Command('%cluster scale').argument('<n>', 'engines', engineCount('%cluster scale', 0)),
  },
  px: {
    help: 'run one line of TypeScript on the engines: %px [options] CODE',
    build: () => pxCommand('%px').argument('[code...]').passThroughOptions(),
  },
  '%px': {
    help: 'run the cell on the engines (long name %%parallel)',
    build: () => pxCommand('%%px'),
  },
  pxresult: {
    help: 'show the output of the last %px run, waiting for it if needed',
    build: () => new Command('%pxresult'),
  },
  pxconfig: {
    help: 'set the defaults of %px (without options: show them)',
    build: () => addConfigOptions(new Command('%pxconfig')),
  },
  autopx: {
    help: 'toggle running every following cell on the engines',
    build: () => new Command('%autopx'),
  },
  lsmagic: { help: 'list the magics (also %help)', build: () => new Command('%lsmagic') },
};
commands['%parallel'] = commands['%px'];
commands.help = commands.lsmagic;

function pxCommand(name: string): Command {
  return addConfigOptions(new Command(name))
    .option('--local', 'also run the code in the notebook')
    .option('--out <name>', 'bind the AsyncResult to this variable in the notebook', identifier);
}

/** The names `%lsmagic` lists, each with its one-line help. */
export function magicList(): string {
  const rows = [
    [
      '%cluster start|stop|connect|status|scale',
      'start, stop, connect to, show or resize the cluster %px uses',
    ],
    ['%px [options] CODE', commands.px.help],
    ['%%px [options]', commands['%px'].help],
    ['%pxresult', commands.pxresult.help],
    ['%pxconfig [options]', commands.pxconfig.help],
    ['%autopx', commands.autopx.help],
    ['%lsmagic, %help', commands.lsmagic.help],
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  return (
    rows.map(([n, h]) => `${n.padEnd(width)}  ${h}`).join('\n') +
    "\n\nAdd ? for a magic's options, e.g. %%px? or %cluster?\n"
  );
}

/**
 * Parses a magic line; `name` is what follows `%` (`%px` for the cell magic `%%px`). Throws
 * `MagicUsageError` with one sentence for an unknown magic or a bad option.
 */
export function parseMagic(name: string, args: string): Magic {
  const display = `%${name}`;
  if (name.endsWith('?')) {
    const topic = name.slice(0, -1);
    if (!Object.hasOwn(commands, topic) && topic !== 'cluster') {
      usage(`${display}: there is no magic %${topic}; %lsmagic lists them.`);
    }
    return { magic: 'help', topic };
  }
  let tokens = args.trim() === '' ? [] : args.trim().split(/\s+/);
  let key = name;
  if (name === 'cluster') {
    key = `cluster ${tokens[0] ?? ''}`;
    if (!Object.hasOwn(commands, key)) {
      usage(`%cluster needs start, stop, connect, status or scale, e.g. %cluster start -n 4.`);
    }
    tokens = tokens.slice(1);
  } else if (!Object.hasOwn(commands, name)) {
    usage(`there is no magic %${name}; %lsmagic lists them.`);
  }
  const shown = name === 'cluster' ? `%${key}` : display;
  const cmd = commands[key]
    .build()
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} });
  try {
    cmd.parse(tokens, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander's message, made one sentence: "a. B" becomes "a: b".
      const what = e.message
        .replace(/^error: /, '')
        .replace(/\.$/, '')
        .replace(/\.\s+(\w)/g, (_, c: string) => `: ${c.toLowerCase()}`);
      usage(`${shown}: ${what}; ${display}? shows the options.`);
    }
    throw e;
  }
  const o = cmd.opts();
  switch (key) {
    case 'cluster start':
      return {
        magic: key,
        engines: o.engines as number | undefined,
        launcher: o.launcher as LauncherName,
      };
    case 'cluster connect':
      return { magic: key, file: cmd.args[0] };
    case 'cluster scale':
      return { magic: key, engines: cmd.processedArgs[0] as number };
    case 'cluster stop':
    case 'cluster status':
      return { magic: key };
  }
  switch (name) {
    case 'px': {
      // The code is the rest of the line after the options, with its own spacing kept.
      const skip = tokens.length - cmd.args.length;
      const code = args.trim().replace(new RegExp(`^(\\S+\\s+){${skip}}`), '');
      if (cmd.args.length === 0)
        usage(
          '%px needs code to run, e.g. %px console.log(process.pid); for a whole cell use %%px.',
        );
      return { magic: 'px', code, options: pxOptionsFrom(o) };
    }
    case '%px':
    case '%parallel':
      return { magic: 'px', code: '', options: pxOptionsFrom(o) };
    case 'pxconfig':
      return { magic: 'pxconfig', options: configFrom(o) };
    case 'help':
      return { magic: 'lsmagic' };
    default:
      return { magic: name as 'pxresult' | 'autopx' | 'lsmagic' };
  }
}

function pxOptionsFrom(o: Record<string, unknown>): Partial<PxOptions> {
  return {
    ...configFrom(o),
    ...(o.local ? { local: true } : {}),
    ...(o.out ? { out: o.out as string } : {}),
  };
}

/** The options of a magic, as `%px?` shows them. */
export function magicHelp(topic: string): string {
  const keys =
    topic === 'cluster' ? Object.keys(commands).filter((k) => k.startsWith('cluster ')) : [topic];
  return keys
    .map((k) => `${commands[k].help}\n${commands[k].build().helpInformation()}`)
    .join('\n');
}

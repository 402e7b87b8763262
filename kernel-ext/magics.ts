/**
 * The magics, one row of `MAGICS` each: how it is written, its help, and what it does. A cell
 * whose first line starts with `%%name` is a cell magic; elsewhere a line starting with `%name`
 * is a line magic, and the TypeScript between magic lines goes to tslab unchanged. Options are
 * parsed by commander, one fresh command per magic line, and a bad one becomes a
 * `MagicUsageError` with one sentence. `%lsmagic` and `%name?` read the same rows.
 */
import { Command, CommanderError } from 'commander';
import { clusterOptions } from '../cluster/options';
import { addFlags, pick, valueParser } from '../options/commander';
import { defineOptions, resolveOptions } from '../options/schema';
import type { KernelState } from './comm-messages';
import {
  badValue,
  configCommand,
  configFrom,
  engineCount,
  MagicUsageError,
  pxCommand,
  pxConfigOptions,
  pxOptionsFrom,
  usage,
  type PxConfig,
  type PxOptions,
} from './magic-options';
import { PACKAGE_TYPES } from './notebook';
import { errorContent, showErrors, showPx, submitPx, type Failure, type PxRun } from './px';
import type { Bind, SharedCluster } from './shared-cluster';
import type { Outlet } from './tslab';

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

/** What the magics act on; the kernel holds it. */
export interface MagicKernel {
  readonly shared: SharedCluster;
  /** `%pxconfig`'s settings, which every `%px` starts from. */
  readonly config: Readonly<PxConfig>;
  /** Changes `%pxconfig`'s settings. */
  configure(options: Partial<PxConfig>): void;
  /** Whether every cell runs on the engines; `%autopx` turns it on and off. */
  autopx: boolean;
  /** The last `%px` run, for `%pxresult`. */
  lastPx: { run: PxRun; options: PxOptions } | undefined;
  /** What the panel shows, with fresh queues, for `%cluster status`. */
  state(): Promise<KernelState>;
  /** Runs TypeScript in the notebook, as an ordinary cell. */
  runTypeScript(code: string, out: Outlet, count: number): Promise<Failure | undefined>;
  bind: Bind;
}

/** The cell a magic runs in. */
export interface MagicCell {
  readonly out: Outlet;
  /** The cell's execution count. */
  readonly count: number;
  /** The code below a cell magic's first line. */
  readonly body: string | undefined;
  /** Aborts when the user interrupts the cell. */
  readonly interrupted: AbortSignal;
}

/** One way of writing a magic: as a line (`%name`) or as a cell (`%%name`). */
interface MagicForm<A> {
  /** How `%lsmagic` lists it. */
  usage: string;
  help: string;
  /** Other names it answers to. */
  aliases?: string[];
  /** A fresh command with its options (commander keeps parsed values on the command). */
  command(): Command;
  /** The magic's arguments from the command that parsed `args` (the trimmed rest of the line). */
  parse(cmd: Command, args: string): A;
}

/** One magic: its forms, and what it does with the arguments either form parsed. */
interface MagicRow<A> {
  line?: MagicForm<A>;
  cell?: MagicForm<A>;
  run(args: A, kernel: MagicKernel, cell: MagicCell): Promise<Failure | undefined>;
}

/** Ties a row's parsers to its runner, so that they agree on the arguments. */
function row<A>(r: MagicRow<A>): MagicRow<A> {
  return r;
}

/** A line of text in the cell's output. */
function say(cell: MagicCell, text: string): undefined {
  cell.out.stream('stdout', text.endsWith('\n') ? text : `${text}\n`);
  return undefined;
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;

/**
 * `%cluster start`'s options are `Cluster.start`'s, but a notebook's cluster needs an engine to
 * run `%px` on.
 */
const startOptions = defineOptions('%cluster start', {
  engines: { ...clusterOptions.specs.engines, kind: engineCount(1) },
  launcher: clusterOptions.specs.launcher,
  resources: clusterOptions.specs.resources,
});

const scaleCount = { kind: engineCount(0), help: 'engines' };

/** The magics, in the order `%lsmagic` lists them. A row named `family word` is `%family word`. */
const MAGICS = {
  'cluster start': row({
    line: {
      usage: '%cluster start [-n N] [--launcher L] [--resources cpu=4,gpu=1]',
      help: 'start a controller and N engines (default: one per core), and connect to them',
      command: () => addFlags(new Command('%cluster start'), startOptions, { badValue }),
      parse: (cmd) => resolveOptions(startOptions, pick(startOptions, cmd.opts())),
    },
    async run({ engines, launcher, resources }, kernel, cell) {
      const rc = await kernel.shared.start({ engines, launcher, resources }, cell.out);
      return say(
        cell,
        `Started a cluster with ${rc.ids.length} engines (ids ${rc.ids.join(', ')}); ` +
          `cluster and rc are set in the notebook, and %px runs on it.`,
      );
    },
  }),
  'cluster stop': row({
    line: {
      usage: '%cluster stop',
      help: 'stop the cluster (or close the client of a cluster you connected to)',
      command: () => new Command('%cluster stop'),
      parse: () => ({}),
    },
    async run(_, kernel, cell) {
      const stopped = await kernel.shared.stop();
      return say(
        cell,
        stopped === 'cluster stopped'
          ? 'Stopped the cluster: its controller and engines have exited.'
          : 'Closed the connection; the cluster keeps running (it was not started here).',
      );
    },
  }),
  'cluster connect': row({
    line: {
      usage: '%cluster connect [FILE]',
      help: 'use a running cluster, from its controller-client.json (default profile if omitted)',
      command: () => new Command('%cluster connect').argument('[file]'),
      parse: (cmd) => ({ file: cmd.args[0] as string | undefined }),
    },
    async run({ file }, kernel, cell) {
      const rc = await kernel.shared.connect(file, cell.out);
      return say(
        cell,
        `Connected to ${rc.connection.client} with ${plural(rc.ids.length, 'engine')}; rc is set in the notebook.`,
      );
    },
  }),
  'cluster status': row({
    line: {
      usage: '%cluster status',
      help: 'show the controller, the engines and their queues',
      command: () => new Command('%cluster status'),
      parse: () => ({}),
    },
    async run(_, kernel, cell) {
      const state = await kernel.state();
      if (!state.cluster) return say(cell, 'No cluster: %cluster start -n 4 starts one.');
      const c = state.cluster;
      const lines = [
        `controller ${c.controller}, launcher ${c.launcher ?? '(connected, not started here)'}, up ${Math.round(c.uptime)} s`,
        `%px targets: ${state.targets}${kernel.autopx ? ' (%autopx on)' : ''}`,
        ...state.engines.map(
          (e) =>
            `engine ${e.id}: ${e.status}, pid ${e.pid} on ${e.host}, queue ${e.queue}, done ${e.completed}`,
        ),
      ];
      return say(cell, lines.join('\n'));
    },
  }),
  'cluster scale': row({
    line: {
      usage: '%cluster scale N',
      help: 'grow or shrink the cluster to N engines (idle ones stop first)',
      command: () =>
        new Command('%cluster scale').argument(
          '<n>',
          scaleCount.help,
          valueParser(scaleCount, '%cluster scale', badValue),
        ),
      parse: (cmd) => ({ engines: cmd.processedArgs[0] as number }),
    },
    async run({ engines }, kernel, cell) {
      const ids = await kernel.shared.scale(engines);
      return say(
        cell,
        `The cluster has ${plural(ids.length, 'engine')}: ${ids.join(', ') || 'none'}.`,
      );
    },
  }),
  px: row({
    line: {
      usage: '%px [options] CODE',
      help: 'run one line of TypeScript on the engines',
      command: () => pxCommand('%px').argument('[code...]').passThroughOptions(),
      parse(cmd, args) {
        if (cmd.args.length === 0) {
          usage(
            '%px needs code to run, e.g. %px console.log(process.pid); for a whole cell use %%px.',
          );
        }
        // The code is the rest of the line after the options, with its own spacing kept.
        const skip = args.split(/\s+/).length - cmd.args.length;
        const code = args.replace(new RegExp(`^(\\S+\\s+){${skip}}`), '');
        return { code, options: pxOptionsFrom(cmd) };
      },
    },
    cell: {
      usage: '%%px [options]',
      help: 'run the cell on the engines (long name %%parallel)',
      aliases: ['parallel'],
      command: () => pxCommand('%%px'),
      parse: (cmd) => ({ code: '', options: pxOptionsFrom(cmd) }),
    },
    run: runPx,
  }),
  pxresult: row({
    line: {
      usage: '%pxresult',
      help: 'show the output of the last %px run, waiting for it if needed',
      command: () => new Command('%pxresult'),
      parse: () => ({}),
    },
    async run(_, kernel, cell) {
      if (!kernel.lastPx)
        throw new MagicUsageError('no %px has run yet; %pxresult shows the last one.');
      const { run, options } = kernel.lastPx;
      const client = kernel.shared.requireClient();
      const shown = { ...options, stream: true };
      const errors = await showPx(client, run, shown, cell.out, cell.count, cell.interrupted);
      return showErrors(errors, cell.out);
    },
  }),
  pxconfig: row({
    line: {
      usage: '%pxconfig [options]',
      help: 'set the defaults of %px (without options: show them)',
      command: () => configCommand('%pxconfig'),
      parse: (cmd) => ({ options: configFrom(cmd) }),
    },
    async run({ options }, kernel, cell) {
      kernel.configure(options);
      return say(
        cell,
        (Object.keys(pxConfigOptions.specs) as (keyof PxConfig)[])
          .map((k) => `${k}: ${String(kernel.config[k] ?? '(none)')}`)
          .join('\n'),
      );
    },
  }),
  autopx: row({
    line: {
      usage: '%autopx',
      help: 'toggle running every following cell on the engines',
      command: () => new Command('%autopx'),
      parse: () => ({}),
    },
    async run(_, kernel, cell) {
      kernel.autopx = !kernel.autopx;
      return say(
        cell,
        kernel.autopx
          ? '%autopx enabled: every cell now runs on the engines; %autopx again turns it off.'
          : '%autopx disabled: cells run in the notebook again.',
      );
    },
  }),
  lsmagic: row<{ topic?: string }>({
    line: {
      usage: '%lsmagic, %help',
      help: 'list the magics',
      aliases: ['help'],
      command: () => new Command('%lsmagic'),
      parse: () => ({}),
    },
    // `%name?` comes here too, with its name as the topic.
    async run({ topic }, _, cell) {
      return say(cell, topic === undefined ? magicList() : magicHelp(topic));
    },
  }),
};

type MagicName = keyof typeof MAGICS;
type MagicArgs = { [K in MagicName]: (typeof MAGICS)[K] extends MagicRow<infer A> ? A : never };
/** Seen through this type, each row's runner takes the arguments of its own magic. */
const rows: { [K in MagicName]: MagicRow<MagicArgs[K]> } = MAGICS;

/** A parsed magic: its row's name and the arguments its form parsed. */
export type Magic = { [K in MagicName]: { magic: K } & MagicArgs[K] }[MagicName];

/** `%%px` runs the cell, `%px` its one line; both start from `%pxconfig`'s settings. */
async function runPx(
  args: { code: string; options: Partial<PxOptions> },
  kernel: MagicKernel,
  cell: MagicCell,
): Promise<Failure | undefined> {
  const code = args.code || (cell.body ?? '');
  const options: PxOptions = {
    ...kernel.config,
    local: false,
    out: undefined,
    data: false,
    ...args.options,
  };
  if (code.trim() === '')
    throw new MagicUsageError('%%px needs code in the cell below its first line.');
  const client = await kernel.shared.ensureClient();
  const run = submitPx(client, code, options);
  kernel.lastPx = { run, options };
  if (options.out !== undefined) {
    const type = `AsyncResult<import(${PACKAGE_TYPES}).ExecuteReply[]>`;
    await kernel.bind({ [options.out]: [run.ar, type] }, cell.out);
  }
  // --local runs the cell here while the engines run it; its error is shown with theirs.
  const local = options.local ? await kernel.runTypeScript(code, cell.out, cell.count) : undefined;
  if (local) cell.out.publish('error', errorContent(local));
  const remote = options.block
    ? showErrors(
        await showPx(client, run, options, cell.out, cell.count, cell.interrupted),
        cell.out,
      )
    : undefined;
  return remote ?? (local && { ...local, shown: true });
}

/** Runs a parsed magic in `cell`. */
export function runMagic(
  m: Magic,
  kernel: MagicKernel,
  cell: MagicCell,
): Promise<Failure | undefined> {
  return run(m, kernel, cell);
}

function run<K extends MagicName>(
  m: { magic: K } & MagicArgs[K],
  kernel: MagicKernel,
  cell: MagicCell,
): Promise<Failure | undefined> {
  return rows[m.magic].run(m, kernel, cell);
}

/** Each name a magic is written as (`px`, `%px` for `%%px`, `cluster start`), and its form. */
const FORMS = new Map<string, { name: MagicName; form: MagicForm<unknown> }>(
  (Object.keys(rows) as MagicName[]).flatMap((name) => {
    const { line, cell }: MagicRow<unknown> = rows[name];
    return [
      ...(line
        ? [name, ...(line.aliases ?? [])].map((n) => [n, { name, form: line }] as const)
        : []),
      ...(cell
        ? [name, ...(cell.aliases ?? [])].map((n) => [`%${n}`, { name, form: cell }] as const)
        : []),
    ];
  }),
);

/** The sub-commands of `%family` (`start`, `stop`, ... of `%cluster`); empty if it is none. */
function family(name: string): string[] {
  return Object.keys(rows)
    .filter((k) => k.startsWith(`${name} `))
    .map((k) => k.slice(name.length + 1));
}

/** The names `%lsmagic` lists, each with its one-line help. */
export function magicList(): string {
  const listed = Object.values<MagicRow<unknown>>(rows).flatMap((r) =>
    [r.line, r.cell].flatMap((f) => (f ? [[f.usage, f.help]] : [])),
  );
  const width = Math.max(...listed.map((r) => r[0].length));
  return (
    listed.map(([n, h]) => `${n.padEnd(width)}  ${h}`).join('\n') +
    "\n\nAdd ? for a magic's options, e.g. %%px? or %cluster?\n"
  );
}

/** The options of a magic, as `%px?` shows them; `topic` is a name as `parseMagic` takes it. */
export function magicHelp(topic: string): string {
  const subs = family(topic);
  const names = subs.length > 0 ? subs.map((s) => `${topic} ${s}`) : [topic];
  return names
    .map((n) => FORMS.get(n)!.form)
    .map((form) => `${form.help}\n${form.command().helpInformation()}`)
    .join('\n');
}

/**
 * Parses a magic line; `name` is what follows `%` (`%px` for the cell magic `%%px`). Throws
 * `MagicUsageError` with one sentence for an unknown magic or a bad option.
 */
export function parseMagic(name: string, args: string): Magic {
  const display = `%${name}`;
  if (name.endsWith('?')) {
    const topic = name.slice(0, -1);
    if (!FORMS.has(topic) && family(topic).length === 0) {
      usage(`${display}: there is no magic %${topic}; %lsmagic lists them.`);
    }
    return { magic: 'lsmagic', topic };
  }
  let rest = args.trim();
  let key = name;
  const subs = family(name);
  if (subs.length > 0) {
    // `%cluster start -n 2` is the magic `cluster start` with the options `-n 2`.
    key = `${name} ${rest.split(/\s/)[0]}`;
    if (!FORMS.has(key)) {
      const words = `${subs.slice(0, -1).join(', ')} or ${subs[subs.length - 1]}`;
      usage(`${display} needs ${words}, e.g. ${FORMS.get(`${name} ${subs[0]}`)!.form.usage}.`);
    }
    rest = rest.replace(/^\S+\s*/, '');
  }
  const found = FORMS.get(key);
  if (!found) usage(`there is no magic %${name}; %lsmagic lists them.`);
  const shown = subs.length > 0 ? `%${key}` : display;
  const cmd = found.form
    .command()
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} });
  try {
    cmd.parse(rest === '' ? [] : rest.split(/\s+/), { from: 'user' });
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
  // The form's parser gives its row's arguments; the row's name tags them.
  return { magic: found.name, ...(found.form.parse(cmd, rest) as object) } as Magic;
}

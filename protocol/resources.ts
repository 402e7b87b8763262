/**
 * Resources, as Ray's `num_cpus`/`num_gpus`: what an engine declares it holds
 * (`{ cpu: 4, gpu: 1, mem: 8e9 }`) and what a task asks for, by name. The hub places a task only
 * on an engine whose free amounts cover what it asks. One spelling on the command line,
 * `cpu=4,gpu=1,mem=8G`, and one check for both sides, shared by the options, the wire gate and
 * the scheduler.
 */
import type { Kind, OptionSpec } from '../options/schema';

/** Amounts by resource name. */
export type Resources = Record<string, number>;

/** What an engine holds when it says nothing: one CPU. A `cpu` amount given replaces it. */
export const DEFAULT_RESOURCES: Readonly<Resources> = Object.freeze({ cpu: 1 });

/** What an engine declaring `given` holds: one CPU unless it names its CPUs. */
export function declaredResources(given: Resources = {}): Resources {
  return { ...DEFAULT_RESOURCES, ...given };
}

const NAME = /^[A-Za-z][\w.-]*$/;
/** Thousands, millions, billions, trillions: `mem=8G` is 8e9. */
const SUFFIXES: Record<string, number> = { K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
const AMOUNT = /^([\d.]+(?:e[+-]?\d+)?)([KMGT]?)$/i;

/** How an amount is spelt, completing "must be". */
const AMOUNT_WORDS = 'a number >= 0, with K, M, G or T for thousands to trillions (mem=8G)';

/**
 * What is wrong with `value` as resources, completing "<option> ...", or undefined when it is
 * fine: names start with a letter, amounts are finite numbers >= 0.
 */
export function resourcesProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `must be resources by name, such as { gpu: 1 } (cpu=4,gpu=1,mem=8G on the command line)`;
  }
  for (const [name, amount] of Object.entries(value)) {
    if (!NAME.test(name)) {
      return `has resource name ${JSON.stringify(name)}; a name starts with a letter and holds letters, digits, _ . or -`;
    }
    if (typeof amount !== 'number' || !Number.isFinite(amount) || amount < 0) {
      const shown = typeof amount === 'object' ? JSON.stringify(amount) : String(amount);
      return `has ${name}=${shown}; an amount must be ${AMOUNT_WORDS}`;
    }
  }
  return undefined;
}

/**
 * Resources as the command line spells them: `cpu=4,gpu=1,mem=8G`. An amount that is not a
 * number stays as written, for `resourcesProblem` to name; text that is not `name=amount`
 * pairs stays text, which the kind refuses.
 */
export function parseResources(text: string): unknown {
  const parsed: Record<string, number | string> = {};
  if (text.trim() === '') return parsed;
  for (const pair of text.split(',')) {
    const [name, amount, ...rest] = pair.split('=').map((part) => part.trim());
    if (amount === undefined || rest.length > 0 || Object.hasOwn(parsed, name)) return text;
    const m = AMOUNT.exec(amount);
    const n = m ? Number(m[1]) * (SUFFIXES[m[2].toUpperCase()] ?? 1) : NaN;
    parsed[name] = Number.isNaN(n) ? amount : n;
  }
  return parsed;
}

/** `cpu=4,gpu=1,mem=8e9`: the command line's spelling, which `parseResources` reads back. */
export function formatResources(r: Readonly<Resources>): string {
  return Object.entries(r)
    .map(([name, amount]) => `${name}=${amount}`)
    .join(',');
}

/** Resources as an option's kind: an object in code, `cpu=4,gpu=1,mem=8G` on the command line. */
const resourcesKind: Kind<Resources> = {
  expected: 'name=amount pairs separated by commas, such as cpu=4,gpu=1,mem=8G',
  arg: '<name=amount,...>',
  is: (v): v is Resources => typeof v === 'object' && v !== null && !Array.isArray(v),
  parse: parseResources,
  format: (v) => formatResources(v),
};

/** An option that takes resources, checked by `resourcesProblem`. */
export function resourcesOption(help: string, fallback?: Resources): OptionSpec<Resources> {
  return {
    kind: resourcesKind,
    help,
    check: resourcesProblem,
    ...(fallback && { default: fallback }),
  };
}

/**
 * The names whose amount in `asked` exceeds `available`'s (a resource not named there counts
 * as none); empty when `asked` fits.
 */
export function shortOf(available: Readonly<Resources>, asked: Readonly<Resources>): string[] {
  const short: string[] = [];
  for (const name in asked) if (asked[name] > (available[name] ?? 0)) short.push(name);
  return short;
}

/**
 * Why a task asking `asked` cannot run on `engines` (those it may run on: all live ones, or
 * its one engine, `direct`): the resources in `short` and what each engine holds.
 * @example unsatisfiable({ gpu: 2 }, ['gpu'], [{ id: 0, resources: { cpu: 1 } }])
 * // "no live engine holds gpu=2, which this task asks for (engine 0 holds cpu=1); ..."
 */
export function unsatisfiable(
  asked: Readonly<Resources>,
  short: string[],
  engines: { id: number; resources: Readonly<Resources> }[],
  direct?: number,
): string {
  const wanted = short.map((name) => `${name}=${asked[name]}`).join(', ');
  const held =
    engines
      .map((e) => `engine ${e.id} holds ${formatResources(e.resources) || 'nothing'}`)
      .join('; ') || 'no engine is registered';
  return direct === undefined
    ? `no live engine holds ${wanted}, which this task asks for (${held}); start engines that ` +
        'declare it (--resources, or Cluster.start/addEngines({ resources })) or ask for less'
    : `engine ${direct} does not hold ${wanted}, which this direct task asks for (${held}); ` +
        'run it on an engine that does, or ask for less';
}

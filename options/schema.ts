/**
 * Option schemas: each option's name, kind, default, help and check, written once. From a schema
 * come the defaults, the checks of options given in code (a `TypeError` or `RangeError` naming
 * the option), the argv that passes options to a child process, and, through `commander.ts`
 * beside it, the flags of a command or a magic. Dependency-free, so that every folder can use it.
 * @example
 * const schema = defineOptions('view', { chunkSize: { kind: integer(1), default: 1, help: 'elements per task' } });
 * resolveOptions(schema, { chunkSize: 0 }); // RangeError: view option chunkSize must be a positive integer, got 0
 */

/** What values an option takes, and how the command line spells them. */
export interface Kind<T> {
  /** Completes "must be": `an integer >= 1`. */
  readonly expected: string;
  /** The value's placeholder in `--help` (`<n>`); none for a switch, which is `true` when given. */
  readonly arg?: string;
  /** The allowed words, for `--help` and the command line's check. */
  readonly choices?: readonly string[];
  /** Whether `value` has the kind's type; a value that has not is a `TypeError`. */
  is(value: unknown): value is T;
  /** Whether a value of the right type is allowed; one that is not is a `RangeError`. */
  allows?(value: T): boolean;
  /** What a command-line word stands for, before the checks (which say what went wrong). */
  parse?(text: string): unknown;
  /** The command-line word for a value, which `parse` reads back; JSON for an object if absent. */
  format?(value: T): string;
}

/** One option: what it takes, its default, its help, and a check beyond its kind. */
export interface OptionSpec<T> {
  kind: Kind<T>;
  /** One line for `--help`, which documents the option in code too. */
  help: string;
  /** The value when none is given; a function of the other options' values for a derived one. */
  default?: T | ((values: Readonly<Record<string, unknown>>) => T);
  /** Must be given (there is no sensible default). */
  required?: true;
  /** What is wrong with `value`, completing "<option> ...", or undefined when it is fine. */
  check?(value: T): string | undefined;
  /** A one-letter flag besides the long one (`-n`). */
  short?: string;
  /** The long flag, where it is not the option's name in kebab case (`--file`). */
  flag?: string;
  /** Not a command-line flag: given in code only (a callback, or spelled otherwise there). */
  cli?: false;
  /** For a switch that is on by default: the flag that turns it off (`--no-stream`), and its help. */
  negation?: { flag: string; help: string };
}

/** Options by name, in the order `--help` lists them. */
export type OptionSpecs = Record<string, OptionSpec<unknown>>;

/**
 * For settings that are always there once resolved (`O` documents them so): a spec for each,
 * of its type, with a default for each field `O` always has.
 * @example const pxConfigOptions = defineOptions<SettingsSpecsOf<PxConfig>>('%pxconfig', { ... });
 */
export type SettingsSpecsOf<O> = {
  [K in keyof O]-?: OptionSpec<Exclude<O[K], undefined>> &
    (undefined extends O[K] ? unknown : { default: Exclude<O[K], undefined> });
};

/** A named set of options, with a check across them. */
export interface OptionSchema<S extends OptionSpecs = OptionSpecs> {
  /** Names the set in messages: `view` gives "view option timeout must be ...". */
  readonly subject: string;
  readonly specs: S;
  /** What is wrong across options (`name` spells each as the caller knows it), or undefined. */
  check?(values: Resolved<S>, name: (option: string) => string): string | undefined;
}

type ValueOf<O> = O extends { kind: Kind<infer T> } ? T : never;
type RequiredKeys<S> = { [K in keyof S]: S[K] extends { required: true } ? K : never }[keyof S];
type DefaultedKeys<S> = { [K in keyof S]: S[K] extends { default: unknown } ? K : never }[keyof S];

/** What a caller may give: the required options, and any of the others. */
export type Given<S> = { [K in RequiredKeys<S>]: ValueOf<S[K]> } & {
  [K in Exclude<keyof S, RequiredKeys<S>>]?: ValueOf<S[K]>;
};

/** The options after defaults: those with a default or required are always there. */
export type Resolved<S> = { [K in RequiredKeys<S> | DefaultedKeys<S>]: ValueOf<S[K]> } & {
  [K in Exclude<keyof S, RequiredKeys<S> | DefaultedKeys<S>>]?: ValueOf<S[K]>;
};

/**
 * The specs that document interface `T`: one per field, of the field's type, `required` where the
 * field is. `{ ... } satisfies SpecsOf<T>` keeps a schema and its documented interface in step.
 * @example
 * interface ViewOptions { /** Elements per task. *\/ chunkSize?: number }
 * const specs = { chunkSize: { kind: integer(1), help: 'elements per task' } } satisfies SpecsOf<ViewOptions>;
 */
export type SpecsOf<T> = {
  [K in keyof T]-?: OptionSpec<Exclude<T[K], undefined>> &
    (object extends Pick<T, K> ? unknown : { required: true });
};

/** A schema; `specs` is checked against each option's kind by the compiler. */
export function defineOptions<S extends OptionSpecs>(
  subject: string,
  specs: S & { [K in keyof S]: OptionSpec<ValueOf<S[K]>> },
  check?: OptionSchema<S>['check'],
): OptionSchema<S> {
  return { subject, specs, check };
}

/** What is wrong with one value, for a message in code or on the command line. */
interface Fault {
  error: TypeErrorConstructor | RangeErrorConstructor;
  /** The option's own check's words, completing "<option> ...". */
  reason?: string;
  /** Otherwise: what the kind takes, and what was given. */
  expected?: string;
  got?: string;
}

/** What is wrong with `value` as a value of `spec`, or undefined. */
export function fault(spec: OptionSpec<unknown>, value: unknown): Fault | undefined {
  const { kind } = spec;
  if (!kind.is(value)) {
    return { error: TypeError, expected: kind.expected, got: typeName(value) };
  }
  if (kind.allows && !kind.allows(value)) {
    return { error: RangeError, expected: kind.expected, got: show(value) };
  }
  const reason = spec.check?.(value);
  return reason === undefined ? undefined : { error: RangeError, reason };
}

/**
 * Checks options given in code and fills in the defaults. Throws a `TypeError` for an unknown
 * option or one of the wrong type, a `RangeError` for a value out of range; each names the option
 * (as `name` spells it: the command line passes its flag names).
 */
export function resolveOptions<S extends OptionSpecs>(
  schema: OptionSchema<S>,
  given: Given<S> | undefined,
  name: (option: string) => string = (option) => option,
): Resolved<S> {
  const { subject, specs } = schema;
  if (
    given !== undefined &&
    (typeof given !== 'object' || given === null || Array.isArray(given))
  ) {
    throw new TypeError(`${subject} options must be an object, got ${typeName(given)}`);
  }
  const values: Record<string, unknown> = { ...given };
  const names = Object.keys(specs);
  const unknown = Object.keys(values).filter((k) => !Object.hasOwn(specs, k));
  if (unknown.length > 0) {
    throw new TypeError(
      `unknown ${subject} option ${unknown.join(', ')}; its options are ${names.join(', ') || 'none'}`,
    );
  }
  for (const [option, spec] of Object.entries(specs)) {
    const value = values[option];
    if (value === undefined) {
      if (spec.required) {
        throw new TypeError(
          `${subject} option ${name(option)} must be ${spec.kind.expected}, got nothing`,
        );
      }
      continue;
    }
    const f = fault(spec, value);
    if (f) throw new f.error(`${subject} option ${name(option)} ${inWords(f)}`);
  }
  // Derived defaults come last: they may read the others.
  for (const derived of [false, true]) {
    for (const [option, { default: d }] of Object.entries(specs)) {
      if (values[option] !== undefined || d === undefined) continue;
      if ((typeof d === 'function') === derived) {
        values[option] = derived ? (d as (v: typeof values) => unknown)(values) : d;
      }
    }
  }
  const resolved = values as Resolved<S>;
  const problem = schema.check?.(resolved, name);
  if (problem !== undefined) throw new RangeError(problem);
  return resolved;
}

/** A fault in words, completing "<option> ...". */
function inWords(f: Fault): string {
  return f.reason ?? `must be ${f.expected}, got ${f.got}`;
}

/** `heartbeatPeriod` as a flag: `--heartbeat-period`, unless its spec names another. */
export function flagName(option: string, spec?: OptionSpec<unknown>): string {
  return spec?.flag ?? `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** How the command line spells the schema's options, for messages naming them. */
export function flagNames(schema: OptionSchema): (option: string) => string {
  return (option) => flagName(option, schema.specs[option]);
}

/**
 * The command-line arguments that give a child process these options: those given and not at
 * their default, in the schema's order.
 * @example toArgv(controllerSettings, { hwm: 4, curve: true }) // ['--hwm', '4', '--curve']
 */
export function toArgv<S extends OptionSpecs>(
  schema: OptionSchema<S>,
  given: Partial<Given<S>>,
): string[] {
  const values = given as Record<string, unknown>;
  return Object.entries(schema.specs).flatMap(([option, spec]) => {
    const value = values[option];
    if (value === undefined || value === spec.default || spec.cli === false) return [];
    const long = flagName(option, spec);
    if (spec.kind.arg === undefined) return value === true ? [long] : [];
    if (spec.kind.format) return [long, spec.kind.format(value)];
    return [long, typeof value === 'object' ? JSON.stringify(value) : String(value)];
  });
}

function typeName(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

// The kinds every schema uses.

/** A switch: `true` when the flag is given. */
export const flag: Kind<boolean> = {
  expected: 'true or false',
  is: (v): v is boolean => typeof v === 'boolean',
};

/** An integer of at least `min`. */
export function integer(min: number, arg = '<n>'): Kind<number> {
  return {
    expected: min === 1 ? 'a positive integer' : `an integer >= ${min}`,
    arg,
    is: (v): v is number => typeof v === 'number',
    allows: (v) => Number.isInteger(v) && v >= min,
    parse: (text) => (text.trim() === '' ? NaN : Number(text)),
  };
}

/** A finite number of at least 0. */
export function nonNegative(arg = '<n>'): Kind<number> {
  return {
    expected: 'a number >= 0',
    arg,
    is: (v): v is number => typeof v === 'number',
    allows: (v) => Number.isFinite(v) && v >= 0,
    parse: (text) => (text.trim() === '' ? NaN : Number(text)),
  };
}

/** Any string (an option's `check` may narrow it). */
export function string(arg = '<text>'): Kind<string> {
  return {
    expected: 'a string',
    arg,
    is: (v): v is string => typeof v === 'string',
    parse: (t) => t,
  };
}

/** A JavaScript identifier, such as a variable name in a namespace. */
export function identifier(arg = '<name>'): Kind<string> {
  return {
    expected: 'a variable name',
    arg,
    is: (v): v is string => typeof v === 'string',
    allows: (v) => /^[A-Za-z_$][\w$]*$/.test(v),
    parse: (t) => t,
  };
}

/** One of `names`. */
export function oneOf<N extends string>(names: readonly N[], arg = '<name>'): Kind<N> {
  return {
    expected: `one of ${names.join(', ')}`,
    arg,
    choices: names,
    is: (v): v is N => typeof v === 'string',
    allows: (v) => names.includes(v),
    parse: (t) => t,
  };
}

/** A non-empty array of strings (in code only: the command line spells it as JSON). */
export const strings: Kind<string[]> = {
  expected: 'a non-empty array of strings',
  is: (v): v is string[] => Array.isArray(v),
  allows: (v) => v.length > 0 && v.every((s) => typeof s === 'string'),
};

/** A plain object; the command line gives it as JSON. */
export function jsonObject<T extends object>(example: string): Kind<T> {
  return {
    expected: `a JSON object, not an array or a single value, such as '${example}'`,
    arg: '<json>',
    is: (v): v is T => typeof v === 'object' && v !== null && !Array.isArray(v),
    parse: (text) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        return text;
      }
    },
  };
}

/** Values of type `T` that `is` recognises (in code only). */
export function custom<T>(expected: string, is: (v: unknown) => v is T): Kind<T> {
  return { expected, is };
}

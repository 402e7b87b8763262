/**
 * Checks for untrusted JSON, shared by every vocabulary tsparallel reads: its wire messages, the
 * Jupyter kernel messages the kernel answers itself, and the comm between kernel and panel. A
 * check gives null when the value fits, else a `Problem` saying where and what was expected. The
 * path is put together only on failure, so a passing check allocates nothing. No dependencies,
 * so that the lab extension can bundle this file as it is.
 */

/** Where a value does not fit (keys and indices from the checked root) and what it should be. */
export interface Problem {
  path: (string | number)[];
  expected: string;
}

/** Null when `v` fits; otherwise what is wrong with it. */
export type Check = (v: unknown) => Problem | null;

/** True for a plain object (not null, not an array). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A check from a test, naming what it expects, e.g. `'a string'`. */
export const is =
  (test: (v: unknown) => boolean, expected: string): Check =>
  (v) =>
    test(v) ? null : { path: [], expected };

export const str = is((v) => typeof v === 'string', 'a string');
export const num = is((v) => typeof v === 'number' && Number.isFinite(v), 'a number');
export const bool = is((v) => typeof v === 'boolean', 'true or false');
/** Any plain object, whatever its fields. */
export const obj = is(isObject, 'an object');

/** One of a fixed set of strings. */
export const oneOf = (values: readonly string[]): Check =>
  is((v) => values.includes(v as string), `one of ${values.join(', ')}`);

export const optional =
  (check: Check): Check =>
  (v) =>
    v === undefined ? null : check(v);

export const nullable =
  (check: Check): Check =>
  (v) =>
    v === null ? null : check(v);

/** An array whose every item passes `item`. */
export const arrayOf =
  (item: Check): Check =>
  (v) => {
    if (!Array.isArray(v)) return { path: [], expected: 'an array' };
    for (let i = 0; i < v.length; i++) {
      const problem = item(v[i]);
      if (problem) return within(i, problem);
    }
    return null;
  };

/** An object whose every value passes `value`, whatever its keys. */
export const recordOf =
  (value: Check): Check =>
  (v) => {
    if (!isObject(v)) return { path: [], expected: 'an object' };
    for (const k in v) {
      const problem = value(v[k]);
      if (problem) return within(k, problem);
    }
    return null;
  };

/** An object whose named fields pass their checks; other fields are let through. */
export const shape = (fields: Record<string, Check>): Check => {
  const entries = Object.entries(fields);
  return (v) => {
    if (!isObject(v)) return { path: [], expected: 'an object' };
    for (const [k, check] of entries) {
      const problem = check(v[k]);
      if (problem) return within(k, problem);
    }
    return null;
  };
};

/** An object whose fields are all among `fields`, each passing its check; none is required. */
export const onlyFields = (fields: Record<string, Check>): Check => {
  return (v) => {
    if (!isObject(v)) return { path: [], expected: 'an object' };
    for (const k in v) {
      const problem = Object.hasOwn(fields, k)
        ? fields[k](v[k])
        : { path: [], expected: `a known field (${Object.keys(fields).join(', ')})` };
      if (problem) return within(k, problem);
    }
    return null;
  };
};

/** `problem`, found under `key` of the value being checked. */
function within(key: string | number, problem: Problem): Problem {
  problem.path.unshift(key);
  return problem;
}

/** The problem as a sentence about the value called `root`: `message.state.engines[1] is not ...`. */
export function explain(problem: Problem, root: string): string {
  const path = problem.path.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('');
  return `${root}${path} is not ${problem.expected}`;
}

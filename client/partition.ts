/**
 * Splitting sequences across engines and joining the parts again. Typed arrays are split with
 * `subarray` and Arrow tables with `slice`, so their parts travel without a copy.
 */
import type { Table } from 'apache-arrow';
import { isArrowTable } from '../protocol/arrow-kind';

/** What `map` and `scatter` accept: arrays, typed arrays and any other iterable. */
export type Sequence<T> = readonly T[] | Iterable<T> | ArrayLike<T>;
export type Sliceable<T> =
  | readonly T[]
  | { subarray(begin: number, end: number): ArrayLike<T>; length: number };

/** An array or typed array of `seq` (iterables are read into an array once). */
export function toSliceable<T>(seq: Sequence<T>): Sliceable<T> {
  if (Array.isArray(seq) || (ArrayBuffer.isView(seq) && !(seq instanceof DataView))) {
    return seq as Sliceable<T>;
  }
  if (typeof seq === 'string') return [...seq] as T[];
  if (typeof seq === 'object' && seq !== null) {
    if (typeof (seq as Iterable<T>)[Symbol.iterator] === 'function')
      return [...(seq as Iterable<T>)];
    if (typeof (seq as ArrayLike<T>).length === 'number') return Array.from(seq as ArrayLike<T>);
  }
  throw new TypeError(`expected an array, typed array or other iterable, got ${describe(seq)}`);
}

function describe(v: unknown): string {
  return v === null
    ? 'null'
    : typeof v === 'object'
      ? (v.constructor?.name ?? 'object')
      : `${typeof v} ${String(v)}`;
}

function slice<T>(seq: Sliceable<T>, begin: number, end: number): ArrayLike<T> {
  return Array.isArray(seq)
    ? seq.slice(begin, end)
    : (seq as { subarray(b: number, e: number): ArrayLike<T> }).subarray(begin, end);
}

/** Element `i` of `seq`. */
export function at<T>(seq: Sliceable<T>, i: number): T {
  return (seq as ArrayLike<T>)[i];
}

/** `[begin, end)` of `n` contiguous parts of `length` whose sizes differ by at most one, longer first. */
function partRanges(length: number, n: number): [number, number][] {
  const base = Math.floor(length / n);
  const extra = length % n;
  const ranges: [number, number][] = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    const size = base + (i < extra ? 1 : 0);
    ranges.push([at, at + size]);
    at += size;
  }
  return ranges;
}

/** `[begin, end)` of consecutive chunks of `size` (the last may be shorter). */
export function chunkRanges(length: number, size: number): [number, number][] {
  const ranges: [number, number][] = [];
  for (let at = 0; at < length; at += size) ranges.push([at, Math.min(at + size, length)]);
  return ranges;
}

/** `n` contiguous parts whose lengths differ by at most one, longer ones first. */
export function partition<T>(seq: Sliceable<T>, n: number): ArrayLike<T>[] {
  return partRanges(seq.length, n).map(([begin, end]) => slice(seq, begin, end));
}

/** `n` row slices of `table`, split as {@link partition} splits a sequence. */
export function partitionRows(table: Table, n: number): Table[] {
  return partRanges(table.numRows, n).map(([begin, end]) => table.slice(begin, end));
}

/** Consecutive chunks of `size` elements (the last may be shorter). */
export function chunk<T>(seq: Sliceable<T>, size: number): ArrayLike<T>[] {
  return chunkRanges(seq.length, size).map(([begin, end]) => slice(seq, begin, end));
}

/**
 * Joins parts made by `partition` or `partitionRows`: arrays flat, typed arrays into one of the
 * same kind, Arrow tables into one table (sharing the parts' columns).
 */
export function concat(parts: unknown[]): unknown {
  if (parts.length > 0 && parts.every(isArrowTable)) {
    const [first, ...rest] = parts as Table[];
    return first.concat(...rest);
  }
  if (parts.length > 0 && parts.every((p) => Buffer.isBuffer(p)))
    return Buffer.concat(parts as Buffer[]);
  if (parts.length > 0 && parts.every((p) => ArrayBuffer.isView(p) && !(p instanceof DataView))) {
    const views = parts as unknown as Uint8Array[];
    const Ctor = views[0].constructor as new (n: number) => Uint8Array;
    const out = new Ctor(views.reduce((n, v) => n + v.length, 0));
    let at = 0;
    for (const v of views) {
      out.set(v, at);
      at += v.length;
    }
    return out;
  }
  if (parts.every(Array.isArray)) return (parts as unknown[][]).flat();
  return parts;
}

/**
 * Splitting sequences across engines and joining the parts again. Typed arrays are split with
 * `subarray`, so their parts travel without a copy.
 */

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

/** `n` contiguous parts whose lengths differ by at most one, longer ones first. */
export function partition<T>(seq: Sliceable<T>, n: number): ArrayLike<T>[] {
  const base = Math.floor(seq.length / n);
  const extra = seq.length % n;
  const parts: ArrayLike<T>[] = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    const size = base + (i < extra ? 1 : 0);
    parts.push(slice(seq, at, at + size));
    at += size;
  }
  return parts;
}

/** Consecutive chunks of `size` elements (the last may be shorter). */
export function chunk<T>(seq: Sliceable<T>, size: number): ArrayLike<T>[] {
  const chunks: ArrayLike<T>[] = [];
  for (let at = 0; at < seq.length; at += size) chunks.push(slice(seq, at, at + size));
  return chunks;
}

/** Joins parts made by `partition`: arrays flat, typed arrays into one of the same kind. */
export function concat(parts: unknown[]): unknown {
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

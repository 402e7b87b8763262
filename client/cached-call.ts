/**
 * One view call's use of the result cache (`withOptions({ cache })`): the key of each call or
 * map element, the values found on disk, and the storing of the rest once their tasks finish
 * well. A map's cached elements are left out of the tasks it sends, and its results are merged
 * back in input order (`MapLayout`). See `result-cache.ts` for the store itself.
 */
import { decodeValue, encodeValue } from '../protocol/serialize';
import { ActorCall } from './actor';
import {
  AsyncMapResult,
  AsyncResult,
  type MapLayout,
  type ResultOptions,
  type TaskState,
} from './async-result';
import { at, type Sliceable } from './partition';
import { Reference } from './reference';
import { cacheKey, type ResultCache } from './result-cache';

/** What a cached call needs of its client. */
export interface CacheClient {
  /** A finished task holding `value`, known to the client as one no engine ran. */
  fromCache(value: unknown): TaskState;
}

/** The cache as one call of one function uses it; see the file's comment. */
export class CachedCall {
  constructor(
    private readonly cache: ResultCache,
    private readonly maxBytes: number,
    private readonly source: string,
    private readonly client: CacheClient,
  ) {}

  /** The key of calling the function with `args`. */
  key(args: readonly unknown[], root = 'args'): string {
    const ref = args.findIndex(
      (a) => a instanceof Reference || a instanceof AsyncResult || a instanceof ActorCall,
    );
    if (ref >= 0) {
      const a = args[ref];
      const what =
        a instanceof Reference
          ? 'a Reference'
          : a instanceof ActorCall
            ? "an actor's call"
            : 'an AsyncResult';
      throw new TypeError(
        `${root}[${ref}] is ${what}, whose value lives on an engine and cannot be part of a ` +
          'cache key: pass the value itself, or call through a view without the cache option',
      );
    }
    return cacheKey(this.source, encodeValue(args, root));
  }

  /** The value stored under `key`, or undefined on a miss. */
  lookup(key: string): { value: unknown } | undefined {
    const frames = this.cache.get(key);
    return frames && { value: decodeValue(frames) };
  }

  /** A finished task holding `value`, found in the cache. */
  cached(value: unknown): TaskState {
    return this.client.fromCache(value);
  }

  /**
   * Stores `task`'s value under `keys` once it finishes well: one key for a call, one per
   * element (in order) for a map task. Failures are never stored; a store that cannot be
   * written is a warning, never the task's failure.
   */
  storeWhenDone(task: TaskState, mode: 'call' | 'map', keys: readonly string[]): TaskState {
    // The value comes here to be stored: with the reply, unless it is too large to.
    task.ask();
    task.onFinish(() => void task.load().then(() => this.store(task, mode, keys)));
    return task;
  }

  private store(task: TaskState, mode: 'call' | 'map', keys: readonly string[]): void {
    if (task.metadata.status !== 'ok' || task.metadata.cached) return;
    try {
      const values = mode === 'call' ? [task.value] : (task.value as unknown[]);
      keys.forEach((key, i) =>
        this.cache.put(key, encodeValue(values[i], 'result'), this.maxBytes),
      );
    } catch (e) {
      process.emitWarning(
        `tsparallel cache: could not store a result in ${this.cache.dir}: ${(e as Error).message}`,
        { code: 'TSPARALLEL_CACHE_WRITE' },
      );
    }
  }

  /**
   * Looks up every element of a map over `columns` (one per parameter); what is left to run is
   * in the plan's `columns`.
   */
  planMap(columns: readonly Sliceable<unknown>[]): MapPlan {
    const total = columns[0]?.length ?? 0;
    const keys: string[] = [];
    const hits: number[] = [];
    const values: unknown[] = [];
    const misses: number[] = [];
    for (let i = 0; i < total; i++) {
      const key = this.key(
        columns.map((c) => at(c, i)),
        `elements[${i}]`,
      );
      const found = this.lookup(key);
      if (found) {
        hits.push(i);
        values.push(found.value);
      } else {
        misses.push(i);
        keys.push(key);
      }
    }
    return new MapPlan(this, columns, total, hits, values, misses, keys);
  }
}

/** A map's elements split into cached values and the elements left to run; see `planMap`. */
export class MapPlan {
  /** The columns of the elements to run: all of the input when nothing was cached. */
  readonly columns: readonly Sliceable<unknown>[];
  private readonly positions: number[][] = [];

  constructor(
    private readonly call: CachedCall,
    columns: readonly Sliceable<unknown>[],
    private readonly total: number,
    private readonly hits: number[],
    private readonly values: unknown[],
    private readonly misses: number[],
    private readonly keys: string[],
  ) {
    this.columns = hits.length === 0 ? columns : columns.map((c) => misses.map((i) => at(c, i)));
  }

  /** Follows the task sent for elements `[begin, begin + count)` of `columns`, to store them. */
  track(task: TaskState, begin: number, count: number): TaskState {
    this.positions.push(this.misses.slice(begin, begin + count));
    return this.call.storeWhenDone(task, 'map', this.keys.slice(begin, begin + count));
  }

  /** The map's result: the cached values first, then the tasks `track` followed, in order. */
  result<R>(
    tasks: readonly TaskState[],
    options: ResultOptions,
    ordered: boolean,
  ): AsyncMapResult<R> {
    if (this.hits.length === 0) return new AsyncMapResult<R>(tasks, options, ordered);
    const layout: MapLayout = { total: this.total, positions: [this.hits, ...this.positions] };
    const cached = this.call.cached(this.values);
    return new AsyncMapResult<R>([cached, ...tasks], options, ordered, layout);
  }
}

/**
 * Type-level checks: `apply` and `map` infer argument and result types from the function.
 * The `@ts-expect-error` lines fail the build if a wrong call ever type-checks; `npm run build`
 * (and so `npm test`) is the check, there is nothing to run.
 */
import type { Table } from 'apache-arrow';
import type { AsyncMapResult, AsyncResult, ExecuteReply } from '../../client/async-result';
import type { Reference } from '../../client/reference';
import type { DirectView, LoadBalancedView } from '../../client/views';
import { exactly } from './exactly';

// Never called: these functions exist for the compiler to check.
export function directViewTypes(dv: DirectView, ref: Reference<number>): void {
  exactly<AsyncResult<number[]>>()(dv.apply((a: number, b: string) => a + b.length, 1, 'x'));
  exactly<AsyncResult<string[]>>()(dv.apply(async () => 'done'));
  dv.apply((a: number) => a, ref);
  // @ts-expect-error the argument must be a number
  dv.apply((a: number) => a, 'one');
  // @ts-expect-error a missing argument
  dv.apply((a: number, b: number) => a + b, 1);
  exactly<AsyncMapResult<string>>()(
    dv.map((x: number, y: string) => `${x}${y}`, [1, 2], ['a', 'b']),
  );
  // @ts-expect-error the second sequence must hold strings
  dv.map((x: number, y: string) => x + y, [1], [2]);
}

export function loadBalancedViewTypes(lv: LoadBalancedView, t: Table): void {
  exactly<AsyncResult<number[]>>()(lv.apply((a: number) => [a], 1));
  exactly<AsyncMapResult<number>>()(lv.parallel((x: number) => x * x)([1, 2]));
  // @ts-expect-error a load-balanced apply gives one value, not an array
  exactly<AsyncResult<number[]>>()(lv.apply((a: number) => a, 1));
  // @ts-expect-error a Float64Array is not a sequence of strings
  lv.map((s: string) => s, new Float64Array(2));
  exactly<AsyncResult<Table>>()(lv.mapBatches(t, (b: Table) => b.slice(0, 1), { rows: 10 }));
  exactly<AsyncResult<Table>>()(lv.mapBatches(t, async (b: Table) => b));
  // @ts-expect-error fn must return a Table
  lv.mapBatches(t, (b: Table) => b.numRows);
  // @ts-expect-error mapBatches takes a Table, not an array
  lv.mapBatches([1, 2], (b: Table) => b);
}

export function cacheAndDataTypes(lv: LoadBalancedView): void {
  const cv = lv.withOptions({ cache: { dir: '/tmp/c', maxBytes: 1e9 } });
  exactly<LoadBalancedView>()(lv.withOptions({ cache: true }));
  exactly<boolean>()(cv.apply((a: number) => a, 1).cached);
  // @ts-expect-error maxBytes is a number of bytes
  lv.withOptions({ cache: { maxBytes: '1G' } });
  // A map's data is per task; a single result's is the latest.
  exactly<unknown[]>()(cv.map((x: number) => x, [1]).data);
  exactly<unknown>()(cv.apply((x: number) => x, 1).data);
  cv.apply(() => 1).onData((data: unknown, engineId: number) => [data, engineId]);
}

export function resultArgumentTypes(
  lv: LoadBalancedView,
  dv: DirectView,
  n: AsyncResult<number>,
  s: AsyncResult<string>,
  t: Table,
): void {
  // A parameter of type T takes T or an AsyncResult<T>, at the top level and in a map.
  exactly<AsyncResult<number>>()(lv.apply((a: number, b: number) => a + b, n, 1));
  exactly<AsyncResult<number[]>>()(dv.apply((a: number) => a, n));
  exactly<AsyncMapResult<number>>()(lv.map((x: number) => x * 2, [n, 2, n]));
  // A direct view's result is an array, a map's a list: what `await` gives them.
  lv.apply(
    (xs: number[]) => xs.length,
    dv.apply(() => 1),
  );
  lv.apply(
    (xs: number[]) => xs.length,
    lv.map((x: number) => x, [1, 2]),
  );
  // @ts-expect-error an AsyncResult<string> is no number
  lv.apply((a: number) => a, s);
  // @ts-expect-error nor in a map's sequence
  lv.map((x: number) => x, [n, s]);
  const perEngine = dv.apply(() => 1);
  // @ts-expect-error a direct view's result is an array, not one value
  lv.apply((a: number) => a, perEngine);
  // Results assembled on the client take their place as any other.
  exactly<AsyncResult<number>>()(lv.apply((xs: number[]) => xs.length, dv.gather<number[]>('p')));
  const batches = lv.mapBatches(t, (b) => b);
  exactly<AsyncResult<number>>()(lv.apply((tab: Table) => tab.numRows, batches));
  lv.map((tab: Table) => tab.numRows, [t, batches]);
  lv.apply((replies: ExecuteReply[]) => replies.length, dv.execute('1'));
  // @ts-expect-error a mapBatches result is a Table, no number
  lv.apply((rows: number) => rows, batches);
  // @ts-expect-error nor an execute's replies
  lv.apply((xs: number[]) => xs, dv.execute('1'));
}

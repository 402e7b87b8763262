/**
 * Type-level checks: `apply` and `map` infer argument and result types from the function.
 * The `@ts-expect-error` lines fail the build if a wrong call ever type-checks; `npm run build`
 * (and so `npm test`) is the check, there is nothing to run.
 */
import type { AsyncMapResult, AsyncResult } from '../../client/async-result';
import type { Reference } from '../../client/reference';
import type { DirectView, LoadBalancedView } from '../../client/views';

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** `exactly<E>()(value)` compiles only when the value's type is exactly `E`. */
const exactly =
  <Expected>() =>
  <Actual>(value: Actual, ..._: Equal<Actual, Expected> extends true ? [] : [never]): Actual =>
    value;

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

export function loadBalancedViewTypes(lv: LoadBalancedView): void {
  exactly<AsyncResult<number[]>>()(lv.apply((a: number) => [a], 1));
  exactly<AsyncMapResult<number>>()(lv.parallel((x: number) => x * x)([1, 2]));
  // @ts-expect-error a load-balanced apply gives one value, not an array
  exactly<AsyncResult<number[]>>()(lv.apply((a: number) => a, 1));
  // @ts-expect-error a Float64Array is not a sequence of strings
  lv.map((s: string) => s, new Float64Array(2));
}

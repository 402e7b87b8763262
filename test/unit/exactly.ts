/** A compile-time check for the type-level tests (`*.check.ts`); it does nothing at run time. */

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** `exactly<E>()(value)` compiles only when the value's type is exactly `E`. */
export const exactly =
  <Expected>() =>
  <Actual>(value: Actual, ..._: Equal<Actual, Expected> extends true ? [] : [never]): Actual =>
    value;

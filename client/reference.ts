/**
 * An argument that stands for a variable in the engine's namespace: the engine passes its own
 * value of `name` instead of anything sent from the client.
 * @example await rc.directView().apply((a: number[]) => a.length, new Reference<number[]>('data'));
 */
export class Reference<T = unknown> {
  /** Never set: carries `T` so that `apply` can check the argument's type. */
  declare readonly __type?: T;
  constructor(readonly name: string) {
    if (!/^[A-Za-z_$][\w$]*$/.test(name)) {
      throw new TypeError(`Reference name "${name}" is not a JavaScript identifier`);
    }
  }
}

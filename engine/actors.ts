/**
 * The actors of an engine's process (client/actor.ts is the client's side): instances of classes
 * sent as source, kept by actor id from one task to the next. The client makes, calls and drops
 * them with small functions sent as ordinary tasks, which find the table as a global under
 * `ACTORS`, out of the way of the user's names. The engine runs its tasks one at a time in the
 * order they arrive, awaiting each, and that is what orders an actor's calls.
 */
import * as vm from 'node:vm';

/** Where the table is in the engine's namespace; the client's functions name it so too. */
export const ACTORS = Symbol.for('tsparallel.actors');

type Constructor = new (...args: unknown[]) => object;

/** Actors by id; see the file's comment. */
export class ActorTable {
  /** Classes by source, compiled once: actors of one class share it and its statics. */
  private readonly classes = new Map<string, Constructor>();
  private readonly instances = new Map<string, object>();

  /** Runs the constructor of the class `source` evaluates to, and keeps the instance as `id`. */
  create(id: string, source: string, args: unknown[]): void {
    this.instances.set(id, new (this.compile(source))(...args));
  }

  /** Calls `method` of actor `id`; an async method's promise is returned for the task to await. */
  call(id: string, method: string, args: unknown[]): unknown {
    const instance = this.instances.get(id);
    if (instance === undefined) {
      throw new ReferenceError(`actor ${id} is not on this engine: it was released`);
    }
    const fn = (instance as Record<string, unknown>)[method];
    if (typeof fn !== 'function') {
      const name = instance.constructor.name || 'the actor';
      throw new TypeError(
        fn === undefined
          ? `${name} has no method ${method}; its methods: ${methodsOf(instance).join(', ') || 'none'}`
          : `${name}.${method} is ${typeof fn}, not a method`,
      );
    }
    return (fn as (...a: unknown[]) => unknown).apply(instance, args);
  }

  /** Drops actor `id`; its instance is garbage once nothing else of the engine holds it. */
  release(id: string): void {
    this.instances.delete(id);
  }

  /** How many actors the process holds. */
  get size(): number {
    return this.instances.size;
  }

  private compile(source: string): Constructor {
    let Class = this.classes.get(source);
    if (!Class) {
      const value = new vm.Script(`(${source})`, {
        filename: 'actor class',
        importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
      }).runInThisContext() as unknown;
      if (typeof value !== 'function') {
        throw new TypeError('actor needs a class; the source sent does not evaluate to one');
      }
      Class = value as Constructor;
      this.classes.set(source, Class);
    }
    return Class;
  }
}

/** The names of an instance's methods, its own and its classes', for a wrong name's error. */
function methodsOf(instance: object): string[] {
  const names = new Set<string>();
  for (let o: object | null = instance; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const name of Object.getOwnPropertyNames(o)) {
      const d = Object.getOwnPropertyDescriptor(o, name);
      if (name !== 'constructor' && typeof d?.value === 'function') names.add(name);
    }
  }
  return [...names];
}

/** The one table of the process: lightweight engines share the process, and its namespace. */
export const processActors = new ActorTable();

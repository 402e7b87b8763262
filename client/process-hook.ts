/**
 * Listeners told of values as code makes them: `Client.connect` announces each client it makes
 * and `Cluster.start` each cluster, so that whatever embeds the package (a notebook kernel, say)
 * can adopt them without the package knowing about it. With no listener, announcing does nothing.
 *
 * The listeners live on `globalThis` under a registered symbol because one process may load two
 * copies of the package (a notebook's own beside the kernel's), and both must reach them.
 */

/** A process-wide list of listeners for one kind of value. */
export interface ProcessHook<T> {
  /** Calls `listener` with each value announced from now on; the function returned stops that. */
  listen(listener: (value: T) => void): () => void;
  /** Tells every listener about `value`, in the order they started listening. */
  announce(value: T): void;
}

/** One value per process, shared by every copy of the package. */
export interface ProcessSlot<T> {
  get(): T | undefined;
  set(value: T): void;
}

/** The slot on `globalThis` under `Symbol.for(key)`. */
export function processSlot<T>(key: string): ProcessSlot<T> {
  const symbol = Symbol.for(key);
  const global = globalThis as { [symbol]?: T };
  return { get: () => global[symbol], set: (value) => void (global[symbol] = value) };
}

/** The hook registered under `Symbol.for(key)`, shared by every copy of the package. */
export function processHook<T>(key: string): ProcessHook<T> {
  const slot = processSlot<Set<(value: T) => void>>(key);
  const listeners = (): Set<(value: T) => void> => {
    let set = slot.get();
    if (!set) slot.set((set = new Set()));
    return set;
  };
  return {
    listen(listener) {
      listeners().add(listener);
      return () => void listeners().delete(listener);
    },
    announce(value) {
      for (const listener of listeners()) listener(value);
    },
  };
}

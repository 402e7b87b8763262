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

/** The hook registered under `Symbol.for(key)`, shared by every copy of the package. */
export function processHook<T>(key: string): ProcessHook<T> {
  const slot = Symbol.for(key);
  const listeners = (): Set<(value: T) => void> =>
    ((globalThis as { [slot]?: Set<(value: T) => void> })[slot] ??= new Set());
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

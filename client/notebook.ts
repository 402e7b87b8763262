/**
 * The link between code and a notebook kernel running in the same process. A tsparallel kernel
 * installs a hook here; every `Client.connect` and `Cluster.start` then tells it about the new
 * client or cluster, which becomes the one the kernel's `%px` magics use. Outside a kernel there
 * is no hook and announcing does nothing.
 *
 * The hook lives on `globalThis` under a registered symbol because a notebook may load its own
 * copy of tsparallel (from the notebook's `node_modules`) beside the kernel's.
 */
import type { Cluster } from '../cluster/cluster';
import type { Client } from './client';

/** What a kernel installs: it adopts what code creates and shares what it uses. */
export interface NotebookHook {
  adopt(created: { cluster: Cluster } | { client: Client }): void;
  /** The cluster `%cluster` manages, if any. */
  readonly cluster: Cluster | undefined;
  /** The client `%px` uses, if any. */
  readonly client: Client | undefined;
  /** Hands over a value the kernel is binding to a notebook variable (see the kernel's `bind`). */
  take(name: string): unknown;
}

/** The registered symbol's key, for code the kernel generates to reach the hook. */
export const NOTEBOOK_HOOK_KEY = 'tsparallel.notebook';
const HOOK = Symbol.for(NOTEBOOK_HOOK_KEY);

function hook(): NotebookHook | undefined {
  return (globalThis as { [HOOK]?: NotebookHook })[HOOK];
}

/** Makes `h` the hook of this process (the kernel calls this once, at start). */
export function installNotebookHook(h: NotebookHook): void {
  (globalThis as { [HOOK]?: NotebookHook })[HOOK] = h;
}

/** Tells the kernel, if any, about a client or cluster that code created. */
export function announce(created: { cluster: Cluster } | { client: Client }): void {
  hook()?.adopt(created);
}

/**
 * The client the notebook's `%px` magics use: the last one created in a cell or by
 * `%cluster start|connect`. Undefined outside a tsparallel kernel or before any exists.
 * @example const rc = notebookClient(); await rc?.directView().execute('1 + 1');
 */
export function notebookClient(): Client | undefined {
  return hook()?.client;
}

/**
 * The cluster the notebook's `%cluster` magics manage: the last one started in a cell or by
 * `%cluster start`. Undefined outside a tsparallel kernel or before any exists.
 */
export function notebookCluster(): Cluster | undefined {
  return hook()?.cluster;
}

/**
 * What code in a notebook reaches of the tsparallel kernel running it: the client and cluster
 * the magics use, and the values the kernel is binding to notebook variables. Outside a kernel
 * nothing is installed and both functions give undefined.
 *
 * The kernel installs itself in a process slot (`processSlot`) because a notebook may load its
 * own copy of tsparallel (from the notebook's `node_modules`) beside the kernel's.
 */
import { resolve } from 'node:path';
import type { Client } from '../client/client';
import { processSlot } from '../client/process-hook';
import type { Cluster } from '../cluster/cluster';

/** What a kernel installs for the code of its notebook. */
export interface NotebookHook {
  /** The cluster `%cluster` manages, if any. */
  readonly cluster: Cluster | undefined;
  /** The client `%px` uses, if any. */
  readonly client: Client | undefined;
  /** Hands over a value the kernel is binding to a notebook variable (see the kernel's `bind`). */
  take(name: string): unknown;
}

/** The package's type declarations, for the types of the names the kernel binds in cells. */
export const PACKAGE_TYPES = JSON.stringify(resolve(__dirname, '..', 'index'));

/** The registered symbol's key, for code the kernel generates to reach the hook. */
export const NOTEBOOK_HOOK_KEY = 'tsparallel.notebook';
const hook = processSlot<NotebookHook>(NOTEBOOK_HOOK_KEY);

/** Makes `h` the hook of this process (the kernel calls this once, at start). */
export function installNotebookHook(h: NotebookHook): void {
  hook.set(h);
}

/**
 * The client the notebook's `%px` magics use: the last one created in a cell or by
 * `%cluster start|connect`. Undefined outside a tsparallel kernel or before any exists.
 * @example const rc = notebookClient(); await rc?.directView().execute('1 + 1');
 */
export function notebookClient(): Client | undefined {
  return hook.get()?.client;
}

/**
 * The cluster the notebook's `%cluster` magics manage: the last one started in a cell or by
 * `%cluster start`. Undefined outside a tsparallel kernel or before any exists.
 */
export function notebookCluster(): Cluster | undefined {
  return hook.get()?.cluster;
}

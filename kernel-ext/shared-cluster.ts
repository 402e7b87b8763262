/**
 * The one cluster and client a kernel's notebook shares: the magics, the lab panel's commands
 * and code in cells all act on them through this object, so each operation is written once.
 * Clients and clusters that code creates are adopted through the hooks `Client.connect` and
 * `Cluster.start` announce on.
 */
import { Client, clientConnected } from '../client/client';
import { Cluster, clusterStarted } from '../cluster/cluster';
import type { LauncherName } from '../cluster/launchers';
import type { Resources } from '../protocol/resources';
import { MagicUsageError } from './magic-options';
import type { Outlet } from './tslab';

/** Makes notebook variables of `values` (name: [value, its type in the package]). */
export type Bind = (values: Record<string, [unknown, string]>, out: Outlet) => Promise<void>;

/** How `stop` ended: a cluster started here stopped, or a connection to one elsewhere closed. */
export type Stopped = 'cluster stopped' | 'client closed';

/** See the file's comment. */
export class SharedCluster {
  private current: { cluster: Cluster | undefined; client: Client | undefined } = {
    cluster: undefined,
    client: undefined,
  };
  private readonly unlisten: (() => void)[];

  /**
   * `bind` sets notebook variables for what `start` and `connect` make; `changed` is told of
   * every new cluster or client.
   */
  constructor(
    private readonly bind: Bind,
    private readonly changed: (client: Client | undefined, cluster: Cluster | undefined) => void,
  ) {
    this.unlisten = [
      clusterStarted.listen((cluster) => this.set({ cluster, client: undefined })),
      clientConnected.listen((client) => this.set({ ...this.current, client })),
    ];
  }

  /** The cluster started here or in a cell, if any. */
  get cluster(): Cluster | undefined {
    return this.current.cluster;
  }

  /** The client `%px` and the panel use, if any. */
  get client(): Client | undefined {
    return this.current.client;
  }

  private set(next: { cluster: Cluster | undefined; client: Client | undefined }): void {
    this.current = next;
    this.changed(next.client, next.cluster);
  }

  /**
   * Starts a cluster (`Cluster.start`'s options), connects to it, and sets `cluster` and `rc`
   * in the notebook.
   */
  async start(
    options: { engines: number | undefined; launcher: LauncherName; resources?: Resources },
    out: Outlet,
  ): Promise<Client> {
    if (this.cluster) {
      throw new MagicUsageError(
        'a cluster is running already; %cluster stop it first, or use it with %px.',
      );
    }
    const cluster = await Cluster.start(options);
    const rc = await cluster.connect();
    await this.bind({ cluster: [cluster, 'Cluster'], rc: [rc, 'Client'] }, out);
    return rc;
  }

  /** Connects to a running cluster (the default profile's without `file`); sets `rc`. */
  async connect(file: string | undefined, out: Outlet): Promise<Client> {
    const rc = await Client.connect(file === undefined ? {} : { connectionFile: file });
    await this.bind({ rc: [rc, 'Client'] }, out);
    return rc;
  }

  /** Stops the cluster started here, or closes the client of one started elsewhere. */
  async stop(): Promise<Stopped> {
    const { cluster, client } = this.current;
    if (!cluster && !client)
      throw new MagicUsageError('there is no cluster to stop; %cluster start -n 4 starts one.');
    this.set({ cluster: undefined, client: undefined });
    if (cluster) {
      await cluster.stop();
      return 'cluster stopped';
    }
    client?.close();
    return 'client closed';
  }

  /** Grows or shrinks the cluster to `engines`; resolves with the live ids. */
  scale(engines: number): Promise<number[]> {
    return this.requireCluster().scale(engines);
  }

  /** Starts `count` more engines; resolves with their ids. */
  addEngines(count: number): Promise<number[]> {
    return this.requireCluster().addEngines(count);
  }

  /** Stops engine `id`. */
  stopEngine(id: number): Promise<void> {
    return this.requireCluster().stopEngine(id);
  }

  /** Replaces engine `id` by a new one; resolves with the new engine's id. */
  restartEngine(id: number): Promise<number> {
    return this.requireCluster().restartEngine(id);
  }

  /** Interrupts engine `id`'s running task. */
  async interruptEngine(id: number): Promise<void> {
    await this.requireClient().sendSignal('SIGINT', id);
  }

  /** Aborts task `msgId`, queued or running. */
  async abortTask(msgId: string): Promise<void> {
    await this.requireClient().abort(msgId);
  }

  /** The client in use, or a `MagicUsageError` saying how to get one. */
  requireClient(): Client {
    if (this.client) return this.client;
    throw new MagicUsageError(
      'there is no cluster: %cluster start -n 4 starts one, %cluster connect uses a running one, or create a Client or Cluster in a cell.',
    );
  }

  /** The client `%px` uses, connecting to a cluster that code started without connecting. */
  async ensureClient(): Promise<Client> {
    if (!this.client && this.cluster) await this.cluster.connect();
    return this.requireClient();
  }

  /** The cluster started here, or a `MagicUsageError` saying that this needs one. */
  requireCluster(): Cluster {
    if (this.cluster) return this.cluster;
    throw new MagicUsageError(
      'this needs a cluster started here (%cluster start), not only a connection.',
    );
  }

  /** Stops listening, then stops the cluster started here and closes the client. */
  async close(): Promise<void> {
    for (const stop of this.unlisten) stop();
    await this.cluster?.stop();
    this.client?.close();
  }
}

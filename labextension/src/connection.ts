/**
 * Follows the current notebook's kernel and keeps a comm to it open for the panel's model: a
 * new comm when the notebook or its kernel changes, and again after a restart, which closes
 * every comm on the kernel side.
 */
import type { ISessionContext } from '@jupyterlab/apputils';
import type { INotebookTracker } from '@jupyterlab/notebook';
import type { Kernel } from '@jupyterlab/services';
import type { JSONObject } from '@lumino/coreutils';
import {
  COMM_TARGET,
  KERNEL_IMPLEMENTATION,
  type PanelMessage,
} from '../../kernel-ext/comm-messages';
import type { ClusterModel } from './model';

/** See the file's comment. */
export class KernelFollower {
  private context: ISessionContext | null = null;
  private comm: Kernel.IComm | null = null;
  /** Counts connection attempts, so that one overtaken by a newer one gives up. */
  private attempt = 0;

  constructor(
    tracker: INotebookTracker,
    private readonly model: ClusterModel,
  ) {
    const follow = (): void => this.follow(tracker.currentWidget?.sessionContext ?? null);
    tracker.currentChanged.connect(follow);
    follow();
  }

  private follow(context: ISessionContext | null): void {
    if (context === this.context) return;
    this.context?.kernelChanged.disconnect(this.reconnect, this);
    this.context?.statusChanged.disconnect(this.onStatus, this);
    this.context = context;
    context?.kernelChanged.connect(this.reconnect, this);
    context?.statusChanged.connect(this.onStatus, this);
    this.reconnect();
  }

  private onStatus(_: ISessionContext, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting') {
      this.closeComm();
      this.model.detach('restarting');
    } else if (status === 'dead') {
      this.closeComm();
      this.model.detach('no-kernel');
    } else if (this.model.phase === 'restarting') {
      // The restarted kernel is up ("Restart and Run All" keeps it busy, not idle); the kernel
      // connection holds the comm's messages until the new kernel has answered its first.
      this.reconnect();
    }
  }

  /** Connects anew; a failure (the kernel went away meanwhile) leaves the no-kernel state. */
  private reconnect(): void {
    const connecting = this.connect();
    const attempt = this.attempt;
    connecting.catch(() => {
      if (attempt === this.attempt) this.model.detach('no-kernel');
    });
  }

  /** Opens a comm to the current kernel if it is a tsparallel kernel. */
  private async connect(): Promise<void> {
    const attempt = ++this.attempt;
    this.closeComm();
    // Until the new comm opens, commands have nowhere to go.
    this.model.detach('connecting');
    const context = this.context;
    if (!context) {
      this.model.detach('no-notebook');
      return;
    }
    await context.ready;
    const kernel = context.session?.kernel;
    if (attempt !== this.attempt) return;
    if (!kernel) {
      this.model.detach('no-kernel');
      return;
    }
    const info = await kernel.info;
    if (attempt !== this.attempt) return;
    if (info.implementation !== KERNEL_IMPLEMENTATION) {
      this.model.detach('not-tsparallel', kernel.name);
      return;
    }
    const comm = kernel.createComm(COMM_TARGET);
    comm.onMsg = (msg) => this.model.receive(msg.content.data);
    comm.onClose = () => {
      // The kernel closes a comm whose target it does not know.
      if (this.comm !== comm) return;
      this.comm = null;
      this.model.detach('not-tsparallel', kernel.name);
    };
    this.comm = comm;
    this.model.attach((m: PanelMessage) => comm.send(m as unknown as JSONObject));
    comm.open({});
  }

  private closeComm(): void {
    const comm = this.comm;
    this.comm = null;
    if (!comm || comm.isDisposed) return;
    try {
      // The kernel stops sending this panel its state (the notebook may keep running).
      comm.close().done.catch(() => undefined);
    } catch {
      // The kernel is gone: there is nobody to tell.
      comm.dispose();
    }
  }
}

/**
 * The state the lab panel shows, kept up to date from the client's events: engines joining and
 * leaving, and the tasks this kernel's client sends and sees finish. Queue lengths and task
 * counts come from the controller, asked at most once per `QUEUE_REFRESH_MS` after a change, so
 * a burst of tasks costs one request; nothing polls while nothing happens.
 */
import type { Client, ClientEvent } from '../client/client';
import type { Cluster } from '../cluster/cluster';
import type { QueueCounts } from '../protocol/messages';
import type { EngineState, KernelState, TaskState, ViewState } from './comm-messages';

const TASKS_KEPT = 200;
const QUEUE_REFRESH_MS = 250;

interface DeadEngine {
  id: number;
  host: string;
  pid: number;
}

/** Builds `KernelState` for the client in use; calls `changed` whenever it may have changed. */
export class PanelModel {
  private client: Client | undefined;
  private cluster: Cluster | undefined;
  private connectedAt = new Date();
  private readonly tasks = new Map<string, TaskState>();
  private readonly views = new Map<string, ViewState>();
  private readonly dead = new Map<number, DeadEngine>();
  private queues: Record<string, QueueCounts> = {};
  private refresh: NodeJS.Timeout | undefined;

  constructor(
    private readonly targets: () => string,
    private readonly changed: () => void,
  ) {}

  /** Follows `client` (of `cluster`, when the kernel has one) from now on. */
  follow(client: Client | undefined, cluster: Cluster | undefined): void {
    if (client !== this.client) {
      this.tasks.clear();
      this.views.clear();
      this.dead.clear();
      this.queues = {};
      this.connectedAt = new Date();
      if (client) void this.listen(client);
    }
    this.client = client;
    this.cluster = cluster;
    this.changed();
  }

  private async listen(client: Client): Promise<void> {
    for await (const e of client.events({ tasks: true })) {
      if (client !== this.client) return;
      this.apply(e);
      this.scheduleRefresh();
      this.changed();
    }
  }

  private apply(e: ClientEvent): void {
    switch (e.type) {
      case 'engine:register':
        this.dead.delete(e.engine.id);
        break;
      case 'engine:unregister': {
        const info = this.client?.engineInfo.find((i) => i.id === e.id);
        this.dead.set(e.id, { id: e.id, host: info?.hostname ?? '', pid: info?.pid ?? 0 });
        break;
      }
      case 'task:submit': {
        const kind = e.balanced ? 'balanced' : 'direct';
        const engine = e.balanced ? null : e.task.engineId;
        this.tasks.set(e.task.msgId, {
          id: e.task.msgId,
          view: kind,
          engine,
          label: e.label ?? null,
          state: 'pending',
          submitted: e.task.submitted.toISOString(),
          started: null,
          completed: null,
          errorPreview: null,
        });
        for (const id of [...this.tasks.keys()].slice(
          0,
          Math.max(0, this.tasks.size - TASKS_KEPT),
        )) {
          this.tasks.delete(id);
        }
        const key = `${kind}:${engine ?? '*'}`;
        const view = this.views.get(key) ?? {
          kind,
          targets: engine === null ? null : [engine],
          tasks: 0,
        };
        view.tasks += 1;
        this.views.set(key, view);
        break;
      }
      case 'task:finish': {
        const t = this.tasks.get(e.task.msgId);
        if (!t) break;
        t.engine = e.task.engineId;
        t.state = e.error ? 'error' : 'done';
        t.started = e.task.started?.toISOString() ?? null;
        t.completed = (e.task.completed ?? e.task.received)?.toISOString() ?? null;
        t.errorPreview = e.error ? e.error.message.split('\n')[0].slice(0, 200) : null;
        break;
      }
      case 'engine:output':
        break;
    }
  }

  private scheduleRefresh(): void {
    this.refresh ??= setTimeout(() => {
      this.refresh = undefined;
      const client = this.client;
      client
        ?.queueStatus()
        .then((q) => {
          if (client !== this.client) return;
          const { unassigned: _, ...engines } = q;
          this.queues = engines;
          this.changed();
        })
        .catch(() => undefined); // the controller went away; engine events say the rest
    }, QUEUE_REFRESH_MS);
  }

  /** The state as the panel receives it. */
  state(): KernelState {
    const client = this.client;
    if (!client)
      return { cluster: null, engines: [], tasks: [], targets: this.targets(), views: [] };
    const started = this.cluster?.created ?? this.connectedAt;
    const running = [...this.tasks.values()].filter(
      (t) => t.state === 'pending' && t.engine !== null,
    );
    const live: EngineState[] = client.engineInfo.map((e) => {
      const q = this.queues[e.id] ?? { queue: 0, completed: 0 };
      const current = running.find((t) => t.engine === e.id)?.id ?? null;
      return {
        id: e.id,
        host: e.hostname,
        pid: e.pid,
        status: q.queue > 0 || current ? 'busy' : 'idle',
        queue: q.queue,
        completed: q.completed,
        currentTask: current,
      };
    });
    const dead: EngineState[] = [...this.dead.values()].map((d) => ({
      ...d,
      status: 'dead',
      queue: 0,
      completed: this.queues[d.id]?.completed ?? 0,
      currentTask: null,
    }));
    return {
      cluster: {
        controller: client.connection.client,
        launcher: this.cluster?.launcher ?? null,
        started: this.cluster ? started.toISOString() : null,
        uptime: (Date.now() - started.getTime()) / 1000,
      },
      engines: [...live, ...dead].sort((a, b) => a.id - b.id),
      tasks: [...this.tasks.values()],
      targets: this.targets(),
      views: [...this.views.values()],
    };
  }

  close(): void {
    clearTimeout(this.refresh);
    this.client = undefined;
  }
}

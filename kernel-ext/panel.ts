/**
 * The state the lab panel shows, kept up to date from the client's events: engines joining and
 * leaving, and the tasks this kernel's client sends and sees finish. Queue lengths and task
 * counts come from the controller when a state is built; the kernel builds one per burst of
 * changes, so nothing polls while nothing happens.
 */
import { inspect } from 'node:util';
import { streamText, type ExecuteReply, type TaskOutput } from '../client/async-result';
import type { Client, ClientEvent, MapCall, TaskSource } from '../client/client';
import type { Cluster } from '../cluster/cluster';
import { RemoteError } from '../protocol/errors';
import type { EngineInfo, QueueCounts } from '../protocol/messages';
import {
  OUTPUT_CHARS,
  type PanelEngine,
  type KernelState,
  type PanelMap,
  type TaskOutputState,
  type PanelTask,
  type PanelView,
} from './comm-messages';

const TASKS_KEPT = 200;
const PREVIEW_CHARS = 200;
const VIEWS_KEPT = 50;
const MAPS_KEPT = 50;

interface DeadEngine {
  id: number;
  host: string;
  pid: number;
}

/**
 * A task as the panel keeps it: what it shows, and what `task:output` renders on request. The
 * value and outputs are held (for the latest `TASKS_KEPT` tasks only) rather than rendered at
 * once, so that a long map costs no full rendering of results nobody asks for.
 */
interface KeptTask {
  shown: PanelTask;
  request: 'apply' | 'execute';
  outputs: readonly TaskOutput[];
  value: unknown;
  error: Error | undefined;
  /** The latest data the task published, held as the value is. */
  data: { value: unknown } | undefined;
  /** The map the task is of, whose counts its end moves. */
  map: PanelMap | undefined;
  /** Ids of the tasks it waits for that have not finished (`shown.waitsFor` shows them). */
  waitsFor: Set<string>;
}

/** Builds `KernelState` for the client in use; calls `changed` whenever it may have changed. */
export class PanelModel {
  private client: Client | undefined;
  private cluster: Cluster | undefined;
  private connectedAt = new Date();
  private readonly tasks = new Map<string, KeptTask>();
  /** The tasks each unfinished task holds waiting, by id: its end lets them know. */
  private readonly waiting = new Map<string, Set<string>>();
  /** Views by identity: code makes them, so they come and go with the code's references. */
  private views = new WeakMap<TaskSource, PanelView>();
  private readonly viewList: PanelView[] = [];
  /** The actors among the views, read as each state is built: their calls end one by one. */
  private actors = new WeakMap<PanelView, NonNullable<TaskSource['actorInfo']>>();
  /** Ids keep counting when old views leave `viewList`, so none is given twice. */
  private nextViewId = 0;
  private maps = new WeakMap<MapCall, PanelMap>();
  private mapList: PanelMap[] = [];
  private nextMapId = 0;
  private readonly dead = new Map<number, DeadEngine>();
  /** Engines as last seen, to describe them once they are gone. */
  private readonly known = new Map<number, EngineInfo>();
  private queues: Record<string, QueueCounts> = {};
  /** Engines the panel's `engine:restart` is replacing now. */
  private readonly replacing = new Set<number>();
  /** Engines replaced by a restart, and the engine that took each one's place. */
  private readonly replacedBy = new Map<number, number>();

  constructor(
    private readonly targets: () => string,
    private readonly changed: () => void,
  ) {}

  /** Follows `client` (of `cluster`, when the kernel has one) from now on. */
  follow(client: Client | undefined, cluster: Cluster | undefined): void {
    if (client !== this.client) {
      this.tasks.clear();
      this.waiting.clear();
      this.views = new WeakMap();
      this.viewList.length = 0;
      this.actors = new WeakMap();
      this.nextViewId = 0;
      this.maps = new WeakMap();
      this.mapList = [];
      this.nextMapId = 0;
      this.dead.clear();
      this.replacing.clear();
      this.replacedBy.clear();
      this.queues = {};
      this.connectedAt = new Date();
      this.known.clear();
      for (const e of client?.engineInfo ?? []) this.known.set(e.id, e);
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
      this.changed();
    }
  }

  private apply(e: ClientEvent): void {
    switch (e.type) {
      case 'engine:register':
        this.known.set(e.engine.id, e.engine);
        this.dead.delete(e.engine.id);
        break;
      case 'engine:unregister': {
        const info = this.known.get(e.id);
        this.dead.set(e.id, { id: e.id, host: info?.hostname ?? '', pid: info?.pid ?? 0 });
        break;
      }
      case 'task:submit': {
        const kind = e.balanced ? 'balanced' : 'direct';
        const engine = e.balanced ? null : e.task.engineId;
        const map = e.map && this.mapOf(e.map, kind);
        const kept: KeptTask = {
          shown: {
            id: e.task.msgId,
            view: kind,
            engine,
            label: e.label ?? null,
            state: 'pending',
            submitted: e.task.submitted.toISOString(),
            started: null,
            completed: null,
            resultPreview: null,
            errorPreview: null,
            map: map?.id ?? null,
            published: 0,
            waitsFor: [],
          },
          request: e.request,
          outputs: e.outputs,
          value: undefined,
          error: undefined,
          data: undefined,
          map,
          waitsFor: new Set(),
        };
        this.tasks.set(e.task.msgId, kept);
        this.waitsFor(kept, e.waitsFor);
        for (const id of e.waitsFor) {
          let waiters = this.waiting.get(id);
          if (!waiters) this.waiting.set(id, (waiters = new Set()));
          waiters.add(e.task.msgId);
        }
        // Tasks arrive one at a time: at most the oldest one is over the limit.
        if (this.tasks.size > TASKS_KEPT) this.tasks.delete(this.tasks.keys().next().value!);
        let view = this.views.get(e.view);
        if (!view) {
          const t = e.view.options.targets;
          const targets =
            t === undefined ? null : t === 'all' ? 'all' : typeof t === 'number' ? [t] : [...t];
          view = { id: this.nextViewId++, kind, targets, tasks: 0, actor: null };
          if (e.view.actorInfo) this.actors.set(view, e.view.actorInfo);
          this.views.set(e.view, view);
          this.viewList.push(view);
          if (this.viewList.length > VIEWS_KEPT) this.viewList.shift();
        }
        view.tasks += 1;
        break;
      }
      case 'task:finish': {
        this.finishedWaiting(e.task.msgId);
        const kept = this.tasks.get(e.task.msgId);
        if (!kept) break;
        kept.value = e.value;
        kept.error = e.error;
        const t = kept.shown;
        t.engine = e.task.engineId;
        t.state = e.error ? 'error' : 'done';
        t.started = e.task.started?.toISOString() ?? null;
        t.completed = (e.task.completed ?? e.task.received)?.toISOString() ?? null;
        t.resultPreview = e.error ? null : resultText(kept, PREVIEW).slice(0, PREVIEW_CHARS);
        t.errorPreview = e.error ? e.error.message.split('\n')[0].slice(0, PREVIEW_CHARS) : null;
        if (kept.map && e.error) kept.map.failed += 1;
        else if (kept.map) kept.map.done += 1;
        // Aborted, or failed as a dependant, it waits no more.
        this.waitsFor(kept, []);
        break;
      }
      case 'task:data': {
        const kept = this.tasks.get(e.task.msgId);
        if (!kept) break;
        kept.data = { value: e.data };
        kept.shown.published += 1;
        break;
      }
      case 'engine:output':
        break;
    }
  }

  /** Task `id` finished: the tasks waiting for it wait for it no more. */
  private finishedWaiting(id: string): void {
    const waiters = this.waiting.get(id);
    if (!waiters) return;
    this.waiting.delete(id);
    for (const waiter of waiters) {
      const kept = this.tasks.get(waiter);
      if (kept)
        this.waitsFor(
          kept,
          [...kept.waitsFor].filter((d) => d !== id),
        );
    }
  }

  /** Sets what `kept` waits for, with the labels of those tasks this model knows. */
  private waitsFor(kept: KeptTask, ids: readonly string[]): void {
    kept.waitsFor = new Set(ids);
    kept.shown.waitsFor = ids.map((id) => ({ id, label: this.tasks.get(id)?.shown.label ?? null }));
  }

  /** The map `call`'s state, made at its first task. */
  private mapOf(call: MapCall, view: PanelMap['view']): PanelMap {
    let map = this.maps.get(call);
    if (!map) {
      map = { id: this.nextMapId++, view, total: call.tasks, done: 0, failed: 0 };
      this.maps.set(call, map);
      this.mapList.push(map);
      if (this.mapList.length > MAPS_KEPT) this.mapList.shift();
    }
    return map;
  }

  /** Forgets the finished tasks and maps (the panel's "clear finished"). */
  clearFinished(): void {
    for (const [id, t] of this.tasks) if (t.shown.state !== 'pending') this.tasks.delete(id);
    this.mapList = this.mapList.filter((m) => m.done + m.failed < m.total);
    this.changed();
  }

  /** Shows engine `id` as restarting until `restarted` says how its replacement went. */
  restarting(id: number): void {
    this.replacing.add(id);
    this.changed();
  }

  /** Ends `restarting(id)`: `newId` took its place, or the restart failed (undefined). */
  restarted(id: number, newId: number | undefined): void {
    this.replacing.delete(id);
    if (newId !== undefined) this.replacedBy.set(id, newId);
    this.changed();
  }

  /**
   * The whole output of one of the latest tasks, for `task:output`; throws `RangeError` when
   * the task is unknown or no longer kept.
   */
  output(id: string): TaskOutputState {
    const kept = this.tasks.get(id);
    if (!kept) {
      throw new RangeError(
        `task ${id} is not among the ${TASKS_KEPT} latest tasks of this kernel; rc.result(id) may still have it.`,
      );
    }
    const parts = {
      stdout: streamText(kept.outputs, 'stdout'),
      stderr: streamText(kept.outputs, 'stderr'),
      result: kept.shown.state === 'done' ? resultText(kept, FULL) : null,
      error: kept.error ? errorText(kept.error) : null,
      data: kept.data ? inspect(kept.data.value, FULL) : null,
    };
    const cut = (s: string): string => s.slice(0, OUTPUT_CHARS);
    return {
      id,
      stdout: cut(parts.stdout),
      stderr: cut(parts.stderr),
      result: parts.result && cut(parts.result),
      error: parts.error && cut(parts.error),
      data: parts.data && cut(parts.data),
      truncated: Object.values(parts).some((p) => p !== null && p.length > OUTPUT_CHARS),
    };
  }

  /** Asks the controller for its queues, so that the next `state()` shows them. */
  async refresh(): Promise<void> {
    const client = this.client;
    try {
      const status = await client?.queueStatus();
      if (status && client === this.client) {
        const queues: Record<string, QueueCounts> = Object.fromEntries(
          Object.entries(status).filter((e): e is [string, QueueCounts] => e[0] !== 'unassigned'),
        );
        // The controller forgets engines that left; their counts stay as last seen.
        for (const id of this.dead.keys()) queues[id] ??= this.queues[id];
        this.queues = queues;
      }
    } catch {
      // The controller went away; the engine events say the rest.
    }
  }

  /** The state as the panel receives it. */
  state(): KernelState {
    const client = this.client;
    const time = new Date().toISOString();
    if (!client)
      return {
        time,
        cluster: null,
        engines: [],
        tasks: [],
        targets: this.targets(),
        views: [],
        maps: [],
      };
    const started = this.cluster?.created ?? this.connectedAt;
    const tasks = [...this.tasks.values()].map((t) => t.shown);
    const running = tasks.filter((t) => t.state === 'pending' && t.engine !== null);
    const live: PanelEngine[] = client.engineInfo.map((e) => {
      const q = this.queues[e.id] ?? { queue: 0, completed: 0 };
      const current = running.find((t) => t.engine === e.id)?.id ?? null;
      return {
        id: e.id,
        host: e.hostname,
        pid: e.pid,
        status: this.replacing.has(e.id) ? 'restarting' : q.queue > 0 || current ? 'busy' : 'idle',
        queue: q.queue,
        completed: q.completed,
        currentTask: current,
        replacedBy: null,
        cpu: q.usage?.cpu ?? null,
        memory: q.usage?.rss ?? null,
        resources: e.resources,
        resourcesInUse: q.resources_in_use ?? {},
      };
    });
    const dead: PanelEngine[] = [...this.dead.values()].map((d) => ({
      ...d,
      status: this.replacing.has(d.id) ? 'restarting' : 'dead',
      queue: 0,
      completed: this.queues[d.id]?.completed ?? 0,
      currentTask: null,
      replacedBy: this.replacedBy.get(d.id) ?? null,
      cpu: null,
      memory: null,
      resources: {},
      resourcesInUse: {},
    }));
    return {
      time,
      cluster: {
        controller: client.connection.client,
        launcher: this.cluster?.launcherName ?? null,
        started: this.cluster ? started.toISOString() : null,
        uptime: (Date.now() - started.getTime()) / 1000,
      },
      engines: [...live, ...dead].sort((a, b) => a.id - b.id),
      tasks,
      targets: this.targets(),
      views: this.viewList.map((v) => {
        const actor = this.actors.get(v);
        return actor
          ? {
              ...v,
              actor: { className: actor.className, engine: actor.engineId, calls: actor.callsDone },
            }
          : v;
      }),
      maps: this.mapList.map((m) => ({ ...m })),
    };
  }

  close(): void {
    this.client = undefined;
  }
}

/** CPU % of an idle engine's process, below which its bar has settled after work. */
const SETTLED_CPU = 2;

/**
 * Whether a panel showing `state` needs fresh states with no event to prompt them: engines' CPU
 * and memory move while they work and until their CPU falls back after it, and a panel in use
 * should show them moving.
 */
export function usageMoves(state: KernelState, panelInUse: boolean): boolean {
  const moving = (e: PanelEngine): boolean =>
    e.status === 'busy' || (e.status !== 'dead' && (e.cpu ?? 0) >= SETTLED_CPU);
  return state.cluster !== null && (panelInUse || state.engines.some(moving));
}

/** How much of a value the task list's preview and the full output show. */
const PREVIEW = { depth: 2, breakLength: Infinity };
const FULL = { depth: 8, breakLength: 100, maxArrayLength: 10_000, maxStringLength: OUTPUT_CHARS };

/** A finished task's value as text: the cell's last expression for `%px` code. */
function resultText(t: KeptTask, options: typeof PREVIEW | typeof FULL): string {
  // The client makes an `ExecuteReply` of every execute request's value.
  if (t.request === 'execute') return (t.value as ExecuteReply).result ?? '';
  return inspect(t.value, options);
}

/** An error with the engine's traceback, whose first line names the error. */
function errorText(e: Error): string {
  return e instanceof RemoteError ? e.traceback.join('\n') : `${e.name}: ${e.message}`;
}

/**
 * `Cluster`: starts a controller on this machine and engines through a launcher (local processes
 * by default; `mpiexec`, SSH hosts or a batch scheduler), scales them, and stops them all again.
 * Its state file (`cluster-<id>.json` in the profile) lets the CLI and `Cluster.fromFile`
 * attach to it from another process.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Client, type ConnectOptions } from '../client/client';
import { processHook } from '../client/process-hook';
import { controllerSettings, type ControllerSettings } from '../controller/options';
import { resolveOptions, toArgv } from '../options/schema';
import { connectionFilePath, profileDir, readConnectionFile } from '../protocol/connection';
import { ConnectionError, EngineError, TimeoutError } from '../protocol/errors';
import { SharedMemory, sweepSharedMemory } from '../protocol/shared-memory';
import { Adaptive, type AdaptOptions } from './adapt';
import {
  createLauncher,
  type EngineLaunch,
  type EngineSet,
  type Launcher,
  type LauncherName,
} from './launchers';
import { delay, isAlive, killAll, waitForExit } from './launchers/launcher';
import { clusterOptions, engineLaunchOptions, type ClusterOptions } from './options';
import type { Resources } from '../protocol/resources';

export type { ClusterOptions, ControllerSettings };

/** What the state file records, so that another process can find and stop the cluster. */
export interface ClusterState {
  clusterId: string;
  profile: string;
  launcher: LauncherName;
  launcherOptions: object;
  created: string;
  /** The process that started the cluster. */
  ownerPid: number;
  controllerPid: number;
  /** What the launcher started and has not stopped yet. */
  engineSets: EngineSet[];
  clientFile: string;
  engineFile: string;
}

/** How long stopped processes get to end by themselves before they are sent SIGTERM, then SIGKILL. */
const STOP_GRACE = 3000;

/** Told of every cluster `Cluster.start` starts. */
export const clusterStarted = processHook<Cluster>('tsparallel.cluster-started');

/**
 * A controller and engines started and stopped together; see the file's comment.
 * @example const cluster = await Cluster.start({ engines: 2 }); await cluster.stop();
 */
export class Cluster {
  /** Clients handed out by `connect`, closed by `stop` so that nothing keeps the process up. */
  private readonly clients = new Set<Client>();
  private admin: Client | undefined;
  private readonly launcher: Launcher;
  private adaptive: Adaptive | undefined;
  /** When engines were replaced in the last minute, for `restartEngines`' limit. */
  private restarts: number[] = [];
  /** Engines being stopped on purpose, which must not be replaced. */
  private readonly stopping = new Set<number>();
  private stopped = false;

  private constructor(
    private state: ClusterState,
    private readonly options: {
      daemonize: boolean;
      timeout: number;
      restartEngines: number;
      /** What the engines `addEngines` starts declare, unless it is told otherwise. */
      resources?: Resources;
    },
  ) {
    const context = {
      profile: state.profile,
      clusterId: state.clusterId,
      clientFile: state.clientFile,
      engineFile: state.engineFile,
      logDir: join(profileDir(state.profile), 'log'),
      daemonize: options.daemonize,
    };
    this.launcher = createLauncher(state.launcher, state.launcherOptions, context);
  }

  get clusterId(): string {
    return this.state.clusterId;
  }

  get profile(): string {
    return this.state.profile;
  }

  /** When the cluster was started. */
  get created(): Date {
    return new Date(this.state.created);
  }

  /** The connection file clients use. */
  get clientFile(): string {
    return this.state.clientFile;
  }

  get stateFile(): string {
    return Cluster.stateFilePath(this.state.profile, this.state.clusterId);
  }

  static stateFilePath(profile: string, clusterId: string): string {
    return join(profileDir(profile), `cluster-${clusterId || 'default'}.json`);
  }

  /**
   * Starts a controller and `engines` engines through the launcher; resolves once all
   * registered. Unknown options, launchers and launcher options are refused by name.
   * @example const cluster = await Cluster.start({ engines: 4 }); const rc = await cluster.connect();
   * @example await Cluster.start({ engines: 8, launcher: 'slurm', launcherOptions: { partition: 'debug' } });
   */
  static async start<L extends LauncherName = 'local'>(
    options: ClusterOptions<L> = {},
  ): Promise<Cluster> {
    const o = resolveOptions(clusterOptions, options);
    // The controller's options are checked before anything starts, as they would be on its own.
    resolveOptions(controllerSettings, o.controller);
    const profile = o.profile;
    const clusterId = o.clusterId ?? `${Date.now()}-${randomBytes(3).toString('hex')}`;
    const where = { profile, clusterId };
    // The constructor makes the launcher, which checks its options before anything starts.
    const cluster = new Cluster(
      {
        clusterId,
        profile,
        launcher: o.launcher,
        launcherOptions: o.launcherOptions ?? {},
        created: new Date().toISOString(),
        ownerPid: process.pid,
        controllerPid: 0,
        engineSets: [],
        clientFile: connectionFilePath('client', where),
        engineFile: connectionFilePath('engine', where),
      },
      o,
    );
    await cluster.claim();
    sweepSharedMemory();
    try {
      await cluster.startController(o.controller ?? {});
      await cluster.addEngines(o.engines);
      if (o.restartEngines > 0) void cluster.replaceDeadEngines();
    } catch (e) {
      await cluster.stop();
      throw e;
    }
    clusterStarted.announce(cluster);
    return cluster;
  }

  /** Attaches to a cluster started elsewhere, from its state file. */
  static async fromFile(path: string): Promise<Cluster> {
    let state: ClusterState;
    try {
      state = JSON.parse(await fs.readFile(path, 'utf8')) as ClusterState;
    } catch (e) {
      throw new ConnectionError(`cannot read cluster file ${path}: is the cluster running?`, {
        cause: e,
      });
    }
    const { timeout } = clusterOptions.specs;
    return new Cluster(state, { daemonize: true, timeout: timeout.default, restartEngines: 0 });
  }

  /** The launcher that starts this cluster's engines. */
  get launcherName(): LauncherName {
    return this.state.launcher;
  }

  /** A new `Client` of this cluster, once every started engine has registered. */
  async connect(options: Pick<ConnectOptions, 'timeout' | 'sharedMemory'> = {}): Promise<Client> {
    const rc = await Client.connect({ ...options, connectionFile: this.state.clientFile });
    this.clients.add(rc);
    await rc.waitForEngines(await this.liveEngines(), {
      timeout: options.timeout ?? this.options.timeout,
    });
    return rc;
  }

  /**
   * Engines that run or wait to run. Sets that ended on their own are no longer waited for or
   * listed.
   */
  private async liveEngines(): Promise<number> {
    const counts = await Promise.all(
      this.state.engineSets.map(async (set) =>
        Math.min(set.engines, await this.launcher.status(set)),
      ),
    );
    this.state.engineSets = this.state.engineSets.filter((_, i) => counts[i] > 0);
    return counts.reduce((a, b) => a + b, 0);
  }

  /**
   * Starts `n` more engines; resolves with the new engine ids once they registered. `resources`
   * says what they hold, when not what the cluster was started with.
   * @example await cluster.addEngines(1, { resources: { gpu: 1, mem: 8e9 } });
   */
  async addEngines(n: number, engines: EngineLaunch = {}): Promise<number[]> {
    if (!Number.isInteger(n) || n < 0)
      throw new RangeError(`addEngines needs an integer >= 0, got ${String(n)}`);
    const { resources } = resolveOptions(engineLaunchOptions, engines);
    const rc = await this.adminClient();
    const sets = await this.launcher.start(n, { resources: resources ?? this.options.resources });
    this.state.engineSets.push(...sets);
    await this.saveState();
    return this.waitForRegistration(rc, sets);
  }

  /**
   * Resolves with the ids of the engines of `sets` once all registered (engines name their set at
   * registration, so an engine that dies meanwhile elsewhere cannot confuse the count); fails
   * fast when the sets all end before registering.
   */
  private async waitForRegistration(rc: Client, sets: EngineSet[]): Promise<number[]> {
    const wanted = sets.reduce((n, set) => n + set.engines, 0);
    const setIds = new Set(sets.map((set) => set.id));
    const deadline = performance.now() + this.options.timeout;
    const where = `see the logs in ${join(profileDir(this.profile), 'log')}`;
    for (;;) {
      const ids = (await rc.updateEngines()).filter((id) =>
        setIds.has(rc.engineInfo.find((e) => e.id === id)?.engine_set ?? ''),
      );
      if (ids.length >= wanted) return ids;
      const running = await Promise.all(sets.map((set) => this.launcher.status(set)));
      if (running.every((n) => n === 0)) {
        throw new EngineError(
          `the ${this.launcherName} launcher's engines ended before they registered; ${where}`,
        );
      }
      if (performance.now() > deadline) {
        throw new TimeoutError(
          `only ${ids.length} of ${wanted} engines registered within ${this.options.timeout} ms; ${where}`,
        );
      }
      // Asking a batch scheduler costs a process start: at the launcher's pace, not faster.
      await delay(Math.max(100, this.launcher.pollInterval));
    }
  }

  /** Stops engine `id`: it unregisters, then its process ends. */
  async stopEngine(id: number): Promise<void> {
    await this.stopEngines([id]);
  }

  /** Stops engines `ids` at once; resolves when they unregistered and their processes ended. */
  private async stopEngines(ids: number[]): Promise<void> {
    const rc = await this.adminClient();
    const infos = ids.map((id) => {
      const info = rc.engineInfo.find((e) => e.id === id);
      if (!info) {
        throw new EngineError(
          `engine ${id} is not registered; live engines: ${rc.ids.join(', ') || 'none'}`,
          id,
        );
      }
      return info;
    });
    for (const id of ids) this.stopping.add(id);
    await rc.shutdown({ targets: ids });
    await until(
      async () => !(await rc.updateEngines()).some((id) => ids.includes(id)),
      `engines ${ids.join(', ')} to unregister`,
      this.options.timeout,
    );
    await this.forgetEngines(infos.map((info) => info.engine_set));
    await this.saveState();
  }

  /** Replaces engine `id` with a new one; resolves with the new engine's id (ids are never reused). */
  async restartEngine(id: number): Promise<number> {
    await this.stopEngine(id);
    const [newId] = await this.addEngines(1);
    return newId;
  }

  /**
   * Sends `signal` to the engines' processes (all by default). It goes through the controller,
   * which reaches every engine wherever its launcher put it (`mpiexec` would end its job on
   * SIGINT rather than pass it on).
   */
  async signalEngines(signal: NodeJS.Signals, ids?: number[]): Promise<void> {
    const rc = await this.adminClient();
    await rc.updateEngines();
    const unknown = (ids ?? []).filter((id) => !rc.ids.includes(id));
    if (unknown.length > 0) throw new EngineError(`engine ${unknown.join(', ')} is not registered`);
    if (rc.ids.length > 0) await rc.sendSignal(signal, ids);
  }

  /**
   * Grows or shrinks the cluster to `n` engines; resolves with the engine ids once it has.
   * Shrinking stops idle engines first, newest first; tasks of a busy engine that is stopped
   * fail with `EngineError` (or run elsewhere, with `retries`). Stops `adapt`.
   * @example await cluster.scale(8);
   */
  async scale(n: number): Promise<number[]> {
    if (!Number.isInteger(n) || n < 0) {
      throw new RangeError(`scale needs an integer >= 0, got ${String(n)}`);
    }
    await this.adaptive?.stop();
    this.adaptive = undefined;
    return this.resize(n);
  }

  private async resize(n: number): Promise<number[]> {
    const rc = await this.adminClient();
    const ids = await rc.updateEngines();
    if (n > ids.length) await this.addEngines(n - ids.length);
    if (n < ids.length) {
      const queues = await rc.queueStatus();
      const load = (id: number): number => queues[id]?.queue ?? 0;
      const byIdleness = [...ids].sort((a, b) => load(a) - load(b) || b - a);
      await this.stopEngines(byIdleness.slice(0, ids.length - n));
    }
    return rc.updateEngines();
  }

  /**
   * Grows and shrinks the engine count with the work, as Dask's `adapt` does: every `interval`
   * ms it asks the controller for the queue, starts engines while load-balanced tasks wait for
   * one (up to `maximum`), and stops engines that stayed idle for `wait` ms (down to `minimum`).
   * Runs until `adaptive.stop()`, `cluster.scale()` or `cluster.stop()`.
   * @example const adaptive = cluster.adapt({ minimum: 0, maximum: 16 });
   */
  adapt(options: AdaptOptions = {}): Adaptive {
    void this.adaptive?.stop();
    this.adaptive = new Adaptive(
      {
        queueStatus: async () => (await this.adminClient()).queueStatus(),
        resize: (n) => this.resize(n).then(() => undefined),
        retire: (ids) => this.stopEngines(ids),
      },
      options,
    );
    return this.adaptive;
  }

  /** Stops the engines and the controller; resolves when no process of the cluster is left. */
  async stop(): Promise<void> {
    this.stopped = true;
    // Named by the cluster's key, read before the controller removes its file on shutdown.
    const segments = await readConnectionFile(this.state.clientFile, 'client').then(
      (info) => new SharedMemory(info.key),
      () => undefined,
    );
    await this.adaptive?.stop();
    this.adaptive = undefined;
    for (const rc of [...this.clients, this.admin]) rc?.close();
    this.clients.clear();
    this.admin = undefined;
    try {
      const rc = await Client.open({ connectionFile: this.state.clientFile, timeout: 2000 });
      await rc.shutdown({ hub: true });
    } catch {
      // The controller is gone already; the processes are ended by signal below.
    }
    const controller = this.state.controllerPid;
    const ended = await Promise.allSettled([
      ...this.state.engineSets.map((set) => this.launcher.stop(set, STOP_GRACE)),
      controller > 0 &&
        waitForExit(controller, STOP_GRACE).catch(() => {
          killAll([controller], 'SIGKILL');
          return waitForExit(controller, STOP_GRACE);
        }),
    ]);
    const failed = ended.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      // The state file stays, so that `tsparallel cluster stop` can try again.
      throw new Error(`the cluster did not stop entirely: ${(failed.reason as Error).message}`, {
        cause: failed.reason,
      });
    }
    this.state.engineSets = [];
    // No process of the cluster is left to read or free its segments, whatever killed them.
    segments?.removeAll();
    sweepSharedMemory();
    await Promise.all(
      [this.stateFile, this.state.clientFile, this.state.engineFile].map((f) =>
        fs.rm(f, { force: true }),
      ),
    );
  }

  /**
   * Takes the cluster's state file for this process. Two clusters with one profile and id would
   * share files, and stopping one would orphan the other; the exclusive create makes concurrent
   * starts safe too.
   */
  private async claim(): Promise<void> {
    await fs.mkdir(profileDir(this.profile), { recursive: true, mode: 0o700 });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await fs.writeFile(this.stateFile, JSON.stringify(this.state), { flag: 'wx', mode: 0o600 });
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      let other: ClusterState | undefined;
      try {
        other = JSON.parse(await fs.readFile(this.stateFile, 'utf8')) as ClusterState;
      } catch {
        // Unreadable: half written by a start that is still going on; counts as running.
      }
      const [pid, role] = !other
        ? [undefined, 'being started']
        : other.controllerPid > 0
          ? [other.controllerPid, 'controller pid']
          : [other.ownerPid, 'being started by pid'];
      if (pid === undefined || isAlive(pid)) {
        throw new ConnectionError(
          `cluster "${this.clusterId || 'default'}" of profile "${this.profile}" is running already ` +
            `(${role}${pid === undefined ? '' : ` ${pid}`}): stop it first, or give another cluster id`,
        );
      }
      await fs.rm(this.stateFile, { force: true }); // left by a cluster that is gone
    }
    throw new ConnectionError(`cannot claim ${this.stateFile}: another cluster keeps taking it`);
  }

  private async startController(settings: ControllerSettings): Promise<void> {
    const flags = [
      '--profile',
      this.state.profile,
      '--cluster-id',
      this.state.clusterId,
      ...toArgv(controllerSettings, settings),
    ];
    await fs.rm(this.state.clientFile, { force: true });
    const controller = this.launcher.startController(flags, this.options.timeout);
    this.state.controllerPid = controller.process.pid as number;
    await this.saveState();
    await controller.ready;
  }

  /**
   * Engines ended (stopped, or died): sets with no engine left are stopped, so that nothing of
   * them lingers (a hung engine's process, a batch job).
   */
  private async forgetEngines(setIds: (string | undefined)[]): Promise<void> {
    const ended: EngineSet[] = [];
    for (const setId of setIds) {
      const set = this.state.engineSets.find((s) => s.id === setId);
      if (set && --set.engines === 0) ended.push(set);
    }
    await Promise.all(ended.map((set) => this.launcher.stop(set, STOP_GRACE)));
    this.state.engineSets = this.state.engineSets.filter((s) => !ended.includes(s));
  }

  /**
   * Replaces engines that die (`restartEngines`), on any launcher: the controller's report that an
   * engine left, which it did not leave on purpose, is what counts as a death.
   */
  private async replaceDeadEngines(): Promise<void> {
    const rc = await this.adminClient();
    const setOf = new Map(rc.engineInfo.map((e) => [e.id, e.engine_set]));
    for await (const event of rc.events()) {
      if (event.type === 'engine:register') setOf.set(event.engine.id, event.engine.engine_set);
      if (event.type !== 'engine:unregister' || this.stopping.delete(event.id)) continue;
      void this.replaceEngine(event.id, setOf.get(event.id)).catch((e: unknown) =>
        process.emitWarning(
          `tsparallel: engine ${event.id} died and could not be replaced: ${String(e)}`,
        ),
      );
    }
  }

  /**
   * Replaces dead engine `id` with one holding the same resources, unless the cluster stops or
   * too many died this minute.
   */
  private async replaceEngine(id: number, setId: string | undefined): Promise<void> {
    if (this.stopped) return;
    const resources = this.state.engineSets.find((s) => s.id === setId)?.resources;
    await this.forgetEngines([setId]);
    const now = performance.now();
    this.restarts = this.restarts.filter((t) => now - t < 60_000);
    if (this.restarts.length >= this.options.restartEngines) {
      process.emitWarning(
        `tsparallel: engine ${id} died and is not replaced: ${this.options.restartEngines} ` +
          'engines were restarted in the last minute already (restartEngines)',
      );
      await this.saveState();
      return;
    }
    this.restarts.push(now);
    await this.addEngines(1, { resources });
  }

  private async adminClient(): Promise<Client> {
    this.admin ??= await Client.open({ connectionFile: this.state.clientFile });
    return this.admin;
  }

  private async saveState(): Promise<void> {
    await fs.writeFile(this.stateFile, JSON.stringify(this.state, null, 2) + '\n', { mode: 0o600 });
  }
}

/** Resolves once `condition()` holds; rejects naming `what` after `timeout` ms. */
async function until(
  condition: () => Promise<boolean>,
  what: string,
  timeout: number,
): Promise<void> {
  const deadline = performance.now() + timeout;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new TimeoutError(`timed out waiting for ${what}`);
    await delay(20);
  }
}

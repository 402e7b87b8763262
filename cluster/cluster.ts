/**
 * `Cluster`: starts a controller and engines as local processes, and stops them all again.
 * Its state file (`cluster-<id>.json` in the profile) lets the CLI and `Cluster.fromFile`
 * attach to it from another process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, promises as fs } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Client } from '../client/client';
import { connectionFilePath, profileDir } from '../protocol/connection';
import { ConnectionError, EngineError } from '../protocol/errors';
import {
  controllerDefaults,
  defaultDeadline,
  type ControllerOptions,
} from '../controller/controller-server';
import { schemeNames } from '../controller/schedulers/load-balanced';

/** Controller options a cluster passes on (see `tsparallel controller --help`). */
export type ControllerSettings = Partial<
  Pick<
    ControllerOptions,
    | 'ip'
    | 'scheme'
    | 'hwm'
    | 'heartbeatPeriod'
    | 'heartbeatDeadline'
    | 'recordLimit'
    | 'recordBytes'
    | 'db'
    | 'curve'
    | 'insecure'
  >
>;

/** What `Cluster.start` can be told. */
export interface ClusterOptions {
  /** Engines to start (default: one per core). */
  engines?: number;
  profile?: string;
  /** Names the cluster's files; a fresh id by default so that clusters never collide. */
  clusterId?: string;
  launcher?: 'local';
  controller?: ControllerSettings;
  /** Keep the processes running after this process exits (the CLI's `--daemonize`). */
  daemonize?: boolean;
  /** Milliseconds to wait for the controller and each batch of engines (default 30 000). */
  timeout?: number;
  /**
   * Start a new engine in place of one that dies, at most this many times a minute (the CLI's
   * `--restart-engines N`); 0, the default, never. Needs this process to keep running.
   */
  restartEngines?: number;
}

/** What the state file records, so that another process can find and stop the cluster. */
export interface ClusterState {
  clusterId: string;
  profile: string;
  launcher: 'local';
  created: string;
  /** The process that started the cluster. */
  ownerPid: number;
  controllerPid: number;
  enginePids: number[];
  clientFile: string;
  engineFile: string;
}

const CLI = join(__dirname, 'cli.js');

/**
 * A controller and engines started and stopped together; see the file's comment.
 * @example const cluster = await Cluster.start({ engines: 2 }); await cluster.stop();
 */
export class Cluster {
  private readonly children = new Set<ChildProcess>();
  /** Clients handed out by `connect`, closed by `stop` so that nothing keeps the process up. */
  private readonly clients = new Set<Client>();
  private admin: Client | undefined;
  /** When engines were restarted in the last minute, for `restartEngines`' limit. */
  private restarts: number[] = [];
  /** Engine processes being stopped on purpose, which must not be restarted. */
  private readonly stopping = new Set<number>();
  private stopped = false;

  private constructor(
    private state: ClusterState,
    private readonly options: Required<
      Pick<ClusterOptions, 'daemonize' | 'timeout' | 'restartEngines'>
    >,
  ) {}

  get clusterId(): string {
    return this.state.clusterId;
  }

  get profile(): string {
    return this.state.profile;
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
   * Starts a controller and `engines` engines on this machine; resolves once all registered.
   * @example const cluster = await Cluster.start({ engines: 4 }); const rc = await cluster.connect();
   */
  static async start(options: ClusterOptions = {}): Promise<Cluster> {
    const unknown = Object.keys(options).filter((k) => !clusterOptionNames.includes(k));
    if (unknown.length > 0) {
      throw new TypeError(
        `unknown cluster option ${unknown.join(', ')}; the options are ${clusterOptionNames.join(', ')}`,
      );
    }
    checkName('profile', options.profile);
    checkName('clusterId', options.clusterId);
    const restartEngines = options.restartEngines ?? 0;
    if (!Number.isInteger(restartEngines) || restartEngines < 0) {
      throw new RangeError(
        `restartEngines must be an integer >= 0 (restarts a minute), got ${String(options.restartEngines)}`,
      );
    }
    const engines = options.engines ?? availableParallelism();
    if (!Number.isInteger(engines) || engines < 0) {
      throw new RangeError(`engines must be an integer >= 0, got ${String(options.engines)}`);
    }
    if ((options.launcher ?? 'local') !== 'local') {
      throw new RangeError(
        `launcher "${String(options.launcher)}" is unknown; this version has "local"`,
      );
    }
    const profile = options.profile ?? 'default';
    const clusterId = options.clusterId ?? `${Date.now()}-${randomBytes(3).toString('hex')}`;
    const where = { profile, clusterId };
    const cluster = new Cluster(
      {
        clusterId,
        profile,
        launcher: 'local',
        created: new Date().toISOString(),
        ownerPid: process.pid,
        controllerPid: 0,
        enginePids: [],
        clientFile: connectionFilePath('client', where),
        engineFile: connectionFilePath('engine', where),
      },
      { daemonize: options.daemonize ?? false, timeout: options.timeout ?? 30_000, restartEngines },
    );
    await cluster.claim();
    try {
      await cluster.startController(options.controller ?? {});
      await cluster.addEngines(engines);
    } catch (e) {
      await cluster.stop();
      throw e;
    }
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
    return new Cluster(state, { daemonize: true, timeout: 30_000, restartEngines: 0 });
  }

  /** A new `Client` of this cluster, once every started engine has registered. */
  async connect(options: { timeout?: number } = {}): Promise<Client> {
    const rc = await Client.connect({
      connectionFile: this.state.clientFile,
      timeout: options.timeout,
    });
    this.clients.add(rc);
    this.forgetDeadEngines();
    await rc.waitForEngines(this.state.enginePids.length, {
      timeout: options.timeout ?? this.options.timeout,
    });
    return rc;
  }

  /** Engines that died on their own are no longer waited for or listed. */
  private forgetDeadEngines(): void {
    this.state.enginePids = this.state.enginePids.filter(isAlive);
  }

  /** Starts `n` more engines; resolves with the new engine ids once they registered. */
  async addEngines(n: number): Promise<number[]> {
    if (!Number.isInteger(n) || n < 0)
      throw new RangeError(`addEngines needs an integer >= 0, got ${String(n)}`);
    const rc = await this.adminClient();
    // Ask the controller: an engine that just died may still be in rc.ids for a moment.
    const before = new Set(await rc.updateEngines());
    for (let i = 0; i < n; i++) this.spawnEngine(i);
    await this.saveState();
    const ids = await rc.waitForEngines(before.size + n, { timeout: this.options.timeout });
    return ids.filter((id) => !before.has(id));
  }

  /** Stops engine `id`: it unregisters, then its process ends. */
  async stopEngine(id: number): Promise<void> {
    const rc = await this.adminClient();
    const info = rc.engineInfo.find((e) => e.id === id);
    if (!info)
      throw new EngineError(
        `engine ${id} is not registered; live engines: ${rc.ids.join(', ') || 'none'}`,
        id,
      );
    this.stopping.add(info.pid);
    await rc.shutdown({ targets: [id] });
    await waitForExit(info.pid, this.options.timeout);
    this.stopping.delete(info.pid);
    this.state.enginePids = this.state.enginePids.filter((p) => p !== info.pid);
    await this.saveState();
  }

  /** Replaces engine `id` with a new one; resolves with the new engine's id (ids are never reused). */
  async restartEngine(id: number): Promise<number> {
    await this.stopEngine(id);
    const [newId] = await this.addEngines(1);
    return newId;
  }

  /** Sends `signal` to the engines' processes (all by default). */
  async signalEngines(signal: NodeJS.Signals, ids?: number[]): Promise<void> {
    const rc = await this.adminClient();
    const targets = rc.engineInfo.filter((e) => !ids || ids.includes(e.id));
    const unknown = (ids ?? []).filter((id) => !targets.some((e) => e.id === id));
    if (unknown.length > 0) throw new EngineError(`engine ${unknown.join(', ')} is not registered`);
    for (const e of targets) process.kill(e.pid, signal);
  }

  /** Stops the engines and the controller; resolves when no process of the cluster is left. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.forgetDeadEngines();
    const pids = [this.state.controllerPid, ...this.state.enginePids].filter((p) => p > 0);
    for (const rc of [...this.clients, this.admin]) rc?.close();
    this.clients.clear();
    this.admin = undefined;
    try {
      const rc = await Client.connect({ connectionFile: this.state.clientFile, timeout: 2000 });
      await rc.shutdown({ hub: true });
    } catch {
      // The controller is gone already; the processes are ended by signal below.
    }
    await Promise.all(pids.map((pid) => waitForExit(pid, 3000).catch(() => undefined)));
    for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
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
    if (settings.scheme !== undefined && !schemeNames.includes(settings.scheme)) {
      throw new RangeError(
        `scheme must be one of ${schemeNames.join(', ')}; got "${settings.scheme}"`,
      );
    }
    const period = settings.heartbeatPeriod ?? controllerDefaults.heartbeatPeriod;
    const deadline = settings.heartbeatDeadline ?? defaultDeadline(period);
    if (deadline <= period) {
      throw new RangeError(
        `heartbeatDeadline (${deadline} ms) must be longer than heartbeatPeriod (${period} ms), ` +
          'or every engine would count as dead between its beats',
      );
    }
    const flags = [
      '--profile',
      this.state.profile,
      '--cluster-id',
      this.state.clusterId,
      ...Object.entries(settings).flatMap(([k, v]) =>
        v === undefined || v === false
          ? []
          : v === true
            ? [`--${kebab(k)}`]
            : [`--${kebab(k)}`, String(v)],
      ),
    ];
    await fs.rm(this.state.clientFile, { force: true });
    const child = this.spawnRole('controller', flags, 'controller');
    this.state.controllerPid = child.pid as number;
    await waitForFile(this.state.clientFile, child, this.options.timeout);
    await this.saveState();
  }

  private spawnEngine(i: number): void {
    const child = this.spawnRole(
      'engine',
      ['--file', this.state.engineFile],
      `engine-${Date.now()}-${i}`,
    );
    const pid = child.pid as number;
    this.state.enginePids.push(pid);
    if (this.options.restartEngines > 0) child.once('exit', () => this.engineExited(pid));
  }

  /** Replaces an engine that died, unless it was stopped or too many died this minute. */
  private engineExited(pid: number): void {
    this.state.enginePids = this.state.enginePids.filter((p) => p !== pid);
    if (this.stopped || this.stopping.delete(pid)) return;
    const now = performance.now();
    this.restarts = this.restarts.filter((t) => now - t < 60_000);
    if (this.restarts.length >= this.options.restartEngines) {
      process.emitWarning(
        `tsparallel: engine process ${pid} died and is not replaced: ${this.options.restartEngines} ` +
          'engines were restarted in the last minute already (restartEngines)',
      );
      return;
    }
    this.restarts.push(now);
    this.spawnEngine(0);
    void this.saveState().catch(() => undefined);
  }

  private spawnRole(role: 'controller' | 'engine', flags: string[], logName: string): ChildProcess {
    const logDir = join(profileDir(this.state.profile), 'log');
    mkdirSync(logDir, { recursive: true, mode: 0o700 });
    const log = openSync(join(logDir, `${this.state.clusterId || 'default'}-${logName}.log`), 'a');
    const args = [CLI, role, ...flags, ...(this.options.daemonize ? [] : ['--exit-with-parent'])];
    const child = spawn(process.execPath, args, {
      // Without --daemonize, the pipe on stdin closes when this process dies, and the child exits.
      stdio: [this.options.daemonize ? 'ignore' : 'pipe', log, log],
      // A process group of its own: Ctrl-C in a terminal reaches this process, which stops the
      // cluster in order, rather than every child at once.
      detached: true,
    });
    closeSync(log);
    if (this.options.daemonize) child.unref();
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  private async adminClient(): Promise<Client> {
    this.admin ??= await Client.connect({ connectionFile: this.state.clientFile });
    return this.admin;
  }

  private async saveState(): Promise<void> {
    await fs.writeFile(this.stateFile, JSON.stringify(this.state, null, 2) + '\n', { mode: 0o600 });
  }
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

const clusterOptionNames = [
  'engines',
  'profile',
  'clusterId',
  'launcher',
  'controller',
  'daemonize',
  'timeout',
  'restartEngines',
];

/** Profile and cluster names become file names: keep them to one harmless path segment. */
export function checkName(what: string, name: string | undefined): void {
  if (name !== undefined && name !== '' && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)) {
    throw new RangeError(`${what} "${name}" may hold only letters, digits, "_", "." and "-"`);
  }
}

/** True while process `pid` exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves when process `pid` has ended; rejects after `timeout` ms. */
async function waitForExit(pid: number, timeout: number): Promise<void> {
  const deadline = performance.now() + timeout;
  while (isAlive(pid)) {
    if (performance.now() > deadline)
      throw new Error(`process ${pid} did not exit within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves once `path` exists; fails fast if `child` exits first. */
async function waitForFile(path: string, child: ChildProcess, timeout: number): Promise<void> {
  const deadline = performance.now() + timeout;
  for (;;) {
    try {
      await fs.access(path);
      return;
    } catch {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new ConnectionError(
          `the controller exited (${child.exitCode ?? child.signalCode}) before writing ${path}; see its log in ${join(path, '..', '..', 'log')}`,
        );
      }
      if (performance.now() > deadline) {
        throw new ConnectionError(`the controller did not write ${path} within ${timeout} ms`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

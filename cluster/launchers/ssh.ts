/**
 * Engines on named hosts, each started by the system `ssh` client and running for as long as its
 * SSH session. The engine connection file is copied to each host first (into
 * `~/.tsparallel/ssh/` there, readable by its owner only); the controller must listen on an
 * address the hosts reach (`controller: { ip }`).
 */
import { promises as fs } from 'node:fs';
import { basename, posix, relative } from 'node:path';
import { tsparallelDir, writeConnectionFile } from '../../protocol/connection';
import {
  defineOptions,
  resolveOptions,
  string,
  strings,
  type Resolved,
  type SpecsOf,
} from '../../options/schema';
import {
  CLI,
  killAll,
  Launcher,
  remoteCommandOptions,
  runOk,
  shellQuote,
  type EngineLaunch,
  type EngineSet,
  type LaunchContext,
  type RemoteCommand,
  type StartingController,
  waitForController,
} from './launcher';

/**
 * Options of the `ssh` launcher.
 * @example await Cluster.start({ launcher: 'ssh', launcherOptions: { hosts: ['node1', 'user@node2'] }, controller: { ip: '10.0.0.1', curve: true } })
 */
export interface SshOptions extends RemoteCommand {
  /** Hosts to start engines on, in turn: `['node1', 'user@node2']` (names from ~/.ssh/config too). */
  hosts: string[];
  /** The `ssh` client to run; default `ssh` on PATH. */
  ssh?: string;
  /** More `ssh` arguments: `['-F', 'ssh_config']`, `['-p', '2222', '-i', 'key']`. */
  sshArgs?: string[];
  /** Where the connection file and pid files go on the hosts, relative to home; default `.tsparallel/ssh`. */
  remoteDir?: string;
  /** Runs the controller on this host too; it must listen on an address this machine and the engines reach. */
  controllerHost?: string;
}

/** `SshOptions`' schema. */
export const sshOptions = defineOptions('ssh launcher', {
  hosts: {
    kind: strings,
    required: true,
    help: "hosts to start engines on, in turn: `['node1', 'user@node2']` (names from ~/.ssh/config too)",
  },
  ssh: { kind: string('<path>'), help: 'the `ssh` client to run (default `ssh` on PATH)' },
  sshArgs: {
    kind: strings,
    help: "more `ssh` arguments: `['-F', 'ssh_config']`, `['-p', '2222', '-i', 'key']`",
  },
  remoteDir: {
    kind: string('<path>'),
    default: '.tsparallel/ssh',
    help: 'where the connection file and pid files go on the hosts (relative to the home directory)',
  },
  controllerHost: {
    kind: string('<host>'),
    help:
      'runs the controller on this host too (its `TSPARALLEL_DIR` is `remoteDir` there); it must ' +
      'listen on an address this machine and the engines reach (`controller: { ip }`)',
  },
  ...remoteCommandOptions.specs,
} satisfies SpecsOf<SshOptions>);

/** Starts engines over SSH; see the file's comment. */
export class SshLauncher extends Launcher {
  /** Engines go to the hosts in turn, also across calls. */
  private next = 0;
  /** Hosts that have the connection file already. */
  private readonly copied = new Set<string>();
  /** `remoteDir`: relative paths are relative to the login directory. */
  private readonly dir: string;
  private readonly options: Resolved<typeof sshOptions.specs>;

  constructor(context: LaunchContext, options: SshOptions) {
    super('ssh', context);
    this.options = resolveOptions(sshOptions, options);
    this.dir = this.options.remoteDir;
  }

  async start(n: number, launch: EngineLaunch = {}): Promise<EngineSet[]> {
    const sets: EngineSet[] = [];
    for (let i = 0; i < n; i++) {
      const host = this.options.hosts[this.next++ % this.options.hosts.length];
      const file = await this.copyConnectionFile(host);
      const set = this.newSet(1, { host, ...launch });
      const engine = this.engineCommand(set, file, this.options).map(shellQuote).join(' ');
      // The pid file lets `signal` reach the engine, whose pid only the host knows.
      const script = `echo $$ > ${shellQuote(this.pidFile(set))} && exec ${engine}`;
      const child = this.spawnLogged(
        this.ssh,
        [...this.sshArgs, host, script],
        this.logFile(`engine-${set.id}`),
      );
      if (child.pid === undefined) throw new Error(`cannot run ${this.ssh}: is it installed?`);
      set.pids.push(child.pid);
      sets.push(set);
    }
    return sets;
  }

  /**
   * Starts `tsparallel controller` with `flags` on `controllerHost` if there is one; ready once
   * its connection files, which it writes there, have been copied to where this machine's
   * clients look.
   */
  override startController(flags: string[], timeout: number): StartingController {
    const host = this.options.controllerHost;
    if (host === undefined) return super.startController(flags, timeout);
    const { node = process.execPath, cli = CLI } = this.options;
    const command = [node, cli, 'controller', ...flags];
    if (!this.context.daemonize) command.push('--exit-with-parent');
    const script = `TSPARALLEL_DIR=${shellQuote(this.dir)} exec ${command.map(shellQuote).join(' ')}`;
    const log = this.logFile('controller');
    const child = this.spawnLogged(this.ssh, [...this.sshArgs, host, script], log);
    if (child.pid === undefined) throw new Error(`cannot run ${this.ssh}: is it installed?`);
    const { clientFile, engineFile } = this.context;
    // The same layout under the host's TSPARALLEL_DIR as under this machine's.
    const there = (file: string): string => posix.join(this.dir, relative(tsparallelDir(), file));
    const files = [engineFile, clientFile];
    // Both files in one connection, apart by a NUL, which JSON never holds.
    const cat = files.map((f) => `cat ${shellQuote(there(f))}`).join(` && printf '\\0' && `);
    const fetched = async (): Promise<boolean> => {
      let texts: string[];
      try {
        texts = (await this.remote(host, cat)).split('\0');
      } catch {
        return false; // not written yet
      }
      await Promise.all(
        files.map((f, i) => writeConnectionFile(f, JSON.parse(texts[i]) as object)),
      );
      return true;
    };
    // Each look is an SSH connection: a few a second at most.
    return { process: child, ready: waitForController(child, fetched, log, timeout, 250) };
  }

  /** The engine's pid is known on its host only; `status` watches the session, which ends with it. */
  override async signal(set: EngineSet, signal: NodeJS.Signals): Promise<void> {
    const name = signal.replace(/^SIG/, '');
    try {
      const pid = `"$(cat ${shellQuote(this.pidFile(set))})"`;
      await this.remote(set.host as string, `kill -s ${name} ${pid}`);
    } finally {
      // An unreachable host cannot be told; ending the session at least ends what watches it.
      if (signal === 'SIGKILL') killAll(set.pids, signal);
    }
  }

  override async stop(set: EngineSet, grace: number): Promise<void> {
    await super.stop(set, grace);
    const file = shellQuote(this.pidFile(set));
    await this.remote(set.host as string, `rm -f ${file}`).catch(() => undefined);
  }

  /** Puts the engine connection file on `host`; resolves with its path there. */
  private async copyConnectionFile(host: string): Promise<string> {
    const name = `${this.dir}/profile_${this.context.profile}-${basename(this.context.engineFile)}`;
    if (!this.copied.has(host)) {
      const contents = await fs.readFile(this.context.engineFile, 'utf8');
      // Written aside and renamed, so that an engine starting meanwhile never reads half a file.
      await this.remote(
        host,
        `umask 077 && mkdir -p ${shellQuote(this.dir)} && cat > ${shellQuote(`${name}.tmp`)} && ` +
          `mv ${shellQuote(`${name}.tmp`)} ${shellQuote(name)}`,
        contents,
      );
      this.copied.add(host);
    }
    return name;
  }

  private pidFile(set: EngineSet): string {
    return `${this.dir}/${set.id}.pid`;
  }

  private remote(host: string, command: string, input?: string): Promise<string> {
    return runOk(this.ssh, [...this.sshArgs, host, command], { input });
  }

  private get ssh(): string {
    return this.options.ssh ?? 'ssh';
  }

  /** Never a password prompt: a launcher has nobody to answer it. */
  private get sshArgs(): string[] {
    return ['-o', 'BatchMode=yes', ...(this.options.sshArgs ?? [])];
  }
}

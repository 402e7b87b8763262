#!/usr/bin/env node
/**
 * The `tsparallel` command: `controller`, `engine`, `cluster start|stop|list|engines`,
 * `kernel install` and `lab install`.
 * A bad flag or value prints one sentence naming it and exits with status 2.
 */
import { readFileSync, readdirSync, writeSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  ControllerConfigError,
  ControllerServer,
  controllerDefaults,
  defaultDeadline,
  sqlitePath,
} from '../controller/controller-server';
import { schemeNames, type Scheme } from '../controller/schedulers/load-balanced';
import { EngineServer } from '../engine/engine-server';
import { connectionFilePath, tsparallelDir } from '../protocol/connection';
import { installKernelSpec, installLabExtension, type InstallPlace } from '../kernel-ext/install';
import { checkName, Cluster, type ClusterState } from './cluster';
import { launcherNames, type LauncherName } from './launchers';

/**
 * How far V8 lets the heap grow past what survived the last full collection before it collects
 * again. A burst of queued tasks makes the hub allocate fast, and V8 then lets the heap grow to
 * up to four times what is alive (a soak measured 255 MB in use, 91 MB of it alive): 1.5 times
 * keeps the controller's memory near what it holds, for a few more collections. Set here, in the
 * controller's own process: a library must not change the V8 settings of the process using it.
 */
const CONTROLLER_HEAP_GROWTH = '--heap-growing-percent=50';

const USAGE_ERROR = 2;

// The options commander parses for each command, as its option definitions below make them.
interface Where {
  profile: string;
  clusterId: string;
}
interface ControllerFlags extends Where {
  ip: string;
  scheme: Scheme;
  hwm: number;
  recordLimit: number;
  recordBytes: number;
  heartbeatPeriod: number;
  heartbeatDeadline?: number;
  db: string;
  restore?: boolean;
  curve?: boolean;
  insecure?: boolean;
  exitWithParent?: boolean;
}
interface EngineFlags extends Where {
  file?: string;
  engineSet?: string;
  registrationTimeout: number;
  hubTimeout: number;
  exitWithParent?: boolean;
}
interface StartFlags extends Where {
  engines?: number;
  launcher: LauncherName;
  launcherOptions?: object;
  ip?: string;
  scheme?: Scheme;
  restartEngines?: number;
  daemonize?: boolean;
}
interface EnginesFlags extends Where {
  add?: number;
  scale?: number;
  stop?: number;
  restart?: number;
}

function ipAddress(value: string): string {
  if (isIP(value) === 0)
    throw new InvalidArgumentError('it must be an IP address such as 127.0.0.1.');
  return value;
}

function taskStore(value: string): string {
  try {
    sqlitePath(value, { profile: 'default', clusterId: '' });
  } catch (e) {
    throw new InvalidArgumentError(`${(e as Error).message}.`);
  }
  return value;
}

function integer(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) {
      throw new InvalidArgumentError(`it must be an integer of at least ${min}.`);
    }
    return n;
  };
}

/** Writes to fd 2 directly, past the engine's capture of `process.stderr` into task output. */
const log = (role: string) => (line: string) =>
  writeSync(2, `${new Date().toISOString()} [${role}] ${line}\n`);

/** Ends `stop` when this process's parent dies (its end of our stdin pipe closes). */
function exitWithParent(stop: () => void): void {
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

function jsonObject(value: string): object {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError('it must be a JSON object such as \'{"hosts": ["node1"]}\'.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError('it must be a JSON object, not an array or a single value.');
  }
  return parsed;
}

/** A profile or cluster name, which becomes part of file names. */
function fileName(what: string) {
  return (value: string): string => {
    try {
      checkName(what, value);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message + '.');
    }
    return value;
  };
}

const profileOption = () =>
  new Option('--profile <name>', 'profile whose files to use')
    .default('default')
    .argParser(fileName('profile'));
const clusterIdOption = (fallback: string) =>
  new Option('--cluster-id <id>', 'names the cluster, so several can share a profile')
    .default(fallback)
    .argParser(fileName('cluster id'));

function buildProgram(): Command {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  const program = new Command('tsparallel')
    .description('Parallel computing for TypeScript: a controller, engines and clusters of them.')
    .version(pkg.version)
    .exitOverride()
    // One line: the problem, and where to read more.
    .configureOutput({ outputError: (s, write) => write(`${s.trimEnd()} (see --help)\n`) });

  program
    .command('controller')
    .description('run the hub that engines register with and clients send tasks to')
    .option('--ip <address>', 'address to listen on', ipAddress, controllerDefaults.ip)
    .addOption(
      new Option('--scheme <name>', 'load-balancing scheme')
        .choices(schemeNames)
        .default('leastload'),
    )
    .option(
      '--hwm <n>',
      'load-balanced tasks an engine may hold at once',
      integer(1),
      controllerDefaults.hwm,
    )
    .option(
      '--db <store>',
      'where task records live: memory, or sqlite[:PATH] to keep every record and result on disk',
      taskStore,
      controllerDefaults.db,
    )
    .option(
      '--restore',
      "take over from a controller that stopped: reuse its connection files and finish its database's tasks",
    )
    .option('--curve', 'encrypt every connection with CurveZMQ (keys go in the connection files)')
    .option('--insecure', 'allow listening beyond loopback without --curve')
    .option(
      '--record-limit <n>',
      'finished task records kept',
      integer(1),
      controllerDefaults.recordLimit,
    )
    .option(
      '--record-bytes <n>',
      "bytes of finished tasks' arguments and results kept",
      integer(0),
      controllerDefaults.recordBytes,
    )
    .option(
      '--heartbeat-period <ms>',
      'milliseconds between engine heartbeats',
      integer(10),
      controllerDefaults.heartbeatPeriod,
    )
    .option(
      '--heartbeat-deadline <ms>',
      'milliseconds of silence before an engine is dead (default: 3000, at least 3 periods)',
      integer(20),
    )
    .addOption(profileOption())
    .addOption(clusterIdOption(''))
    .option('--exit-with-parent', 'exit when the parent process ends (used by clusters)')
    .action(async (o: ControllerFlags, command: Command) => {
      const deadline = o.heartbeatDeadline ?? defaultDeadline(o.heartbeatPeriod);
      if (deadline <= o.heartbeatPeriod) {
        command.error(
          `error: --heartbeat-deadline (${deadline}) must be longer than --heartbeat-period (${o.heartbeatPeriod}).`,
          { exitCode: USAGE_ERROR },
        );
      }
      setFlagsFromString(CONTROLLER_HEAP_GROWTH);
      const server = await ControllerServer.start({
        ip: o.ip,
        scheme: o.scheme,
        hwm: o.hwm,
        recordLimit: o.recordLimit,
        recordBytes: o.recordBytes,
        heartbeatPeriod: o.heartbeatPeriod,
        heartbeatDeadline: deadline,
        db: o.db,
        restore: o.restore ?? false,
        curve: o.curve ?? false,
        insecure: o.insecure ?? false,
        profile: o.profile,
        clusterId: o.clusterId,
        log: log('controller'),
      });
      const stop = (): void => void server.close();
      process.on('SIGINT', stop).on('SIGTERM', stop);
      if (o.exitWithParent) exitWithParent(stop);
      await server.done;
      process.exit(0);
    });

  program
    .command('engine')
    .description('run an engine that registers with a controller and runs its tasks')
    .option('--file <path>', "the controller's engine connection file (default: the profile's)")
    .addOption(profileOption())
    .addOption(clusterIdOption(''))
    .option(
      '--registration-timeout <ms>',
      'milliseconds to wait for the controller',
      integer(1),
      30_000,
    )
    .option(
      '--hub-timeout <ms>',
      'milliseconds to wait for a controller that went away (to be restarted) before exiting',
      integer(1),
      60_000,
    )
    .option('--exit-with-parent', 'exit when the parent process ends (used by clusters)')
    .option('--engine-set <id>', "the launch this engine belongs to (used by clusters' launchers)")
    .action(async (o: EngineFlags) => {
      await EngineServer.start({
        connectionFile: o.file ?? connectionFilePath('engine', o),
        registrationTimeout: o.registrationTimeout,
        hubTimeout: o.hubTimeout,
        parentPid: o.exitWithParent ? process.ppid : undefined,
        engineSet: o.engineSet,
        log: log('engine'),
      });
    });

  const cluster = program.command('cluster').description('start, stop and inspect clusters');

  cluster
    .command('start')
    .description('start a controller and engines; runs until interrupted unless --daemonize')
    .option('-n, --engines <n>', 'number of engines (default: one per core)', integer(0))
    .addOption(
      new Option('--launcher <name>', 'how engines start').choices(launcherNames).default('local'),
    )
    .option(
      '--launcher-options <json>',
      'the launcher\'s options as a JSON object, e.g. \'{"hosts": ["node1"]}\' for ssh',
      jsonObject,
    )
    .option('--ip <address>', 'address the controller listens on', ipAddress)
    .addOption(profileOption())
    .addOption(clusterIdOption(''))
    .addOption(new Option('--scheme <name>', 'load-balancing scheme').choices(schemeNames))
    .option(
      '--restart-engines <n>',
      'start a new engine in place of one that dies, at most n times a minute (not with --daemonize)',
      integer(1),
    )
    .option('--daemonize', 'start in the background and return')
    .action(async (o: StartFlags, command: Command) => {
      if (o.restartEngines !== undefined && o.daemonize) {
        command.error(
          'error: --restart-engines needs the cluster command to keep running; drop --daemonize.',
          { exitCode: USAGE_ERROR },
        );
      }
      const c = await Cluster.start({
        engines: o.engines,
        profile: o.profile,
        clusterId: o.clusterId,
        launcher: o.launcher,
        launcherOptions: o.launcherOptions,
        daemonize: o.daemonize ?? false,
        restartEngines: o.restartEngines,
        controller: { scheme: o.scheme, ip: o.ip },
      });
      const rc = await c.connect();
      process.stdout.write(
        `cluster "${c.clusterId || 'default'}" started: ${rc.ids.length} engines (ids ${rc.ids.join(', ')})\n` +
          `connection file: ${c.clientFile}\n`,
      );
      rc.close();
      if (!o.daemonize) {
        process.stdout.write('press Ctrl-C to stop it\n');
        await new Promise<void>((resolve) =>
          process.once('SIGINT', resolve).once('SIGTERM', resolve),
        );
        await c.stop();
      }
      process.exit(0);
    });

  cluster
    .command('stop')
    .description('stop a running cluster and all its processes')
    .addOption(profileOption())
    .addOption(clusterIdOption(''))
    .action(async (o: Where) => {
      const c = await Cluster.fromFile(Cluster.stateFilePath(o.profile, o.clusterId));
      await c.stop();
      process.stdout.write(`cluster "${o.clusterId || 'default'}" stopped\n`);
      process.exit(0);
    });

  cluster
    .command('list')
    .description('list the clusters this machine runs, in every profile')
    .action(() => {
      const rows = listClusters();
      if (rows.length === 0) process.stdout.write(`no clusters in ${tsparallelDir()}\n`);
      for (const s of rows) {
        process.stdout.write(
          `${s.profile}\t${s.clusterId || 'default'}\t${s.engineSets.reduce((n, set) => n + set.engines, 0)} engines\t` +
            `${s.launcher}\tcontroller pid ${s.controllerPid}\n`,
        );
      }
    });

  cluster
    .command('engines')
    .description("list a cluster's engines, or add, stop, restart or scale them")
    .option('--add <n>', 'start n more engines', integer(1))
    .option(
      '--scale <n>',
      'grow or shrink the cluster to n engines (idle ones stop first)',
      integer(0),
    )
    .option('--stop <id>', 'stop engine id', integer(0))
    .option('--restart <id>', 'replace engine id with a new one', integer(0))
    .addOption(profileOption())
    .addOption(clusterIdOption(''))
    .action(async (o: EnginesFlags) => {
      const c = await Cluster.fromFile(Cluster.stateFilePath(o.profile, o.clusterId));
      if (o.add !== undefined)
        process.stdout.write(`added engines ${(await c.addEngines(o.add)).join(', ')}\n`);
      if (o.stop !== undefined) {
        await c.stopEngine(o.stop);
        process.stdout.write(`stopped engine ${o.stop}\n`);
      }
      if (o.restart !== undefined) {
        process.stdout.write(
          `engine ${o.restart} replaced by engine ${await c.restartEngine(o.restart)}\n`,
        );
      }
      if (o.scale !== undefined) {
        process.stdout.write(`scaled to ${(await c.scale(o.scale)).length} engines\n`);
      }
      const rc = await c.connect();
      for (const e of rc.engineInfo) {
        const mpi = e.mpi ? `\tmpi rank ${e.mpi.rank} of ${e.mpi.size}` : '';
        process.stdout.write(`engine ${e.id}\tpid ${e.pid}\t${e.hostname}${mpi}\n`);
      }
      rc.close();
      process.exit(0);
    });

  withInstallPlace(
    program
      .command('kernel')
      .description('the Jupyter kernel "TypeScript (tsparallel)"')
      .command('install')
      .description('write the kernelspec where Jupyter finds it (per user by default)'),
    'kernels',
  ).action((o: InstallFlags) => {
    const dir = installKernelSpec(installPlace(o));
    process.stdout.write(`installed kernelspec "TypeScript (tsparallel)" in ${dir}\n`);
  });

  withInstallPlace(
    program
      .command('lab')
      .description('the JupyterLab extension with the cluster panel')
      .command('install')
      .description('copy the prebuilt extension where JupyterLab finds it (per user by default)'),
    'labextensions',
  ).action((o: InstallFlags) => {
    const dir = installLabExtension(installPlace(o));
    process.stdout.write(
      `installed the JupyterLab extension "tsparallel" in ${dir}; reload JupyterLab to see the panel\n`,
    );
  });

  return program;
}

interface InstallFlags {
  user?: boolean;
  prefix?: string;
  sysPrefix?: boolean;
}

/** `--user`, `--prefix` and `--sys-prefix`, as `jupyter kernelspec install` takes them. */
function withInstallPlace(command: Command, folder: string): Command {
  return command
    .addOption(new Option('--user', 'install for the current user (the default)'))
    .addOption(
      new Option('--prefix <path>', `install under PATH/share/jupyter/${folder}`).conflicts([
        'user',
        'sysPrefix',
      ]),
    )
    .addOption(
      new Option(
        '--sys-prefix',
        `install under share/jupyter/${folder} of the python3 on PATH (its sys.prefix)`,
      ).conflicts('user'),
    );
}

function installPlace(o: InstallFlags): InstallPlace {
  return o.prefix !== undefined ? { prefix: o.prefix } : { sysPrefix: o.sysPrefix ?? false };
}

function listClusters(): ClusterState[] {
  const root = tsparallelDir();
  let profiles: string[];
  try {
    profiles = readdirSync(root).filter((d) => d.startsWith('profile_'));
  } catch {
    return [];
  }
  return profiles.flatMap((p) =>
    readdirSync(join(root, p))
      .filter((f) => /^cluster-.*\.json$/.test(f))
      .map((f) => JSON.parse(readFileSync(join(root, p, f), 'utf8')) as ClusterState),
  );
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      const ok =
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help';
      process.exit(ok ? 0 : USAGE_ERROR);
    }
    process.stderr.write(`tsparallel: ${(e as Error).message}\n`);
    process.exit(e instanceof ControllerConfigError ? USAGE_ERROR : 1);
  }
}

if (require.main === module) void main();

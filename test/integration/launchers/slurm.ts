/**
 * A real single-node Slurm for the batch launcher's tests: munged, slurmctld and slurmd started
 * as this process's children with a configuration, key and state made in a temporary folder.
 *
 * Facts found on these machines (Debian 12, slurm-wlm 22.05, in a container, as root):
 * - munged runs as root with `--force`, its socket and key anywhere (`AuthInfo=socket=...`).
 * - `CommunicationParameters=NoCtldInAddrAny,NoInAddrAny` with `NodeAddr=127.0.0.1` keeps both
 *   daemons on loopback; without it slurmctld listens on every interface.
 * - `ProctrackType=proctrack/linuxproc` and `TaskPlugin=task/none` need no cgroups;
 *   `SlurmdParameters=config_overrides` lets the node offer more CPUs than it has (engines wait
 *   more than they compute), so a job array of several engines runs at once on 2 cores.
 * - The mpi/pmix plugin logs load errors (no PMIx library); nothing here needs it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './common';
import { randomBytes } from 'node:crypto';
import { until } from '../fixture';

export interface TestSlurm {
  /** The partition jobs go to. */
  partition: string;
  /** squeue's lines for `jobId` (all jobs when absent): `<id> <state>`. */
  queue(jobId?: string): string[];
  stop(): Promise<void>;
}

function daemon(command: string, args: string[], log: string): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'ignore'] });
  child.on('error', (e) => writeFileSync(log, `cannot start ${command}: ${e.message}\n`));
  return child;
}

/** Starts Slurm; resolves once its node is idle. Sets SLURM_CONF for this process's commands. */
export async function startSlurm(): Promise<TestSlurm> {
  const dir = mkdtempSync(join(tmpdir(), 'tsp-slurm-'));
  for (const d of ['munge', 'state', 'spool', 'log']) mkdirSync(join(dir, d), { mode: 0o700 });
  writeFileSync(join(dir, 'munge', 'munge.key'), randomBytes(1024), { mode: 0o400 });
  const socket = join(dir, 'munge', 'munge.socket');
  // slurmd calls itself by the short host name.
  const node = hostname().split('.')[0];
  const [ctldPort, dPort] = [await freePort(), await freePort()];
  const conf = join(dir, 'slurm.conf');
  writeFileSync(
    conf,
    [
      'ClusterName=tsparallel',
      `SlurmctldHost=${node}(127.0.0.1)`,
      `SlurmctldPort=${ctldPort}`,
      `SlurmdPort=${dPort}`,
      'CommunicationParameters=NoCtldInAddrAny,NoInAddrAny',
      'AuthType=auth/munge',
      'CredType=cred/munge',
      `AuthInfo=socket=${socket}`,
      'SlurmUser=root',
      'SlurmdUser=root',
      `StateSaveLocation=${join(dir, 'state')}`,
      `SlurmdSpoolDir=${join(dir, 'spool')}`,
      `SlurmctldPidFile=${join(dir, 'slurmctld.pid')}`,
      `SlurmdPidFile=${join(dir, 'slurmd.pid')}`,
      `SlurmctldLogFile=${join(dir, 'log', 'slurmctld.log')}`,
      `SlurmdLogFile=${join(dir, 'log', 'slurmd.log')}`,
      'ProctrackType=proctrack/linuxproc',
      'TaskPlugin=task/none',
      'SelectType=select/cons_tres',
      'SelectTypeParameters=CR_Core',
      'SchedulerParameters=sched_interval=1',
      'JobCompType=jobcomp/none',
      'AccountingStorageType=accounting_storage/none',
      'MpiDefault=none',
      'ReturnToService=2',
      'SlurmdParameters=config_overrides',
      'MailProg=/bin/true',
      `NodeName=${node} NodeAddr=127.0.0.1 CPUs=8 RealMemory=1000 State=UNKNOWN`,
      `PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES`,
    ].join('\n') + '\n',
  );
  process.env.SLURM_CONF = conf;
  const log = (name: string): string => join(dir, 'log', name);
  const daemons = [
    daemon(
      'munged',
      [
        '--foreground',
        '--force',
        `--socket=${socket}`,
        `--key-file=${join(dir, 'munge', 'munge.key')}`,
        `--log-file=${log('munged.log')}`,
        `--pid-file=${join(dir, 'munge', 'munged.pid')}`,
        `--seed-file=${join(dir, 'munge', 'munged.seed')}`,
      ],
      log('munged.log'),
    ),
  ];
  const sinfo = (): string => {
    try {
      return execFileSync('sinfo', ['--noheader', '--format=%T'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
    } catch {
      return 'down';
    }
  };
  const stop = async (): Promise<void> => {
    for (const d of daemons.reverse()) {
      if (d.exitCode !== null || d.signalCode !== null) continue;
      const exited = new Promise((resolve) => d.once('exit', resolve));
      d.kill('SIGTERM');
      await exited;
    }
    delete process.env.SLURM_CONF;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await until(() => isSocket(socket), 'munged to listen', 20_000);
    daemons.push(daemon('slurmctld', ['-D', '-i', '-f', conf], log('slurmctld.log')));
    daemons.push(daemon('slurmd', ['-D', '-f', conf], log('slurmd.log')));
    // Each check starts a process: a few a second.
    await until(() => sinfo() === 'idle', 'the Slurm node to be idle', 60_000, 250);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    partition: 'debug',
    queue: (jobId) =>
      execFileSync(
        'squeue',
        ['--noheader', '--array', '--format=%i %T', ...(jobId ? ['--jobs', jobId] : [])],
        { encoding: 'utf8' },
      )
        .split('\n')
        .filter((l) => l.trim() !== ''),
    stop,
  };
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

/** `tsparallel cluster start|stop|list|engines`: clusters of a controller and engines. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { Cluster, type ClusterState } from '../cluster/cluster';
import { clusterOptions, engineLaunchOptions } from '../cluster/options';
import { controllerSettings } from '../controller/options';
import { defineOptions, integer } from '../options/schema';
import { placeOptions, tsparallelDir } from '../protocol/connection';
import { formatResources } from '../protocol/resources';
import { addFlags, pick, resolveFlags } from '../options/commander';

/** What `cluster engines` changes before it lists the engines. */
const engineChanges = defineOptions(
  'cluster engines',
  {
    add: { kind: integer(1), help: 'start n more engines' },
    ...engineLaunchOptions.specs,
    scale: {
      kind: integer(0),
      help: 'grow or shrink the cluster to n engines (idle ones stop first)',
    },
    stop: { kind: integer(0, '<id>'), help: 'stop engine id' },
    restart: { kind: integer(0, '<id>'), help: 'replace engine id with a new one' },
    ...placeOptions.specs,
  },
  (o, name) =>
    o.resources !== undefined && o.add === undefined
      ? `${name('resources')} says what added engines hold: give ${name('add')} too`
      : undefined,
);

/** Adds the `cluster` command and its subcommands to `program`. */
export function clusterCommand(program: Command): void {
  const cluster = program.command('cluster').description('start, stop and inspect clusters');

  const start = cluster
    .command('start')
    .description('start a controller and engines; runs until interrupted unless --daemonize');
  // Without --cluster-id the command means the profile's default cluster, not a fresh one.
  addFlags(start, clusterOptions, { defaults: { clusterId: '' } });
  addFlags(start, controllerSettings).action(async (flags: Record<string, unknown>) => {
    const options = pick(clusterOptions, flags);
    const controller = pick(controllerSettings, flags);
    resolveFlags(start, clusterOptions, options);
    resolveFlags(start, controllerSettings, controller);
    const c = await Cluster.start({ ...options, controller });
    const rc = await c.connect();
    process.stdout.write(
      `cluster "${c.clusterId || 'default'}" started: ${rc.ids.length} engines (ids ${rc.ids.join(', ')})\n` +
        `connection file: ${c.clientFile}\n`,
    );
    rc.close();
    if (!options.daemonize) {
      process.stdout.write('press Ctrl-C to stop it\n');
      await new Promise<void>((resolve) =>
        process.once('SIGINT', resolve).once('SIGTERM', resolve),
      );
      await c.stop();
    }
    process.exit(0);
  });

  const stop = cluster.command('stop').description('stop a running cluster and all its processes');
  addFlags(stop, placeOptions).action(async (flags: Record<string, unknown>) => {
    const o = resolveFlags(stop, placeOptions, pick(placeOptions, flags));
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

  const engines = cluster
    .command('engines')
    .description("list a cluster's engines, or add, stop, restart or scale them");
  addFlags(engines, engineChanges).action(async (flags: Record<string, unknown>) => {
    const o = resolveFlags(engines, engineChanges, pick(engineChanges, flags));
    const c = await Cluster.fromFile(Cluster.stateFilePath(o.profile, o.clusterId));
    if (o.add !== undefined)
      process.stdout.write(
        `added engines ${(await c.addEngines(o.add, { resources: o.resources })).join(', ')}\n`,
      );
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
      process.stdout.write(
        `engine ${e.id}\tpid ${e.pid}\t${e.hostname}\t${formatResources(e.resources)}${mpi}\n`,
      );
    }
    rc.close();
    process.exit(0);
  });
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

/**
 * The MPI launcher's scenario, run by launcher-mpi.test.ts inside a network namespace: engines
 * under `mpiexec`, tasks, scaling both ways, and a stop that leaves nothing behind.
 */
import { readFileSync } from 'node:fs';
import { Cluster, type ClusterState } from '../../../cluster/cluster';
import { isAlive } from '../../../cluster/launchers/launcher';
import { LAUNCHER_HEARTBEAT } from './common';

async function main(): Promise<void> {
  const cluster = await Cluster.start({
    engines: 2,
    launcher: 'mpi',
    controller: LAUNCHER_HEARTBEAT,
  });
  const pids = new Set<number>();
  const remember = (): void => {
    const state = JSON.parse(readFileSync(cluster.stateFile, 'utf8')) as ClusterState;
    pids.add(state.controllerPid);
    for (const set of state.engineSets) for (const pid of set.pids) pids.add(pid);
    for (const e of rc.engineInfo) pids.add(e.pid);
  };
  const rc = await cluster.connect();
  remember();
  const report = {
    info: rc.engineInfo.map((e) => ({ id: e.id, mpi: e.mpi, set: e.engine_set })),
    // `mpi` is a global of each engine's namespace.
    ranks: await rc.directView().apply(() => (globalThis as unknown as { mpi: unknown }).mpi),
    squares: await rc.loadBalancedView().map((x: number) => x * x, [1, 2, 3, 4, 5]),
    grown: await cluster.scale(3),
    grownInfo: [] as unknown[],
    shrunk: [] as number[],
    mpiexecAfterShrink: 0,
    aliveAfterStop: [] as number[],
  };
  await rc.updateEngines(); // this client may not have heard of the new engine yet
  remember();
  report.grownInfo = rc.engineInfo.map((e) => ({ id: e.id, mpi: e.mpi, set: e.engine_set }));
  report.shrunk = await cluster.scale(1);
  const state = JSON.parse(readFileSync(cluster.stateFile, 'utf8')) as ClusterState;
  report.mpiexecAfterShrink = state.engineSets.length;
  await cluster.stop();
  // A multi-threaded process (mpiexec) that has been waited for can linger a moment in /proc
  // while its threads finish exiting (seen under gVisor, with no memory left): give it that.
  const deadline = performance.now() + 10_000;
  while ([...pids].some(isAlive) && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  report.aliveAfterStop = [...pids].filter(isAlive);
  process.stdout.write(JSON.stringify({ ...report, pids: [...pids] }) + '\n');
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`${e.stack}\n`);
    process.exit(1);
  },
);

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, type ClusterState } from '../../cluster/cluster';
import { isAlive, until } from './fixture';
import { heldUntil, LAUNCHER_HEARTBEAT } from './launchers/common';
import { startSlurm, type TestSlurm } from './launchers/slurm';

describe('the slurm launcher (a real single-node Slurm)', () => {
  let slurm: TestSlurm;
  let cluster: Cluster;
  const state = (): ClusterState =>
    JSON.parse(readFileSync(cluster.stateFile, 'utf8')) as ClusterState;

  before(async function () {
    this.timeout(120_000);
    slurm = await startSlurm();
    cluster = await Cluster.start({
      engines: 2,
      launcher: 'slurm',
      launcherOptions: {
        partition: slurm.partition,
        time: '10:00',
        directives: ['--comment=tsparallel-test'],
      },
      controller: LAUNCHER_HEARTBEAT,
      timeout: 60_000,
    });
  });
  after(async function () {
    this.timeout(60_000);
    await cluster?.stop();
    await slurm?.stop();
  });

  it('submits the engines as one job array with the job options passed through', async function () {
    this.timeout(90_000);
    const [set] = state().engineSets;
    const jobId = set.jobId as string;
    assert.deepEqual(slurm.queue(jobId).sort(), [`${jobId}_0 RUNNING`, `${jobId}_1 RUNNING`]);
    const [partition, limit, comment] = execFileSync(
      'squeue',
      ['--noheader', '--array', '--format=%P|%l|%k', '--jobs', `${jobId}_0`],
      { encoding: 'utf8' },
    )
      .trim()
      .split('|');
    assert.deepEqual([partition, limit, comment], [slurm.partition, '10:00', 'tsparallel-test']);
    const rc = await cluster.connect();
    // Each engine runs as an array task of that job.
    const tasks = await rc
      .directView()
      .apply(() => `${process.env.SLURM_ARRAY_JOB_ID}_${process.env.SLURM_ARRAY_TASK_ID}`);
    assert.deepEqual(tasks.sort(), [`${jobId}_0`, `${jobId}_1`]);
    assert.deepEqual(await rc.loadBalancedView().map((x: number) => -x, [1, 2, 3]), [-1, -2, -3]);
    rc.close();
  });

  it('scales up with another job and down by ending array tasks', async function () {
    this.timeout(90_000);
    assert.deepEqual(await cluster.scale(3), [0, 1, 2]);
    const sets = state().engineSets;
    assert.equal(sets.length, 2);
    assert.deepEqual(slurm.queue(sets[1].jobId), [`${sets[1].jobId}_0 RUNNING`]);
    assert.deepEqual(await cluster.scale(1), [0]);
    // The remaining engine's job keeps one running task; the others are gone from the queue.
    const left = state().engineSets;
    assert.deepEqual(
      left.map((s) => s.engines),
      [1],
    );
    // Tasks of stopped engines may still be COMPLETING, or for a moment still RUNNING: Slurm
    // notices their end on its own time after their processes exit.
    const running = (): string[] => slurm.queue().filter((l) => !l.endsWith(' COMPLETING'));
    await until(() => running().length === 1, `one array task running (${running().join('; ')})`);
    const queued = running();
    assert.match(queued[0], new RegExp(`^${left[0].jobId}_\\d RUNNING$`));
  });

  it('adapts: submits a job while tasks wait, and ends it once its engine is idle', async function () {
    this.timeout(90_000);
    const rc = await cluster.connect();
    const jobs = new Set(state().engineSets.map((s) => s.jobId));
    const adaptive = cluster.adapt({ minimum: 1, maximum: 2, interval: 200, wait: 1000 });
    // Both tasks hold their engine until the file exists, so that a second engine is needed.
    const release = join(process.env.TSPARALLEL_DIR as string, 'slurm-release');
    const results = rc.loadBalancedView().map(heldUntil, [1, 2], [release, release]);
    await until(() => rc.ids.length === 2, 'a second engine', 60_000);
    const added = state().engineSets.find((s) => !jobs.has(s.jobId));
    assert.ok(added, 'a new job');
    writeFileSync(release, '');
    assert.deepEqual(await results, [1, 2]);
    await until(() => rc.ids.length === 1, 'the idle engine to be stopped', 60_000);
    await adaptive.stop();
    assert.equal(adaptive.lastError, undefined);
    await until(
      () => slurm.queue().filter((l) => !l.endsWith(' COMPLETING')).length === 1,
      'one array task left running',
    );
    rc.close();
  });

  it('stops leaving nothing in the queue and no engine running', async function () {
    this.timeout(90_000);
    const rc = await cluster.connect();
    const pids = [state().controllerPid, ...rc.engineInfo.map((e) => e.pid)];
    rc.close();
    await cluster.stop();
    assert.deepEqual(slurm.queue(), []);
    assert.deepEqual(pids.filter(isAlive), []);
  });
});

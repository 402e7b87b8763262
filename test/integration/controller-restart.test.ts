import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../../cluster/launchers/launcher';
import type { AsyncResult } from '../../client/async-result';
import { Cluster, type ClusterState } from '../../cluster/cluster';
import { profileDir } from '../../protocol/connection';
import { EngineError, TimeoutError } from '../../protocol/errors';
import { FAST_HEARTBEAT, figures, isAlive, until } from './fixture';

async function sleepThen(ms: number, value: number): Promise<number> {
  await new Promise((r) => setTimeout(r, ms));
  return value;
}

/** A task that has neither a result nor an error by then is lost. */
const LOST_AFTER_MS = 40_000;

/** How a task ended: its value, or the error it failed with (a `TimeoutError` if lost). */
async function outcome(ar: AsyncResult<unknown>): Promise<{ value?: unknown; error?: Error }> {
  try {
    return { value: await ar.get({ timeout: LOST_AFTER_MS }) };
  } catch (e) {
    return { error: e as Error };
  }
}

describe('a controller killed with SIGKILL and started again on its database', () => {
  let cluster: Cluster;
  let restored: ChildProcess | undefined;

  before(async function () {
    this.timeout(30_000);
    cluster = await Cluster.start({
      engines: 2,
      controller: { ...FAST_HEARTBEAT, db: 'sqlite' },
    });
  });

  after(async function () {
    this.timeout(30_000);
    await cluster.stop();
    if (restored?.pid && isAlive(restored.pid)) restored.kill('SIGKILL');
  });

  it('keeps finished results, and ends every in-flight task with a result or an explicit error', async function () {
    this.timeout(60_000);
    const rc = await cluster.connect();
    const lv = rc.loadBalancedView();
    const done = lv.apply((x: number) => x * 2, 21);
    assert.equal(await done, 42);
    const running = [
      lv.withOptions({ retries: 1 }).apply(sleepThen, 3000, 1),
      lv.apply(sleepThen, 60_000, 2),
    ];
    // More tasks than engines: these wait in the controller's queue when it dies.
    const queued = [3, 4, 5].map((v) => lv.apply(sleepThen, 10, v));
    const tasks = [done, ...running, ...queued];
    figures.tasksSubmitted += tasks.length;
    // Both engines busy and three tasks waiting (engines hold one load-balanced task each).
    while ((await rc.queueStatus()).unassigned < 3) await new Promise((r) => setTimeout(r, 20));
    const before = new Set(rc.ids);

    const state = JSON.parse(readFileSync(cluster.stateFile, 'utf8')) as ClusterState;
    process.kill(state.controllerPid, 'SIGKILL');
    figures.faultsInjected++;
    await until(() => !isAlive(state.controllerPid), 'the controller to die');
    restored = spawn(
      process.execPath,
      [
        CLI,
        'controller',
        '--restore',
        '--db',
        'sqlite',
        '--profile',
        cluster.profile,
        '--cluster-id',
        cluster.clusterId,
        '--heartbeat-period',
        String(FAST_HEARTBEAT.heartbeatPeriod),
        '--heartbeat-deadline',
        String(FAST_HEARTBEAT.heartbeatDeadline),
      ],
      { stdio: 'ignore' },
    );

    const ends = await Promise.all(tasks.map(outcome));
    const lost = ends.filter((end) => end.error instanceof TimeoutError).length;
    figures.tasksLost += lost;
    assert.equal(lost, 0);
    assert.deepEqual(ends[0], { value: 42 });
    assert.deepEqual(ends[1], { value: 1 }, 'the task with a retry ran again');
    assert.ok(ends[2].error instanceof EngineError, 'the task without retries failed explicitly');
    assert.match(ends[2].error.message, /controller restarted .* result is lost/);
    assert.deepEqual(
      ends.slice(3).map((e) => e.value),
      [3, 4, 5],
      'queued tasks ran after the restart',
    );

    // The engines came back by themselves, with new ids; the result is still on record.
    await rc.waitForEngines(2);
    assert.ok(rc.ids.every((id) => !before.has(id)));
    assert.equal((await rc.result(done.msgIds[0])).value, 42);
    assert.equal(await lv.apply(() => 'after'), 'after');
    assert.ok(existsSync(join(profileDir(cluster.profile), `tasks-${cluster.clusterId}.db`)));
    rc.close();
  });
});

describe('tsparallel controller --db', () => {
  it('refuses a store it does not know, naming the choices', () => {
    const run = spawnSync(process.execPath, [CLI, 'controller', '--db', 'postgres'], {
      encoding: 'utf8',
    });
    assert.equal(run.status, 2);
    assert.match(
      run.stderr,
      /--db "postgres" is not a task store; use memory, sqlite or sqlite:PATH/,
    );
  });
});

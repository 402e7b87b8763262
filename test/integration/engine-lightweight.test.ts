import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '../../client/client';
import { Cluster, type ClusterState } from '../../cluster/cluster';
import { FAST_HEARTBEAT } from './fixture';

const SCALE = join(__dirname, '..', '..', 'bench', 'scale.js');

describe('lightweight engines, several in one process', function () {
  this.timeout(60_000);
  let cluster: Cluster;
  let rc: Client;
  let host: ChildProcess;

  before(async () => {
    cluster = await Cluster.start({ engines: 0, controller: FAST_HEARTBEAT });
    rc = await cluster.connect();
    const state = JSON.parse(readFileSync(cluster.stateFile, 'utf8')) as ClusterState;
    host = spawn(process.execPath, [SCALE, 'host', '5', state.engineFile], {
      stdio: ['pipe', 'ignore', 'inherit'],
    });
  });
  after(async () => {
    host?.kill();
    rc?.close();
    await cluster?.stop();
  });

  it('register as separate engines of one process, run tasks and keep beating', async () => {
    const ids = await rc.waitForEngines(5);
    assert.equal(ids.length, 5);
    assert.equal(new Set(rc.engineInfo.map((e) => e.pid)).size, 1);
    const lv = rc.loadBalancedView();
    const square = (x: number): number => x * x;
    assert.deepEqual(await lv.map(square, [1, 2, 3, 4, 5, 6, 7, 8]), [1, 4, 9, 16, 25, 36, 49, 64]);
    const direct = await Promise.all(ids.map((id) => rc.directView(id).apply(() => 2 + 2)));
    assert.deepEqual(
      direct,
      ids.map(() => [4]),
    );
    // Several heartbeat deadlines later every engine is still there: the beats go on.
    await new Promise((resolve) =>
      setTimeout(resolve, 3 * (FAST_HEARTBEAT.heartbeatDeadline ?? 0)),
    );
    assert.deepEqual(await rc.updateEngines(), ids);
  });

  it("share the process's connections to the hub, yet an abort reaches only its engine", async () => {
    const [first, second] = rc.ids;
    const wait = (): Promise<string> => new Promise((resolve) => setTimeout(resolve, 1500, 'done'));
    const aborted = rc.directView(first).apply(wait);
    const other = rc.directView(second).apply(wait);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await aborted.abort();
    await assert.rejects(async () => aborted, { name: 'TaskAbortedError' });
    assert.deepEqual(await other, ['done']);
    // Replies through the shared link come back under each engine's own id.
    const ran = await rc.loadBalancedView().map((x: number) => x, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(ran, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('stop on shutdown without ending the process the others share', async () => {
    const [first, ...rest] = rc.ids;
    const gone = rc.events();
    await rc.shutdown({ targets: [first] });
    for await (const e of gone) if (e.type === 'engine:unregister' && e.id === first) break;
    assert.deepEqual(await rc.updateEngines(), rest);
    assert.equal(host.exitCode, null);
    assert.deepEqual(await rc.directView(rest[0]).apply(() => 'still here'), ['still here']);
    host.kill();
    await once(host, 'exit');
  });
});

describe('lightweight engines whose process is killed', function () {
  this.timeout(60_000);
  let cluster: Cluster;
  let rc: Client;

  before(async () => {
    cluster = await Cluster.start({ engines: 1, controller: FAST_HEARTBEAT });
    rc = await cluster.connect();
  });
  after(async () => {
    rc?.close();
    await cluster?.stop();
  });

  it('all die within the heartbeat deadline, and their tasks run again elsewhere', async () => {
    const state = JSON.parse(readFileSync(cluster.stateFile, 'utf8')) as ClusterState;
    const host = spawn(process.execPath, [SCALE, 'host', '3', state.engineFile], {
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    await rc.waitForEngines(4);
    const light = rc.engineInfo.filter((e) => e.pid === host.pid).map((e) => e.id);
    assert.equal(light.length, 3);
    const lv = rc.loadBalancedView().withOptions({ retries: 1 });
    const sleepThenPid = async (ms: number): Promise<number> => {
      await new Promise((r) => setTimeout(r, ms));
      return process.pid;
    };
    // One task to each engine; the process's three are running when it is killed.
    const ars = [1, 2, 3, 4].map(() => lv.apply(sleepThenPid, 1000));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const gone = rc.events();
    host.kill('SIGKILL');
    const killed = performance.now();
    const dropped = new Set<number>();
    for await (const e of gone) {
      if (e.type === 'engine:unregister' && light.includes(e.id)) dropped.add(e.id);
      if (dropped.size === light.length) break;
    }
    const deadline = FAST_HEARTBEAT.heartbeatDeadline ?? 0;
    assert.ok(performance.now() - killed < deadline + 1500, 'noticed within the deadline');
    const pids = await Promise.all(ars);
    assert.ok(!pids.includes(host.pid ?? -1), 'each task ran again on the engine left');
    assert.deepEqual(await rc.updateEngines(), rc.ids);
    assert.equal(rc.ids.length, 1);
  });
});

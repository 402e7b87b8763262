import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '../../client/client';
import { Cluster, type ClusterState } from '../../cluster/cluster';
import { FAST_HEARTBEAT, finalRecord, useCluster } from './fixture';

declare function publish(data: unknown): void;

/** Publishes steps 1, 2, 3 (awaiting between them when `pause`), then returns 'done'. */
const steps = async (pause: boolean): Promise<string> => {
  for (let step = 1; step <= 3; step++) {
    publish({ step });
    if (pause) await new Promise((r) => setTimeout(r, 5));
  }
  return 'done';
};

describe('publish(data) on a real cluster of 2 engines', () => {
  const t = useCluster(2);

  it('data arrives in order, live, and all of it before the result', async () => {
    for (const pause of [false, true]) {
      const ar = t.rc.loadBalancedView().apply(steps, pause);
      const seen: { data: unknown; engineId: number }[] = [];
      ar.onData((data, engineId) => seen.push({ data, engineId }));
      assert.equal(await ar, 'done');
      // Data published after the result would come after the reply: none may be missing here.
      const engine = ar.metadata[0].engineId;
      assert.deepEqual(
        seen,
        [1, 2, 3].map((step) => ({ data: { step }, engineId: engine })),
      );
      assert.deepEqual(ar.data, { step: 3 });
    }
  });

  it('onData gives each engine id; ar.data is the latest of any task', async () => {
    const dv = t.rc.directView();
    const seen = new Map<number, unknown>();
    const ar = dv.apply(() => publish(`from ${engineId}`));
    ar.onData((data, engineId) => seen.set(engineId, data));
    await ar;
    assert.deepEqual(
      [...seen].sort((a, b) => a[0] - b[0]),
      t.rc.ids.map((id) => [id, `from ${id}`]),
    );
    assert.ok(t.rc.ids.some((id) => ar.data === `from ${id}`));
    // Registered after the fact, onData first gives the latest data of each task.
    const late: unknown[] = [];
    ar.onData((data) => late.push(data));
    assert.equal(late.length, 2);
  });

  it('a map gives the latest data per task, in task order', async () => {
    const ar = t.rc.loadBalancedView().map(
      (x: number) => {
        publish(x);
        publish(x * 10);
        return x;
      },
      [1, 2, 3],
    );
    assert.deepEqual(ar.data, [undefined, undefined, undefined]);
    assert.deepEqual(await ar, [1, 2, 3]);
    assert.deepEqual(ar.data, [10, 20, 30]);
  });

  it('the hub keeps a task’s latest data in its record, for rc.result', async () => {
    const ar = t.rc.loadBalancedView().apply(() => {
      publish(new Map([['rows', 10]]));
      publish(new Map([['rows', 20]]));
      return new Float64Array([1.5]);
    });
    await ar;
    const record = await t.rc.result(ar.msgIds[0]);
    assert.deepEqual(record.value, new Float64Array([1.5]));
    assert.deepEqual(record.data, new Map([['rows', 20]]));
    const quiet = t.rc.loadBalancedView().apply(() => 1);
    await quiet;
    assert.equal((await t.rc.result(quiet.msgIds[0])).data, undefined);
  });

  it('data a finished task leaves behind reaches neither it nor the next task', async () => {
    const dv = t.rc.directView(0);
    const first = dv.apply(() => {
      publish('first');
      setTimeout(() => publish('left behind'), 20);
      return 1;
    });
    const firstSeen: unknown[] = [];
    first.onData((d) => firstSeen.push(d));
    await first;
    const second = dv.apply(async () => {
      await new Promise((r) => setTimeout(r, 200));
      publish('second');
      return 2;
    });
    const secondSeen: unknown[] = [];
    second.onData((d) => secondSeen.push(d));
    await second;
    assert.deepEqual(firstSeen, ['first']);
    assert.deepEqual(secondSeen, ['second']);
    assert.equal((await finalRecord(t.rc, first.msgIds[0])).data, 'first');
  });

  it('data that cannot travel fails the task with a SerializationError naming it', async () => {
    const ar = t.rc.loadBalancedView().apply(() => publish({ f: () => 1 }));
    await assert.rejects(ar.get(), /SerializationError[\s\S]*data\.f/);
  });
});

describe('publish(data) from two tasks at once in one process', function () {
  this.timeout(60_000);
  let cluster: Cluster;
  let rc: Client;
  let host: ChildProcess;

  before(async () => {
    cluster = await Cluster.start({ engines: 0, controller: FAST_HEARTBEAT });
    rc = await cluster.connect();
    const state = JSON.parse(readFileSync(cluster.stateFile, 'utf8')) as ClusterState;
    // Lightweight engines share one process and one namespace, so one `publish`.
    const scale = join(__dirname, '..', '..', 'bench', 'scale.js');
    host = spawn(process.execPath, [scale, 'host', '2', state.engineFile], {
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    await rc.waitForEngines(2);
  });
  after(async () => {
    host?.kill();
    rc?.close();
    await cluster?.stop();
  });

  it('each task sees only its own data, interleaved as they run', async () => {
    const [a, b] = rc.ids;
    const run = async (name: string): Promise<string> => {
      for (let i = 0; i < 5; i++) {
        publish(`${name}${i}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return name;
    };
    const ars = [rc.directView(a).apply(run, 'a'), rc.directView(b).apply(run, 'b')];
    const seen: unknown[][] = [[], []];
    ars.forEach((ar, i) => ar.onData((d) => seen[i].push(d)));
    assert.deepEqual(await Promise.all(ars), [['a'], ['b']]);
    assert.deepEqual(seen, [
      ['a0', 'a1', 'a2', 'a3', 'a4'],
      ['b0', 'b1', 'b2', 'b3', 'b4'],
    ]);
  });
});

declare const engineId: number;

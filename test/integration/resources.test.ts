/**
 * Resources (Ray's `num_gpus`): engines declare what they hold, tasks ask, and the hub places a
 * task only where what it asks is free, holding it otherwise; a request no live engine holds
 * fails at once with `ResourceError`. A real cluster: one engine started with `{ gpu: 1 }` by
 * `addEngines`, one that says nothing (one CPU).
 */
import assert from 'node:assert/strict';
import { Cluster } from '../../cluster/cluster';
import { EngineError, ResourceError } from '../../protocol/errors';
import type { Client } from '../../client/client';
import { FAST_HEARTBEAT } from './fixture';

/** When a task ran on its engine, by the engine's clock, and where. */
interface Span {
  pid: number;
  start: number;
  end: number;
}

async function spanOf(ms: number): Promise<Span> {
  const start = Date.now();
  await new Promise((r) => setTimeout(r, ms));
  return { pid: process.pid, start, end: Date.now() };
}

describe('resources', () => {
  let cluster: Cluster;
  let rc: Client;
  let plain: number;
  let gpu: number;
  const pidOf = (id: number): number => rc.engineInfo.find((e) => e.id === id)?.pid ?? -1;

  before(async function () {
    this.timeout(60_000);
    // hwm 4: without resources, one engine would take four tasks at once.
    cluster = await Cluster.start({ engines: 1, controller: { ...FAST_HEARTBEAT, hwm: 4 } });
    [gpu] = await cluster.addEngines(1, { resources: { gpu: 1 } });
    rc = await cluster.connect();
    plain = rc.ids.find((id) => id !== gpu) as number;
  });
  after(async function () {
    this.timeout(30_000);
    rc?.close();
    await cluster?.stop();
  });

  it('engines declare one CPU unless told, and what addEngines gives them', () => {
    const held = Object.fromEntries(rc.engineInfo.map((e) => [e.id, e.resources]));
    assert.deepEqual(held, { [plain]: { cpu: 1 }, [gpu]: { cpu: 1, gpu: 1 } });
  });

  it('places gpu tasks on the gpu engine only, one at a time, holding the rest in the queue', async function () {
    this.timeout(30_000);
    const gv = rc.loadBalancedView().withOptions({ resources: { gpu: 1 } });
    const ar = gv.map(spanOf, [300, 300, 300, 300]);
    // The hub takes the tasks before this request: one is on the gpu engine, three wait.
    const status = await rc.queueStatus();
    assert.equal(status[gpu].queue, 1);
    assert.deepEqual(status[gpu].resources_in_use, { gpu: 1 });
    assert.equal(status[plain].queue, 0);
    assert.equal(status.unassigned, 3);
    const spans = await ar;
    assert.deepEqual(new Set(spans.map((s) => s.pid)), new Set([pidOf(gpu)]));
    spans.sort((a, b) => a.start - b.start);
    for (let i = 1; i < spans.length; i++) {
      assert.ok(spans[i].start >= spans[i - 1].end, `task ${i} began before task ${i - 1} ended`);
    }
    assert.equal((await rc.queueStatus())[gpu].resources_in_use, undefined);
  });

  it('runs CPU tasks anywhere, beside a gpu task that holds the gpu engine', async function () {
    this.timeout(30_000);
    const lv = rc.loadBalancedView();
    const gpuTask = lv.withOptions({ resources: { gpu: 1 } }).apply(spanOf, 1000);
    const cpus = await lv.withOptions({ resources: { cpu: 1 } }).map(spanOf, [200, 200, 200, 200]);
    assert.deepEqual(new Set(cpus.map((s) => s.pid)), new Set([pidOf(plain), pidOf(gpu)]));
    assert.equal((await gpuTask).pid, pidOf(gpu));
  });

  it('lets tasks behind a held one go ahead where they fit', async function () {
    this.timeout(30_000);
    const gv = rc.loadBalancedView().withOptions({ resources: { gpu: 1 } });
    const [first, held] = [gv.apply(spanOf, 800), gv.apply(spanOf, 0)];
    const after = await rc.loadBalancedView().apply(spanOf, 0);
    assert.equal(after.pid, pidOf(plain));
    const [a, b] = [await first, await held];
    assert.ok(after.end <= b.start, 'the plain task waited behind the held gpu task');
    assert.ok(a.end <= b.start);
  });

  it('fails a request no engine holds at once, naming the resource and what engines hold', async () => {
    const ar = rc
      .loadBalancedView()
      .withOptions({ resources: { gpu: 2 } })
      .apply(spanOf, 0);
    await assert.rejects(ar.get(), (e: unknown) => {
      assert.ok(e instanceof ResourceError, String(e));
      assert.match(e.message, /^no live engine holds gpu=2, which this task asks for/);
      assert.match(e.message, new RegExp(`engine ${gpu} holds cpu=1,gpu=1`));
      assert.match(e.message, new RegExp(`engine ${plain} holds cpu=1\\b`));
      return true;
    });
  });

  it('refuses bad resource names and amounts where the view takes them', () => {
    const lv = rc.loadBalancedView();
    assert.throws(
      () => lv.withOptions({ resources: { gpu: -1 } }),
      /^RangeError: view option resources has gpu=-1; an amount must be a number >= 0/,
    );
    assert.throws(
      () => lv.withOptions({ resources: { 'my gpu': 1 } }),
      /^RangeError: view option resources has resource name "my gpu"/,
    );
  });

  it('lets a direct task occupy what it asks, and refuses one its engine does not hold', async () => {
    const ask = { resources: { gpu: 1 } };
    assert.deepEqual(
      await rc
        .directView(gpu)
        .withOptions(ask)
        .apply(() => process.pid),
      [pidOf(gpu)],
    );
    assert.throws(
      () =>
        rc
          .directView('all')
          .withOptions(ask)
          .apply(() => process.pid),
      (e: unknown) =>
        e instanceof ResourceError &&
        new RegExp(`^engine ${plain} does not hold gpu=1, which this direct task asks for`).test(
          e.message,
        ),
    );
  });

  it('fails a task held for a resource whose only engine died', async function () {
    this.timeout(30_000);
    const [tpu] = await cluster.addEngines(1, { resources: { tpu: 1 } });
    await rc.updateEngines();
    const tv = rc.loadBalancedView().withOptions({ resources: { tpu: 1 } });
    const running = tv.apply(spanOf, 60_000);
    const held = tv.apply(spanOf, 0);
    const status = await rc.queueStatus();
    assert.equal(status.unassigned, 1);
    process.kill(pidOf(tpu), 'SIGKILL');
    await assert.rejects(running.get(), EngineError);
    await assert.rejects(held.get(), (e: unknown) => {
      assert.ok(e instanceof ResourceError, String(e));
      assert.match(e.message, /^no live engine holds tpu=1/);
      return true;
    });
  });
});

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createContext, runInContext } from 'node:vm';
import * as zmq from 'zeromq';
import type { TaskOutput } from '../../client/async-result';
import { taskSubmitted, type Client } from '../../client/client';
import { Cluster, type ClusterState } from '../../cluster/cluster';
import { profileDir } from '../../protocol/connection';
import { EngineError, TaskAbortedError } from '../../protocol/errors';
import { Session } from '../../protocol/session';
import { FAST_HEARTBEAT, figures, finalRecord, until, useCluster } from './fixture';

function controllerPid(cluster: Cluster): number {
  return (JSON.parse(readFileSync(cluster.stateFile, 'utf8')) as ClusterState).controllerPid;
}

/** Everything the cluster's engines logged. */
function engineLogs(cluster: Cluster): string {
  const dir = join(profileDir(cluster.profile), 'log');
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${cluster.clusterId || 'default'}-engine-`))
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n');
}

/** Runs `body` with the controller process stopped (SIGSTOP), resuming it however body ends. */
async function withControllerStopped<T>(cluster: Cluster, body: () => PromiseLike<T>): Promise<T> {
  const pid = controllerPid(cluster);
  process.kill(pid, 'SIGSTOP');
  figures.faultsInjected++;
  try {
    return await body();
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

/** Prints its engine's pid, then sleeps. */
async function printThenSleep(ms: number): Promise<number> {
  console.log(process.pid);
  await new Promise((r) => setTimeout(r, ms));
  return process.pid;
}

async function nap(ms: number): Promise<number> {
  await new Promise((r) => setTimeout(r, ms));
  return ms;
}

/** Resolves at the task's first output (from `printThenSleep`: it runs), with that pid. */
function started(ar: { onOutput(cb: (o: TaskOutput) => void): void }): Promise<number> {
  return new Promise((resolve) =>
    ar.onOutput((o) => o.type === 'stream' && resolve(Number(o.text.trim()))),
  );
}

describe('direct paths: clients and engines without the hub in between', () => {
  const t = useCluster(2);

  it('runs direct-view tasks while the controller is stopped; its records catch up after', async () => {
    const dv = t.rc.directView();
    const { values, outputs, ids } = await withControllerStopped(t.cluster, async () => {
      const squares = await t.rc.directView(1).map((x: number) => x * x, [1, 2, 3, 4]);
      const ar = dv.apply((x: number) => {
        console.log(`engine ${engineId} got ${x}`);
        return engineId * 10 + x;
      }, 7);
      const got = await ar;
      const [run] = await t.rc.directView(0).execute('const seen = 5; seen * 2');
      figures.tasksSubmitted += 7;
      return { values: { squares, got, run: run.result }, outputs: ar.stdout, ids: ar.msgIds };
    });
    assert.deepEqual(values, { squares: [1, 4, 9, 16], got: [7, 17], run: '10' });
    assert.deepEqual(outputs, ['engine 0 got 7\n', 'engine 1 got 7\n']);
    for (const [i, id] of ids.entries()) {
      const r = await finalRecord(t.rc, id);
      assert.equal(r.state, 'completed');
      assert.equal(r.engineId, i);
      assert.equal(r.value, i * 10 + 7);
      assert.ok(r.started && r.completed && r.started <= r.completed);
    }
    // The map's and execute's replies reach the hub after the client: it catches up.
    await until(async () => {
      const status = await t.rc.queueStatus();
      return status[0].queue + status[1].queue === 0;
    }, 'the hub to hold none of them as running');
  });

  it('runs a client’s tasks in the order sent, quick ones taken at once behind ones that wait', async () => {
    const dv = t.rc.directView(0);
    // Functions travel without their closures: each finds the list on its engine's globals.
    type Noted = typeof globalThis & { order: number[] };
    const note = (i: number): number => (globalThis as Noted).order.push(i);
    const noteLater = async (i: number): Promise<number> => {
      await new Promise((r) => setTimeout(r, 20));
      return (globalThis as Noted).order.push(i);
    };
    await dv.apply(() => void ((globalThis as Noted).order = []));
    // One at a time (each taken up in the turn it arrives), then a burst mixing quick tasks
    // with ones that wait, which those after them wait for.
    for (let i = 0; i < 3; i++) await dv.apply(note, i);
    const burst = [3, 4, 5, 6, 7, 8].map((i) =>
      i % 2 === 0 ? dv.apply(note, i) : dv.apply(noteLater, i),
    );
    await Promise.all(burst);
    await dv.apply(noteLater, 9);
    const order = await dv.apply(() => (globalThis as Noted).order);
    assert.deepEqual(order, [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
    figures.tasksSubmitted += 12;
  });

  it('sends a quick task’s reply before a task behind it that is not quick runs', async () => {
    const dv = t.rc.directView(0);
    const quick = (x: number): number => x + 1;
    await dv.apply(quick, 0); // now known as quick on engine 0
    // Behind a task that takes a while, the other two are in hand when it ends.
    const nap = (ms: number): Promise<number> => new Promise((r) => setTimeout(() => r(ms), ms));
    const first = dv.apply(nap, 100);
    const second = dv.apply(quick, 1);
    const slow = dv.apply(nap, 3000);
    assert.deepEqual(await second, [2]);
    // Had the reply waited for the slow task, the slow one's would have come with it.
    assert.deepEqual(await t.rc.directView(1).apply(() => 'elsewhere'), ['elsewhere']);
    assert.equal(slow.ready(), false, 'the quick task’s reply waited for the slow task');
    assert.deepEqual(await Promise.all([first, slow]), [[100], [3000]]);
    figures.tasksSubmitted += 4;
  });

  it('tells the hub a quick task ended before a task behind it that is not quick blocks its engine', async () => {
    const dv = t.rc.directView(0);
    const spin = (ms: number): number => {
      for (const end = Date.now() + ms; Date.now() < end; );
      return ms;
    };
    const quick = dv.apply((x: number) => x + 1, 0);
    const blocking = dv.apply(spin, 3000);
    assert.deepEqual(await quick, [1]);
    assert.equal((await finalRecord(t.rc, quick.msgIds[0])).state, 'completed');
    assert.equal(blocking.ready(), false, 'the hub heard of the quick task only once it ended');
    assert.deepEqual(await blocking, [3000]);
    figures.tasksSubmitted += 2;
  });

  it('gives rc.result a direct task’s final record right after its reply, though its engine tells the hub later', async () => {
    // A load-balanced task from the hub is answered straight too (see below).
    for (const [i, view] of [
      t.rc.directView(0),
      t.rc.loadBalancedView().withOptions({ lease: true }),
      t.rc.loadBalancedView(),
    ].entries()) {
      for (let round = 0; round < 10; round++) {
        const ar = view.apply((x: number) => x * 2, round);
        assert.deepEqual(await ar, i === 0 ? [round * 2] : round * 2);
        const record = await t.rc.result(ar.msgIds[0]);
        assert.equal(record.state, 'completed', `round ${round}: the record still said running`);
        assert.equal(record.value, round * 2);
      }
    }
    // One that runs on is answered as running, a moment later, not when it ends.
    const running = t.rc.directView(1).apply(printThenSleep, 5000);
    await started(running);
    assert.equal((await t.rc.result(running.msgIds[0])).state, 'running');
    assert.equal(running.ready(), false);
    await running;
    figures.tasksSubmitted += 31;
  });

  it('answers a load-balanced task from the hub straight to its client, which the hub hears of after', async () => {
    // The client has a socket to each engine once it sent them a task straight.
    assert.deepEqual(await t.rc.directView().apply(() => 'reached'), ['reached', 'reached']);
    const lb = t.rc.loadBalancedView();
    const ar = lb.apply(nap, 1000);
    figures.tasksSubmitted++;
    await until(async () => (await t.rc.result(ar.msgIds[0])).state === 'running', 'it to run');
    const value = await withControllerStopped(t.cluster, () =>
      Promise.race([
        ar.get(),
        nap(5000).then(() => assert.fail('the reply waited for the stopped controller')),
      ]),
    );
    assert.equal(value, 1000);
    const record = await finalRecord(t.rc, ar.msgIds[0]);
    assert.equal(record.state, 'completed');
    assert.equal(record.value, 1000);
    // Its engine no longer counts it, in the hub's figures.
    const status = await t.rc.queueStatus();
    assert.equal(status[0].queue + status[1].queue, 0);
  });

  it('answers a task from the hub that printed through the hub, behind its output', async () => {
    assert.deepEqual(await t.rc.directView().apply(() => 'reached'), ['reached', 'reached']);
    const ar = t.rc.loadBalancedView().apply(printThenSleep, 300);
    figures.tasksSubmitted++;
    const pid = await started(ar);
    await withControllerStopped(t.cluster, async () => {
      await nap(1000);
      assert.equal(ar.ready(), false, 'the reply overtook the output it follows');
    });
    assert.equal(await ar, pid);
    assert.deepEqual(ar.stdout, [`${pid}\n`]);
  });

  it('aborts a running direct task and one queued behind it; the engine serves on', async () => {
    const dv = t.rc.directView(0);
    const running = dv.apply(printThenSleep, 60_000);
    const queued = dv.apply(() => 'never');
    await started(running);
    await t.rc.abort([...running.msgIds, ...queued.msgIds]);
    await assert.rejects(running.get(), TaskAbortedError);
    await assert.rejects(queued.get(), TaskAbortedError);
    assert.deepEqual(await dv.apply(() => 'after'), ['after']);
    assert.equal((await finalRecord(t.rc, running.msgIds[0])).state, 'aborted');
  });

  it('makes a send an interrupt cut short again: the task can be aborted, the engines serve on', async function () {
    // A notebook interrupt ends a cell's synchronous code (breakOnSigint) between any two
    // statements, as a vm timeout does here: a cut after the engine got a task but before the
    // hub was to be told of it left the hub unable to abort it, and the engine looping for good.
    this.timeout(120_000);
    const sent: string[] = [];
    const unlisten = taskSubmitted.listen(({ task }) => sent.push(task.metadata.msgId));
    const context = createContext({ rc: t.rc, performance });
    try {
      for (let i = 0; i < 80; i++) {
        sent.length = 0;
        // Busy until just before the 1 ms timeout, so that it falls in a lone send; or sending
        // for longer than that, so that it falls among sends that leave together.
        const busy = 0.6 + (i % 10) * 0.05;
        const cell =
          i % 2 === 0
            ? `{ const t0 = performance.now(); while (performance.now() - t0 < ${busy}); rc.directView().apply(() => { for (;;); }); }`
            : `{ const t0 = performance.now(); while (performance.now() - t0 < 3) rc.directView().apply(() => { for (;;); }); }`;
        try {
          runInContext(cell, context, { timeout: 1 });
        } catch {
          // Cut, most times; what matters is what follows.
        }
        await t.rc.abort(sent);
        assert.deepEqual(
          await t.rc
            .directView()
            .withOptions({ timeout: 10_000 })
            .apply(() => 'free'),
          ['free', 'free'],
          `after cut ${i}`,
        );
      }
    } finally {
      unlisten();
    }
  });

  it('refuses a replayed or forged message on the engine’s own socket, and runs a task sent twice once', async () => {
    const [engine] = t.rc.engineInfo;
    assert.ok(engine.direct, 'the engine registered a direct address');
    // Sends an interrupt cut short and made again are refused as replays too (see above).
    const replays = (): number =>
      (engineLogs(t.cluster).match(/direct socket: message replayed/g) ?? []).length;
    const replaysBefore = replays();
    const key = (JSON.parse(readFileSync(t.cluster.clientFile, 'utf8')) as { key: string }).key;
    const insider = new Session(key);
    const peer = new zmq.Dealer({ linger: 0, routingId: insider.id });
    peer.connect(engine.direct.address);
    const count = insider.msg('execute_request', {
      code: 'globalThis.directHits = (globalThis.directHits ?? 0) + 1',
      silent: true,
      options: { balanced: false, targets: [engine.id] },
    });
    const frames = insider.frames(count);
    await peer.send(frames);
    assert.equal(insider.receive(await peer.receive()).msg.header.msg_type, 'execute_reply');
    for (let i = 0; i < 2; i++) await peer.send(frames); // captured and sent again
    const forger = new Session('a wrong key');
    await peer.send(forger.frames(forger.msg('execute_request', count.content)));
    figures.faultsInjected += 3;
    await until(
      () =>
        replays() === replaysBefore + 2 &&
        /direct socket: message signature is missing or wrong/.test(engineLogs(t.cluster)),
      'the engine to log two replays and a bad signature',
    );
    // A task twice in one batch, which no signature tells apart (a cut send made again), runs once.
    const twice = insider.draft(insider.msg('execute_request', count.content));
    await peer.send(insider.batch([], [twice, twice]));
    assert.equal(insider.receive(await peer.receive()).msg.header.msg_type, 'execute_reply');
    await until(() => /sent twice by its client/.test(engineLogs(t.cluster)), 'the copy dropped');
    peer.close();
    const [hits] = await t.rc.directView(engine.id).execute('directHits');
    assert.equal(hits.result, '2');
  });

  it('fails direct tasks with EngineError when their engine is killed (kill -9), none hanging', async () => {
    await t.cluster.addEngines(1);
    await t.rc.waitForEngines(3);
    const victim = t.rc.engineInfo[2];
    const dv = t.rc.directView(victim.id);
    const running = dv.apply(printThenSleep, 60_000);
    const queued = [1, 2, 3].map((x) => dv.apply((y: number) => y, x));
    figures.tasksSubmitted += 4;
    await started(running);
    process.kill(victim.pid, 'SIGKILL');
    figures.faultsInjected++;
    for (const ar of [running, ...queued]) {
      await assert.rejects(ar.get(), (e: unknown) => {
        assert.ok(e instanceof EngineError, String(e));
        assert.match(e.message, new RegExp(`engine ${victim.id} died`));
        return true;
      });
    }
    await until(() => !t.rc.ids.includes(victim.id), 'the dead engine to leave rc.ids');
    assert.deepEqual(await t.rc.directView().apply(() => 'alive'), ['alive', 'alive']);
  });
});

/** The controller's `quickDepth` where a test counts slots: what a lease lends on an engine. */
const QUICK_DEPTH = 4;

describe('leases: load-balanced tasks straight to engines, in slots the hub lends', () => {
  const t = useCluster(2, { leaseTerm: 10_000, quickDepth: QUICK_DEPTH });

  it('runs them while the controller is stopped, as long as the client holds a lease', async () => {
    const lv = t.rc.loadBalancedView().withOptions({ lease: true });
    // Under way, these hold the lease (an idle one is given back), for the next ones too.
    const first = lv.map(nap, Array<number>(20).fill(100));
    await until(() => first.progress >= 1, 'the first tasks to run in leased slots');
    const ids = await withControllerStopped(t.cluster, async () => {
      const map = lv.map((x: number) => x + 1, [1, 2, 3, 4, 5, 6]);
      assert.deepEqual(await map, [2, 3, 4, 5, 6, 7]);
      assert.equal((await first).length, 20);
      return [...first.msgIds, ...map.msgIds];
    });
    figures.tasksSubmitted += 26;
    for (const id of ids) assert.equal((await finalRecord(t.rc, id)).state, 'completed');
  });

  it('aborts tasks running and queued in leased slots and one waiting in the client', async () => {
    const lv = t.rc.loadBalancedView().withOptions({ lease: true });
    /** Quick when told to sleep 0 ms: then known quick, its next tasks queue beyond the mark. */
    const sleepy = async (ms: number): Promise<number> => {
      if (ms === 0) return 0;
      console.log(process.pid);
      return new Promise((r) => setTimeout(() => r(ms), ms));
    };
    assert.equal(await lv.apply(sleepy, 0), 0);
    // Each engine runs one and holds the rest of its slots queued.
    const inSlots = Array.from({ length: 2 * QUICK_DEPTH }, () => lv.apply(sleepy, 60_000));
    let running = 0;
    for (const ar of inSlots) void started(ar).then(() => running++);
    await until(() => running === 2, 'one to run on each engine');
    const waiting = lv.apply(() => 'never');
    assert.equal((await t.rc.queueStatus()).unassigned, 1, 'it waits for a slot');
    const all = [...inSlots, waiting];
    const aborted = await t.rc.abort(all.flatMap((ar) => ar.msgIds));
    assert.equal(aborted.length, all.length);
    for (const ar of all) await assert.rejects(ar.get(), TaskAbortedError);
    assert.equal(await lv.apply(() => 'after'), 'after');
  });
});

describe('leases with a term longer than any test', () => {
  const t = useCluster(2, { leaseTerm: 3_600_000 });

  it('gives an idle lease back: plain tasks of its client and of another go at once', async () => {
    const lv = t.rc.loadBalancedView().withOptions({ lease: true });
    await Promise.all(Array.from({ length: 40 }, () => lv.apply(nap, 1)));
    const other = await t.cluster.connect();
    try {
      // Not known to run under a millisecond: nothing queues beyond the high-water mark for it.
      const plain = [t.rc, other].map((c) => c.loadBalancedView().map(nap, [2, 2, 2, 2, 2, 2]));
      for (const map of plain) assert.deepEqual(await map, [2, 2, 2, 2, 2, 2]);
      // A leased burst after the plain tasks takes a lease again and gives it back.
      await Promise.all(Array.from({ length: 40 }, () => lv.apply(nap, 1)));
      assert.deepEqual(await other.loadBalancedView().apply(nap, 2), 2);
    } finally {
      other.close();
    }
  });
});

describe('leases with a short term', () => {
  const t = useCluster(3, { leaseTerm: 200 });

  it('runs a second client’s tasks while the first still has hundreds queued', async () => {
    const first = t.rc
      .loadBalancedView()
      .withOptions({ lease: true })
      .map(nap, Array(300).fill(20));
    await until(() => first.progress >= 10, 'the first client to be under way');
    const other = await t.cluster.connect();
    try {
      const second = await Promise.all(
        [1, 2, 3, 4].map(() => other.loadBalancedView().withOptions({ lease: true }).apply(nap, 1)),
      );
      assert.deepEqual(second, [1, 1, 1, 1]);
      assert.ok(first.progress < 300, `the first client had ${first.progress} of 300 done`);
    } finally {
      other.close();
    }
    assert.equal((await first).length, 300);
    figures.tasksSubmitted += 304;
  });

  it('reruns a leased task through the hub when its engine is killed (kill -9), with retries', async () => {
    const lv = t.rc.loadBalancedView().withOptions({ retries: 1, lease: true });
    const ar = lv.apply(printThenSleep, 1500);
    figures.tasksSubmitted++;
    const pid = await started(ar);
    process.kill(pid, 'SIGKILL');
    figures.faultsInjected++;
    assert.notEqual(await ar, pid, 'rerun on another engine');
  });
});

describe('direct paths on a CURVE cluster', () => {
  let cluster: Cluster;
  let rc: Client;

  before(async function () {
    this.timeout(30_000);
    cluster = await Cluster.start({ engines: 1, controller: { ...FAST_HEARTBEAT, curve: true } });
    rc = await cluster.connect();
  });

  after(async function () {
    this.timeout(30_000);
    rc?.close();
    await cluster?.stop();
  });

  it('encrypts with a key of the engine’s own, told by the hub, and runs without the hub', async () => {
    const [engine] = rc.engineInfo;
    assert.match(engine.direct?.curve_serverkey ?? '', /^.{40}$/);
    const info = JSON.parse(readFileSync(cluster.clientFile, 'utf8')) as {
      curve_serverkey: string;
    };
    assert.notEqual(engine.direct?.curve_serverkey, info.curve_serverkey);
    const got = await withControllerStopped(cluster, () => rc.directView().apply(() => 'sealed'));
    assert.deepEqual(got, ['sealed']);
  });
});

/** The engine's id, a global in every engine's namespace. */
declare const engineId: number;

/**
 * Actors on a real cluster: an instance built on one engine, its calls run there in call order
 * with the state the calls before left, through throws, async methods, release, resources and
 * the death of its engine (kill -9), with and without restarts.
 */
import assert from 'node:assert/strict';
import type { Actor } from '../../client/actor';
import { resultAwaited, type AsyncResult } from '../../client/async-result';
import { taskSubmitted, type Client } from '../../client/client';
import { Cluster } from '../../cluster/cluster';
import { parseKernelMessage } from '../../kernel-ext/comm-messages';
import { PanelModel } from '../../kernel-ext/panel';
import {
  ActorReleasedError,
  DependencyError,
  EngineError,
  RemoteError,
  ResourceError,
  TaskAbortedError,
} from '../../protocol/errors';
import { countingReceived, FAST_HEARTBEAT } from './fixture';

// Travels as source: it may use only its own members and the engine's globals.
class Counter {
  n: number;
  log: number[] = [];
  constructor(start: number) {
    this.n = start;
  }
  add(k: number): number {
    return (this.n += k);
  }
  push(i: number): number {
    return this.log.push(i);
  }
  async pushLater(i: number, ms: number): Promise<number> {
    await new Promise((r) => setTimeout(r, ms));
    return this.log.push(i);
  }
  async slowAdd(k: number, ms: number): Promise<number> {
    await new Promise((r) => setTimeout(r, ms));
    return this.add(k);
  }
  fail(why: string): never {
    throw new Error(why);
  }
  series(n: number): Float64Array {
    return Float64Array.from({ length: n }, (_, i) => this.n + i);
  }
  items(): number[] {
    return this.log;
  }
  sum(xs: Float64Array): number {
    return xs.reduce((a, b) => a + b, 0);
  }
  where(): [number, number] {
    return [engineId, process.pid];
  }
}

class Refuses {
  constructor() {
    throw new RangeError('no instance today');
  }
}

/** How many actors the engine's process holds (engine/actors.ts). */
function actorsHeld(): number {
  return (globalThis as unknown as Record<symbol, { size: number }>)[
    Symbol.for('tsparallel.actors')
  ].size;
}

describe('actors', () => {
  let cluster: Cluster;
  let rc: Client;
  let gpu: number;

  before(async function () {
    this.timeout(60_000);
    cluster = await Cluster.start({ engines: 2, controller: FAST_HEARTBEAT });
    [gpu] = await cluster.addEngines(1, { resources: { gpu: 1 } });
    rc = await cluster.connect();
    await rc.waitForEngines(3);
  });
  after(async function () {
    this.timeout(30_000);
    rc?.close();
    await cluster?.stop();
  });

  it('builds the instance once on one engine; each call sees the state the calls before left', async () => {
    const counter = await rc.loadBalancedView().actor(Counter, 10);
    assert.ok(rc.ids.includes(counter.engineId));
    assert.equal(counter.className, 'Counter');
    assert.equal(await counter.add(5), 15);
    assert.equal(await counter.add(-3), 12);
    const [engine] = await counter.where();
    assert.equal(engine, counter.engineId);
    await counter.release();
  });

  it('runs 200 calls fired without awaiting in call order, async ones awaited before the next', async function () {
    this.timeout(60_000);
    const counter = await rc.loadBalancedView().actor(Counter, 0);
    const lengths = Array.from({ length: 200 }, (_, i) =>
      i % 3 === 0 ? counter.pushLater(i, (i * 7) % 5) : counter.push(i),
    );
    assert.deepEqual(
      await Promise.all(lengths),
      Array.from({ length: 200 }, (_, i) => i + 1),
    );
    assert.equal(await counter.slowAdd(2, 20), 2);
    assert.equal(await counter.add(1), 3);
    await counter.release();
  });

  it('gives large values back as any task does', async () => {
    const counter = await rc.loadBalancedView().actor(Counter, 1);
    const big = await counter.series(1 << 19);
    assert.ok(big instanceof Float64Array);
    assert.equal(big.length, 1 << 19);
    assert.deepEqual([big[0], big[big.length - 1]], [1, 1 << 19]);
    await counter.release();
  });

  it('takes results as arguments; a call waiting for one holds the calls after it', async () => {
    const lv = rc.loadBalancedView();
    const counter = await lv.actor(Counter, 0);
    const slow = lv.apply(async (v: number) => {
      await new Promise((r) => setTimeout(r, 300));
      return v;
    }, 40);
    const lengths = [counter.push(1), counter.push(slow), counter.push(3)];
    assert.deepEqual(await Promise.all(lengths), [1, 2, 3]);
    assert.deepEqual(await counter.items(), [1, 40, 3]);
    // 2 MB: it stays on the engine that made it and goes from there to the actor's.
    const big = lv.apply((n: number) => new Float64Array(n).fill(2), 1 << 18);
    assert.equal(await counter.sum(big), 1 << 19);
    const failing = lv.apply((): number => {
      throw new RangeError('no value');
    });
    await assert.rejects(counter.push(failing), (e: unknown) => {
      assert.ok(e instanceof DependencyError);
      assert.ok(e.cause instanceof RemoteError && e.cause.ename === 'RangeError');
      return true;
    });
    assert.equal(await counter.push(4), 4, 'the actor lives on');
    await counter.release();
  });

  it("gives its calls' results as arguments to apply, map, dv.apply and other actors' calls", async () => {
    const lv = rc.loadBalancedView();
    const [counter, other] = await Promise.all([lv.actor(Counter, 10), lv.actor(Counter, 100)]);
    const eleven = counter.add(1);
    assert.equal(await lv.apply((v: number) => v * 2, eleven), 22);
    assert.deepEqual(await lv.map((v: number) => v + 1, [eleven, counter.add(1), 5]), [12, 13, 6]);
    assert.deepEqual(await rc.directView([other.engineId]).apply((v: number) => -v, eleven), [-11]);
    assert.equal(await other.add(counter.add(1)), 113);
    // Held behind a call waiting for a result, a call is sent later: so are the tasks taking
    // its result, and the tasks taking theirs.
    const slow = lv.apply(async () => {
      await new Promise((r) => setTimeout(r, 300));
      return 1;
    });
    const waiting = counter.add(slow);
    const held = counter.add(1);
    const twice = lv.apply((v: number) => v * 2, held);
    const plusOne = lv.apply((v: number) => v + 1, twice);
    assert.equal(await other.add(plusOne), 113 + 31);
    assert.deepEqual(await Promise.all([waiting, held, twice]), [14, 15, 30]);
    // 2 MB: it stays on the actor's engine and goes from there to the task's.
    const series = counter.series(1 << 18);
    assert.equal(await lv.apply((xs: Float64Array) => xs.length, series), 1 << 18);
    assert.equal(await other.sum(series), (1 << 18) * 15 + ((1 << 18) * ((1 << 18) - 1)) / 2);
    await Promise.all([counter.release(), other.release()]);
  });

  it("never brings a call's result that only other tasks take to the client, until awaited", async () => {
    const lv = rc.loadBalancedView();
    const counter = await lv.actor(Counter, 0);
    await countingReceived(async (received) => {
      // 160 KB: under the size that comes through shared memory, so every byte is on a socket.
      const series = counter.series(20_000);
      assert.equal(await lv.apply((xs: Float64Array) => xs.length, series), 20_000);
      assert.ok(received() < 50_000, `the client received ${received()} bytes`);
      assert.equal((await series).length, 20_000);
      assert.ok(received() > 160_000, `awaited, the value came: ${received()} bytes`);
    });
    await counter.release();
  });

  it('fails the tasks taking the result of a call that failed with DependencyError', async () => {
    const lv = rc.loadBalancedView();
    const [counter, other] = await Promise.all([lv.actor(Counter, 0), lv.actor(Counter, 0)]);
    const failed = counter.fail('no value');
    const failedItself = assert.rejects(failed, RemoteError);
    const dependants = [lv.apply((v: number) => v, failed).get(), other.add(failed)];
    await Promise.all(
      dependants.map((dependant) =>
        assert.rejects(dependant, (e: unknown) => {
          assert.ok(e instanceof DependencyError, String(e));
          assert.ok(e.cause instanceof RemoteError, String(e.cause));
          assert.equal(e.cause.evalue, 'no value');
          return true;
        }),
      ),
    );
    await failedItself;
    assert.equal(await other.add(1), 1, 'the actor lives on');
    // A task waiting here for a held call's task, aborted, is never sent; those taking its
    // result fail.
    const slow = lv.apply(async () => {
      await new Promise((r) => setTimeout(r, 300));
      return 1;
    });
    const calls = [other.add(slow), other.add(1)];
    const told: string[] = [];
    const stopTelling = taskSubmitted.listen(({ task }) => told.push(task.metadata.msgId));
    const dropped = lv.apply((v: number) => v, calls[1]);
    stopTelling();
    // Told of at once, as a task sent at once is: a notebook cell interrupted now aborts it.
    assert.deepEqual(told, dropped.msgIds);
    const next = lv.apply((v: number) => v, dropped);
    await dropped.abort();
    await assert.rejects(dropped.get(), TaskAbortedError);
    await assert.rejects(next.get(), (e: unknown) => {
      assert.ok(e instanceof DependencyError, String(e));
      assert.ok(e.cause instanceof TaskAbortedError, e.message);
      return true;
    });
    assert.deepEqual(await Promise.all(calls), [2, 3]);
    // A call that had no task (its actor was released) fails them here.
    await counter.release();
    const refused = counter.add(1);
    const refusedItself = assert.rejects(refused, ActorReleasedError);
    await assert.rejects(lv.apply((v: number) => v, refused).get(), (e: unknown) => {
      assert.ok(e instanceof DependencyError, String(e));
      assert.match(e.message, /Counter\.add \(an actor call\) did not succeed/);
      assert.ok(e.cause instanceof ActorReleasedError);
      return true;
    });
    await refusedItself;
    await other.release();
  });

  it('records its calls with the hub as direct tasks of its engine', async () => {
    const counter = await rc.loadBalancedView().actor(Counter, 1);
    const events = rc.events({ tasks: true })[Symbol.asyncIterator]();
    const call = counter.add(1);
    const { value } = await events.next();
    await events.return?.();
    assert.equal(await call, 2);
    assert.ok(value.type === 'task:submit' && value.view.actorInfo?.className === 'Counter');
    assert.equal(value.balanced, false);
    // The engine tells the hub of replies its clients got straight at the end of its turn.
    let record = await rc.result(value.task.msgId);
    while (record.state !== 'completed') record = await rc.result(value.task.msgId);
    assert.equal(record.engineId, counter.engineId);
    assert.equal(record.value, 2);
    assert.equal(value.view.actorInfo?.callsDone, 1);
    await counter.release();
  });

  it('gives RemoteError for a method that throws, and the actor lives on', async () => {
    const counter = await rc.loadBalancedView().actor(Counter, 7);
    await assert.rejects(
      counter.fail('bad input'),
      (e: unknown) =>
        e instanceof RemoteError &&
        e.ename === 'Error' &&
        e.evalue === 'bad input' &&
        e.engineId === counter.engineId,
    );
    assert.equal(await counter.add(1), 8);
    await counter.release();
  });

  it('says what is wrong with a wrong method name, a non-class and a constructor that throws', async () => {
    const lv = rc.loadBalancedView();
    const counter = await lv.actor(Counter, 0);
    const wrong = counter as unknown as { nope(): Promise<void>; n(): Promise<number> };
    await assert.rejects(wrong.nope(), (e: unknown) => {
      assert.ok(e instanceof RemoteError && e.ename === 'TypeError');
      assert.match(e.evalue, /^Counter has no method nope; its methods: add, push, pushLater/);
      return true;
    });
    await assert.rejects(wrong.n(), /Counter\.n is number, not a method/);
    assert.equal(await counter.add(1), 1);
    await counter.release();
    const notClass = (() => 1) as unknown as new () => object;
    await assert.rejects(
      lv.actor(notClass),
      /actor needs a class, e\.g\. .* got function notClass/,
    );
    await assert.rejects(lv.actor(42 as unknown as new () => object), /got number/);
    await assert.rejects(
      lv.actor(Refuses),
      (e: unknown) => e instanceof RemoteError && e.ename === 'RangeError',
    );
  });

  it('tells resultAwaited of an awaited call, as a notebook aborts it; the actor lives on', async () => {
    const counter = await rc.loadBalancedView().actor(Counter, 0);
    const announced: AsyncResult<unknown>[] = [];
    const stop = resultAwaited.listen(({ result }) => announced.push(result));
    try {
      const sleeping = counter.slowAdd(1, 60_000);
      assert.equal(announced.length, 0, 'a call nobody awaits is not announced');
      const outcome = sleeping.then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.equal(announced.length, 1);
      await announced[0].abort();
      assert.ok((await outcome) instanceof TaskAbortedError);
    } finally {
      stop();
    }
    assert.equal(await counter.add(2), 2, 'the aborted call changed nothing; the actor lives on');
    await counter.release();
  });

  it('release drops the instance on its engine; a later call fails with ActorReleasedError', async () => {
    const counter = await rc.loadBalancedView().actor(Counter, 0);
    const dv = rc.directView(counter.engineId);
    const [before] = await dv.apply(actorsHeld);
    const last = counter.add(1);
    await counter.release();
    assert.equal(await last, 1, 'a call made before the release still runs');
    assert.deepEqual(await dv.apply(actorsHeld), [before - 1]);
    await assert.rejects(counter.add(1), (e: unknown) => {
      assert.ok(e instanceof ActorReleasedError);
      assert.match(e.message, /Counter\.add: the actor was released/);
      return true;
    });
    await counter.release();
  });

  it('dv.actor builds one actor per target, in target order, each with its own state', async () => {
    const targets = rc.ids.slice(0, 2).reverse();
    const counters = await rc.directView(targets).actor(Counter, 100);
    assert.deepEqual(
      counters.map((c) => c.engineId),
      targets,
    );
    assert.equal(await counters[0].add(1), 101);
    assert.equal(await counters[0].add(1), 102);
    assert.equal(await counters[1].add(5), 105);
    const where = await Promise.all(counters.map((c) => c.where()));
    assert.deepEqual(
      where.map(([id]) => id),
      targets,
    );
    await Promise.all(counters.map((c) => c.release()));
  });

  it('places actors only on engines holding the resources asked; an impossible ask fails at once', async () => {
    const gv = rc.loadBalancedView().withOptions({ resources: { gpu: 1 } });
    const actors = await Promise.all([gv.actor(Counter, 0), gv.actor(Counter, 0)]);
    assert.deepEqual(
      actors.map((a) => a.engineId),
      [gpu, gpu],
    );
    assert.equal(await actors[1].add(3), 3);
    await Promise.all(actors.map((a) => a.release()));
    await assert.rejects(
      rc
        .loadBalancedView()
        .withOptions({ resources: { tpu: 1 } })
        .actor(Counter, 0),
      (e: unknown) => e instanceof ResourceError && /tpu/.test(e.message),
    );
    assert.throws(
      () => rc.directView().withOptions({ restarts: 1 }),
      /restarts applies to load-balanced views only/,
    );
  });

  it("shows in the panel's views list with its class, engine and calls done", async () => {
    let changes = 0;
    const panel = new PanelModel(
      () => 'all',
      () => changes++,
    );
    panel.follow(rc, cluster);
    const counter = await rc.loadBalancedView().actor(Counter, 0);
    await Promise.all([counter.add(1), counter.add(2), counter.fail('no').catch(() => 0)]);
    const before = changes;
    await counter.add(3);
    assert.ok(changes > before, 'a finished call changes the state');
    const message = parseKernelMessage({ type: 'state', state: panel.state() });
    assert.ok(message.type === 'state');
    const views = message.state.views;
    assert.deepEqual(
      views.map((v) => [v.kind, v.tasks, v.actor]),
      [
        ['balanced', 1, null],
        ['direct', 4, { className: 'Counter', engine: counter.engineId, calls: 4 }],
      ],
    );
    panel.close();
    await counter.release();
  });

  /** An actor on a fresh engine of its own, so that killing it leaves the others. */
  async function onSpareEngine(
    restarts: number,
  ): Promise<{ actor: Actor<Counter>; pid: number; engine: number }> {
    const [engine] = await cluster.addEngines(1, { resources: { spare: 1 } });
    const lv = rc.loadBalancedView().withOptions({ resources: { spare: 1 }, restarts });
    const actor = await lv.actor(Counter, 10);
    assert.equal(actor.engineId, engine);
    const [, pid] = await actor.where();
    return { actor, pid, engine };
  }

  it('fails pending and later calls with EngineError when its engine is killed', async function () {
    this.timeout(30_000);
    const { actor, pid, engine } = await onSpareEngine(0);
    const pending = [actor.slowAdd(1, 60_000), actor.add(1)];
    process.kill(pid, 'SIGKILL');
    for (const call of pending) {
      await assert.rejects(call, (e: unknown) => e instanceof EngineError && e.engineId === engine);
    }
    await assert.rejects(actor.add(1), (e: unknown) => {
      assert.ok(e instanceof EngineError);
      assert.match(e.message, new RegExp(`actor Counter is lost with engine ${engine}`));
      assert.match(e.message, /restarts: n/);
      return true;
    });
    await actor.release();
  });

  it('with restarts, builds a fresh instance elsewhere and runs the pending calls on it in order', async function () {
    this.timeout(30_000);
    const { actor, pid, engine } = await onSpareEngine(1);
    assert.equal(await actor.add(5), 15);
    // Another engine holding `spare` for the rebuilt instance.
    const [second] = await cluster.addEngines(1, { resources: { spare: 1 } });
    const pending = [actor.slowAdd(1, 500), actor.add(1)];
    // It takes the value of the call that runs on the rebuilt instance, not of the one killed.
    const dependant = rc.loadBalancedView().apply((v: number) => v * 10, pending[1]);
    process.kill(pid, 'SIGKILL');
    // Built again from the constructor's arguments: the 15 is lost, as in Ray.
    assert.deepEqual(await Promise.all(pending), [11, 12]);
    assert.equal(await dependant, 120);
    assert.equal(actor.engineId, second);
    assert.notEqual(actor.engineId, engine);
    assert.equal(await actor.add(1), 13);
    const [, newPid] = await actor.where();
    process.kill(newPid, 'SIGKILL');
    // No restart is left.
    await assert.rejects(actor.add(1), EngineError);
    await assert.rejects(actor.add(1), /actor Counter is lost/);
  });
});

/** The engine's id, a global on every engine. */
declare const engineId: number;

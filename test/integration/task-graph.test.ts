import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromArrays, type Table } from 'apache-arrow';
import type { AsyncResult, ExecuteReply } from '../../client/async-result';
import type { LoadBalancedView } from '../../client/views';
import {
  DependencyError,
  EngineError,
  ReleasedError,
  RemoteError,
  TaskAbortedError,
} from '../../protocol/errors';
import { Session } from '../../protocol/session';
import { countingReceived, gc, until, useCluster } from './fixture';

/** A value large enough to stay on the engine that made it (1.6 MB). */
function ones(): Float64Array {
  return new Float64Array(200_000).fill(1);
}

function sum(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return s;
}

describe('task graphs: results as arguments', () => {
  const t = useCluster(3);

  /** Blocks engine `id` for good, so that it answers no fetch before it is killed. */
  async function blockEngine(id: number): Promise<void> {
    const marker = join(tmpdir(), `tsp-blocked-${process.pid}`);
    void t.rc.directView(id).apply((file: string) => {
      process.getBuiltinModule('node:fs').writeFileSync(file, '');
      for (;;);
    }, marker);
    await until(() => existsSync(marker), 'the engine to be blocked');
    rmSync(marker);
  }

  it('runs a diamond on its values, small and kept on engines', async () => {
    const lv = t.rc.loadBalancedView();
    const a = lv.apply(() => 2);
    const b = lv.apply((x: number) => x * 3, a);
    const c = lv.apply((x: number) => x + 1, a);
    assert.equal(await lv.apply((x: number, y: number) => x * y, b, c), 18);

    const big = lv.apply(ones);
    const twice = lv.apply((x: Float64Array) => x.map((v) => v * 2), big);
    const plus = lv.apply((x: Float64Array) => x.map((v) => v + 1), big);
    const total = lv.apply(
      (x: Float64Array, y: Float64Array) => {
        let s = 0;
        for (let i = 0; i < x.length; i++) s += x[i] + y[i];
        return s;
      },
      twice,
      plus,
    );
    assert.equal(await total, 800_000);
    // Awaiting a value kept on its engine fetches it.
    assert.equal(sum(await big), 200_000);
    assert.equal(sum(await twice), 400_000);
  });

  it('runs a chain of 1,000 tasks, each on the value of the one before', async function () {
    this.timeout(120_000);
    const lv = t.rc.loadBalancedView();
    let ar: AsyncResult<number> = lv.apply(() => 0);
    for (let i = 0; i < 1000; i++) ar = lv.apply((x: number) => x + 1, ar);
    assert.equal(await ar, 1000);
  });

  it("fans in over a map: the map's result as one argument, results as a map's elements", async () => {
    const lv = t.rc.loadBalancedView();
    const squares = lv.map((x: number) => x * x, [1, 2, 3, 4]);
    assert.equal(await lv.apply((xs: number[]) => xs.reduce((a, b) => a + b, 0), squares), 30);
    const parts = [1, 2, 3].map((i) => lv.apply((x: number) => x * 10, i));
    assert.deepEqual(
      await lv.map((x: number) => x + 1, [parts[0], 5, parts[1], parts[2]]),
      [11, 6, 21, 31],
    );
    const chunked = lv.withOptions({ chunkSize: 2 });
    assert.deepEqual(
      await chunked.map((x: number, y: number) => x + y, parts, [1, 2, 3]),
      [11, 22, 33],
    );
    // Kept values as elements too.
    const bigs = [lv.apply(ones), lv.apply(ones)];
    assert.deepEqual(await lv.map(sum, bigs), [200_000, 200_000]);
  });

  it('takes results on direct views, and gives a direct result as an array', async () => {
    const lv = t.rc.loadBalancedView();
    const dv = t.rc.directView([0, 1]);
    const a = lv.apply(() => 7);
    assert.deepEqual(await dv.apply((x: number) => x + 1, a), [8, 8]);
    const each = dv.apply(() => engineId);
    assert.deepEqual(await lv.apply((ids: number[]) => ids, each), [0, 1]);
    const big = lv.apply(ones);
    assert.deepEqual(await dv.apply(sum, big), [200_000, 200_000]);
    assert.deepEqual(await dv.map((x: number) => x * 2, [a, 1, a, 2]), [14, 2, 14, 4]);
  });

  it('fails a dependant of a failed task with DependencyError, the original error its cause', async () => {
    const lv = t.rc.loadBalancedView();
    const bad = lv.apply(function badInput(): number {
      throw new TypeError('bad input');
    });
    const next = lv.apply((x: number) => x + 1, bad);
    const last = lv.apply((x: number) => x + 1, next);
    await assert.rejects(next.get(), (e: unknown) => {
      assert.ok(e instanceof DependencyError, String(e));
      assert.match(e.message, new RegExp(bad.msgIds[0]));
      assert.ok(e.cause instanceof RemoteError);
      assert.equal(e.cause.ename, 'TypeError');
      assert.equal(e.cause.evalue, 'bad input');
      assert.ok(
        e.cause.traceback.some((line) => line.includes('badInput')),
        'engine traceback',
      );
      return true;
    });
    await assert.rejects(last.get(), (e: unknown) => {
      assert.ok(e instanceof DependencyError);
      assert.ok(e.cause instanceof DependencyError);
      assert.ok(e.cause.cause instanceof RemoteError);
      return true;
    });
  });

  it('aborting a task aborts what waits on it', async () => {
    const lv = t.rc.loadBalancedView();
    const slow = lv.apply(() => new Promise<number>((r) => setTimeout(() => r(1), 60_000)));
    const next = lv.apply((x: number) => x + 1, slow);
    const last = t.rc.directView(0).apply((x: number) => x + 1, next);
    await slow.abort();
    await assert.rejects(slow.get(), TaskAbortedError);
    await assert.rejects(next.get(), (e: unknown) => {
      assert.ok(e instanceof DependencyError);
      assert.ok(e.cause instanceof TaskAbortedError);
      return true;
    });
    await assert.rejects(last.get(), DependencyError);
  });

  it('moves a 200 MB intermediate engine to engine without it entering the client', async function () {
    this.timeout(120_000);
    const lv = t.rc.loadBalancedView();
    const before = process.memoryUsage().rss;
    const made = lv.withOptions({ targets: [0] }).apply(() => new Uint8Array(200_000_000).fill(7));
    const used = lv
      .withOptions({ targets: [1] })
      .apply((x: Uint8Array) => [x.length, x[123_456], engineId], made);
    assert.deepEqual(await used, [200_000_000, 7, 1]);
    const grown = process.memoryUsage().rss - before;
    assert.ok(grown < 50e6, `the client grew by ${(grown / 1e6).toFixed(1)} MB`);
    const bytes = await made;
    assert.equal(bytes.length, 200_000_000);
    assert.equal(bytes[199_999_999], 7);
    made.release();
  });

  it('never brings an intermediate it does not await to the client, until it is awaited', async () => {
    await countingReceived(async (received) => {
      // Under the size that comes through shared memory, so that every byte comes on a socket.
      const text = (): string => 'x'.repeat(200_000);
      const lv = t.rc.loadBalancedView();
      const leasing = lv.withOptions({ lease: true });
      // Held while tasks run in it: the leased task below goes straight to its engine.
      await leasing.apply(() => 0);
      // Through the hub, straight to an engine, and in a leased slot, each built with the task
      // that takes it.
      const balanced = lv.apply(text);
      const direct = t.rc.directView(1).apply(text);
      const leased = leasing.apply(text);
      const lengths = [
        lv.apply((s: string) => s.length, balanced),
        lv.apply((s: string[]) => s[0].length, direct),
        lv.apply((s: string) => s.length, leased),
      ];
      assert.deepEqual(await Promise.all(lengths), [200_000, 200_000, 200_000]);
      await until(() => balanced.ready() && direct.ready() && leased.ready(), 'the three ended');
      assert.ok(received() < 100_000, `the client received ${received()} bytes`);
      assert.deepEqual(await Promise.all([balanced, direct, leased]), [text(), [text()], text()]);
      assert.ok(received() > 600_000, `awaited, the values came: ${received()} bytes`);
      // A result awaited as its task leaves comes with its reply, even one another task takes.
      const awaited = lv.apply(text);
      const taker = lv.apply((s: string) => s.length, awaited);
      const before = received();
      assert.equal(await awaited, text());
      assert.equal(await taker, 200_000);
      assert.ok(received() - before > 200_000, 'the awaited value came');
    });
  });

  it('brings an intermediate awaited while its task runs with its reply, not by a second request', async () => {
    // Counts the requests for kept values this client makes.
    let fetches = 0;
    const msg = Session.prototype.msg;
    Session.prototype.msg = function (this: Session, type, ...rest) {
      if (type === 'value_request') fetches++;
      return msg.call(this, type, ...rest) as ReturnType<typeof msg>;
    } as typeof msg;
    try {
      const lv = t.rc.loadBalancedView();
      const slowText = async (): Promise<string> => {
        await new Promise((r) => setTimeout(r, 500));
        return 'x'.repeat(200_000);
      };
      const made = lv.apply(slowText);
      const taker = lv.apply((s: string) => s.length, made);
      // Both on their way, `made` as an intermediate; then code awaits it as it runs.
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(made.ready(), false);
      assert.equal(await made, 'x'.repeat(200_000));
      assert.equal(await taker, 200_000);
      assert.equal(fetches, 0, 'the value came without a request of its own');
      // Awaited once its task ended, it is fetched from its engine.
      const late = lv.apply(() => 'y'.repeat(1000));
      const lateTaker = lv.apply((s: string) => s.length, late);
      assert.equal(await lateTaker, 1000);
      await until(() => late.ready(), 'the intermediate ended');
      assert.equal(await late, 'y'.repeat(1000));
      assert.equal(fetches, 1);
    } finally {
      Session.prototype.msg = msg;
    }
  });

  it('frees a released value once the tasks waiting for it have ended', async () => {
    const lv = t.rc.loadBalancedView();
    const big = lv.apply(ones);
    const slow = lv.apply(() => new Promise<number>((r) => setTimeout(() => r(1), 1000)));
    const user = lv.apply((x: Float64Array, y: number) => x.length + y, big, slow);
    big.release();
    await big.wait();
    const record = await t.rc.result(big.msgIds[0]);
    assert.equal(record.valueDropped, false, 'kept for the task waiting for it');
    assert.equal((record.value as Float64Array).length, 200_000);
    assert.equal(await user, 200_001);
    await until(async () => (await t.rc.result(big.msgIds[0])).valueDropped, 'the value freed');
  });

  it('frees the values of results the client dropped, and of a client that closed', async () => {
    const lv = t.rc.loadBalancedView();
    const made = async (): Promise<string[]> => {
      const ars = [lv.apply(ones), lv.apply(ones), t.rc.directView([0, 1]).apply(ones)];
      await Promise.all(ars.map((ar) => ar.wait()));
      return ars.flatMap((ar) => ar.msgIds);
    };
    const dropped = await made();
    for (const id of dropped) assert.equal((await t.rc.result(id)).valueDropped, false);
    await until(async () => {
      gc();
      const records = await Promise.all(dropped.map((id) => t.rc.result(id)));
      return records.every((r) => r.valueDropped);
    }, 'the dropped results to be freed');

    const other = await t.cluster.connect();
    const ar = other.loadBalancedView().apply(ones);
    await ar.wait();
    assert.equal((await t.rc.result(ar.msgIds[0])).valueDropped, false);
    other.close();
    await until(async () => (await t.rc.result(ar.msgIds[0])).valueDropped, 'freed on close');
  });

  it('keeps engine memory bounded over a chain of 1,000 tasks each making 1 MB', async function () {
    this.timeout(180_000);
    const dv = t.rc.directView();
    const rss = async (): Promise<number> =>
      (await dv.apply(() => process.memoryUsage().rss)).reduce((a, b) => a + b, 0);
    const before = await rss();
    const lv = t.rc.loadBalancedView();
    let ar: AsyncResult<Uint8Array> = lv.apply(() => new Uint8Array(1 << 20));
    const ids = [ar.msgIds[0]];
    for (let i = 0; i < 1000; i++) {
      const next = lv.apply((x: Uint8Array) => {
        const y = new Uint8Array(x.length);
        y[0] = x[0] + 1;
        return y;
      }, ar);
      ar.release();
      ar = next;
      ids.push(...ar.msgIds);
    }
    assert.equal((await ar)[0], 1000 % 256);
    // Every value but the last is freed on its engine...
    const freed = async (): Promise<boolean> => {
      for (const id of ids.slice(0, -1)) if (!(await t.rc.result(id)).valueDropped) return false;
      return true;
    };
    await until(freed, 'the released values to be freed', 20_000, 100);
    assert.equal((await t.rc.result(ids[ids.length - 1])).valueDropped, false);
    // ...and the engines hold far less than the 1,000 MB the values would take, kept.
    const grown = (await rss()) - before;
    assert.ok(grown < 600e6, `the engines grew by ${(grown / 1e6).toFixed(0)} MB`);
  });

  it('refuses a released result as an argument, and awaiting one it had not fetched', async () => {
    const lv = t.rc.loadBalancedView();
    const big = lv.apply(ones);
    await big.wait();
    big.release();
    assert.throws(() => lv.apply(sum, big), ReleasedError);
    await assert.rejects(big.get(), ReleasedError);
  });

  it('fails dependants with DependencyError naming the value when its engine is killed', async function () {
    this.timeout(30_000);
    const lv = t.rc.loadBalancedView();
    const victim = t.rc.engineInfo[2];
    const big = lv.withOptions({ targets: [victim.id] }).apply(ones);
    await big.wait();
    const slow = lv
      .withOptions({ targets: t.rc.ids.filter((id) => id !== victim.id) })
      .apply(() => new Promise<number>((r) => setTimeout(() => r(1), 1500)));
    const waiting = lv.apply((x: Float64Array, y: number) => x.length + y, big, slow);
    process.kill(victim.pid, 'SIGKILL');
    await until(() => !t.rc.ids.includes(victim.id), 'the killed engine to leave', 10_000);
    for (const ar of [waiting, lv.apply(sum, big)]) {
      await assert.rejects(ar.get(), (e: unknown) => {
        assert.ok(e instanceof DependencyError, String(e));
        assert.match(e.message, new RegExp(`value of task ${big.msgIds[0]} is lost`));
        return true;
      });
    }
    await assert.rejects(big.get(), EngineError);
    await t.cluster.addEngines(1);
    await t.rc.waitForEngines(3);
  });

  it('reruns the task that made a value its killed engine kept, where retries allow', async function () {
    this.timeout(30_000);
    const lv = t.rc.loadBalancedView();
    const big = lv.withOptions({ retries: 1 }).apply(ones);
    await big.wait();
    const keeper = t.rc.engineInfo.find((e) => e.id === big.engineIds[0]);
    assert.ok(keeper);
    const slow = lv
      .withOptions({ targets: t.rc.ids.filter((id) => id !== keeper.id) })
      .apply(() => new Promise<number>((r) => setTimeout(() => r(1), 1500)));
    const waiting = lv.apply((x: Float64Array, y: number) => x.length + y, big, slow);
    process.kill(keeper.pid, 'SIGKILL');
    assert.equal(await waiting, 200_001);
    assert.notEqual(big.engineIds[0], keeper.id, 'remade elsewhere');
    assert.equal(sum(await big), 200_000);
    await t.cluster.addEngines(1);
    await t.rc.waitForEngines(3);
  });

  it('keeps a small value its killed engine kept: the hub’s copy serves, with no rerun', async function () {
    this.timeout(30_000);
    const lv = t.rc.loadBalancedView();
    const [first] = t.rc.ids;
    // An intermediate: it stays on engine 0, and the hub has a copy.
    const small = lv.withOptions({ retries: 1, targets: [first] }).apply(() => [1, 2, 3]);
    const slow = lv
      .withOptions({ targets: t.rc.ids.filter((id) => id !== first) })
      .apply(() => new Promise<number>((r) => setTimeout(() => r(1), 1500)));
    const waiting = lv.apply((x: number[], y: number) => x.length + y, small, slow);
    await until(() => small.ready(), 'the value made');
    const keeper = t.rc.engineInfo.find((e) => e.id === first);
    assert.ok(keeper);
    process.kill(keeper.pid, 'SIGKILL');
    assert.equal(await waiting, 4);
    assert.deepEqual(await small, [1, 2, 3]);
    assert.equal(small.engineIds[0], keeper.id, 'not run again');
    await t.cluster.addEngines(1);
    await t.rc.waitForEngines(3);
  });

  type Engine = (typeof t.rc.engineInfo)[number];
  /** A value kept on its engine (`keeper`), made with a retry, and another engine (`user`). */
  async function keptWithRetry(): Promise<{
    lv: LoadBalancedView;
    big: AsyncResult<Float64Array>;
    keeper: Engine;
    user: Engine;
  }> {
    const lv = t.rc.loadBalancedView();
    const big = lv.withOptions({ retries: 1 }).apply(ones);
    await big.wait();
    const keeper = t.rc.engineInfo.find((e) => e.id === big.engineIds[0]);
    const user = t.rc.engineInfo.find((e) => e.id !== big.engineIds[0]);
    assert.ok(keeper && user);
    return { lv, big, keeper, user };
  }

  it('reruns it too for a dependant fetching the value when its engine is killed', async function () {
    this.timeout(30_000);
    const { lv, big, keeper, user } = await keptWithRetry();
    await blockEngine(keeper.id);
    const fetching = lv.withOptions({ targets: [user.id] }).apply(sum, big);
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(!fetching.ready(), 'the dependant waits for the value');
    process.kill(keeper.pid, 'SIGKILL');
    assert.equal(await fetching, 200_000);
    assert.equal(sum(await big), 200_000);
    await t.cluster.addEngines(1);
    await t.rc.waitForEngines(3);
  });

  it('runs once a dependant that fetched its value before the engine keeping it was killed', async function () {
    this.timeout(30_000);
    const { lv, big, keeper, user } = await keptWithRetry();
    const runs = join(tmpdir(), `tsp-runs-${process.pid}`);
    const go = `${runs}.go`;
    const used = lv.withOptions({ targets: [user.id] }).apply(
      async (x: Float64Array, runs: string, go: string) => {
        const fs = process.getBuiltinModule('node:fs');
        fs.appendFileSync(runs, 'ran\n');
        while (!fs.existsSync(go)) await new Promise((r) => setTimeout(r, 10));
        let s = 0;
        for (let i = 0; i < x.length; i++) s += x[i];
        return s;
      },
      big,
      runs,
      go,
    );
    try {
      await until(() => existsSync(runs), 'the dependant to run on its value');
      process.kill(keeper.pid, 'SIGKILL');
      await until(() => !t.rc.ids.includes(keeper.id), 'the killed engine to leave', 10_000);
      writeFileSync(go, '');
      assert.equal(await used, 200_000);
      assert.equal(readFileSync(runs, 'utf8'), 'ran\n', 'the dependant ran once');
      // Remade all the same: the hub could not know the dependant had its value.
      await until(() => big.engineIds[0] !== keeper.id, 'the value to be remade');
      assert.equal(sum(await big), 200_000);
    } finally {
      rmSync(runs, { force: true });
      rmSync(go, { force: true });
    }
    await t.cluster.addEngines(1);
    await t.rc.waitForEngines(3);
  });

  it('fails a dependant fetching a value whose engine is killed meanwhile', async function () {
    this.timeout(30_000);
    const lv = t.rc.loadBalancedView();
    const [user, keeper] = t.rc.engineInfo.slice(-2);
    const big = lv.withOptions({ targets: [keeper.id] }).apply(ones);
    await big.wait();
    await blockEngine(keeper.id);
    const fetching = lv.withOptions({ targets: [user.id] }).apply(sum, big);
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(!fetching.ready(), 'the dependant waits for the value');
    process.kill(keeper.pid, 'SIGKILL');
    await assert.rejects(fetching.get(), (e: unknown) => {
      assert.ok(e instanceof DependencyError, String(e));
      assert.match(e.message, new RegExp(`value of task ${big.msgIds[0]} is lost`));
      return true;
    });
    await t.cluster.addEngines(1);
    await t.rc.waitForEngines(3);
  });
});

describe('task graphs: results assembled on the client as arguments', () => {
  const t = useCluster(2);
  const table = tableFromArrays({ x: Float64Array.from({ length: 100 }, (_, i) => i) });
  const total = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
  /** A `mapBatches` of `table` whose batches take the `batchDelay` pushed to the engines, in ms. */
  const slowBatches = (): AsyncResult<Table> =>
    t.rc.loadBalancedView().mapBatches(
      table,
      async (b: Table) => {
        await new Promise((r) => setTimeout(r, batchDelay));
        return b;
      },
      { rows: 50 },
    );

  before(async () => {
    await t.rc.directView().scatter('part', [1, 2, 3, 4]);
  });

  it('takes a gather, at the top level and as a map element, on both views', async () => {
    const lv = t.rc.loadBalancedView();
    const dv = t.rc.directView();
    assert.equal(await lv.apply(total, dv.gather<number[]>('part')), 10);
    assert.deepEqual(await dv.apply(total, dv.gather<number[]>('part')), [10, 10]);
    assert.deepEqual(await lv.map(total, [dv.gather<number[]>('part'), [5]]), [10, 5]);
    assert.deepEqual(await dv.map(total, [[5], dv.gather<number[]>('part')]), [5, 10]);
    // A task waiting here to be sent is an argument as any other.
    const waiting = lv.apply(total, dv.gather<number[]>('part'));
    assert.equal(await lv.apply((x: number) => x + 1, waiting), 11);
  });

  it('takes the table of mapBatches once its batches are done, the caller never blocked', async () => {
    const lv = t.rc.loadBalancedView();
    await t.rc.directView().push({ batchDelay: 500 });
    const batches = slowBatches();
    const seen = lv.apply((tab: Table) => [tab.numRows, tab.getChild('x')!.get(99)], batches);
    assert.ok(!batches.ready() && !seen.ready(), 'apply returned while the input runs');
    assert.deepEqual(await seen, [100, 99]);
  });

  it('takes a map partly served from the cache, as one argument and as map elements', async () => {
    const cv = t.rc
      .loadBalancedView()
      .withOptions({ cache: mkdtempSync(join(process.env.TSPARALLEL_DIR!, 'cache-')) });
    const lv = t.rc.loadBalancedView();
    await cv.map((x: number) => x * 10, [1, 2]);
    const partly = cv.map((x: number) => x * 10, [1, 2, 3]);
    assert.ok(!partly.cached && partly.metadata.some((m) => m.cached), 'partly cached');
    assert.deepEqual(await lv.apply((xs: number[]) => xs, partly), [10, 20, 30]);
    assert.deepEqual(await lv.map(total, [partly, [1], partly]), [60, 1, 60]);
    assert.deepEqual(await t.rc.directView().map(total, [partly, [2]]), [60, 2]);
  });

  it("takes an execute's replies, as await gives them", async () => {
    const ran = t.rc.directView().execute('6 * 7');
    const seen = await t.rc
      .loadBalancedView()
      .apply((replies: ExecuteReply[]) => replies.map((r) => [r.engineId, r.result]), ran);
    assert.deepEqual(
      seen,
      t.rc.ids.map((id) => [id, '42']),
    );
  });

  it("takes a gather as an actor's method argument", async () => {
    const acc = await t.rc.loadBalancedView().actor(
      class Sum {
        n = 0;
        add(xs: number[]): number {
          return (this.n += xs.reduce((a, b) => a + b, 0));
        }
      },
    );
    assert.equal(await acc.add(t.rc.directView().gather<number[]>('part')), 10);
    assert.equal(await acc.add([5]), 15);
    await acc.release();
  });

  it('sends the other arguments as they were at the call', async () => {
    const scale = { by: 2 };
    const scaled = t.rc
      .loadBalancedView()
      .apply(
        (xs: number[], s: { by: number }) => xs.map((x) => x * s.by),
        t.rc.directView().gather<number[]>('part'),
        scale,
      );
    scale.by = 3;
    assert.deepEqual(await scaled, [2, 4, 6, 8]);
  });

  it('fails the dependant of a failed input with DependencyError, the error its cause', async () => {
    const lv = t.rc.loadBalancedView();
    const missing = t.rc.directView().gather<number[]>('nowhere');
    const next = lv.apply(total, missing);
    const last = lv.apply((x: number) => x + 1, next);
    const isMissing = (e: unknown): boolean => {
      assert.ok(e instanceof DependencyError, String(e));
      assert.match(e.message, new RegExp(missing.msgIds[0]));
      assert.ok(e.cause instanceof RemoteError, String(e.cause));
      assert.equal(e.cause.ename, 'ReferenceError');
      return true;
    };
    await assert.rejects(next.get(), isMissing);
    await assert.rejects(lv.map(total, [missing]).get(), isMissing);
    await assert.rejects(last.get(), (e: unknown) => {
      assert.ok(e instanceof DependencyError, String(e));
      return isMissing(e.cause);
    });
    // No task failed: joining the batches did, and its error is the cause.
    const notTables = lv.mapBatches(table, (b: Table) => b.numRows as unknown as Table);
    await assert.rejects(lv.apply((tab: Table) => tab.numRows, notTables).get(), (e: unknown) => {
      assert.ok(e instanceof DependencyError, String(e));
      assert.ok(e.cause instanceof TypeError, String(e.cause));
      assert.match(e.cause.message, /must return an Arrow Table/);
      return true;
    });
  });

  it('aborts a dependant while it waits here for its input, which runs on', async () => {
    const dv = t.rc.directView();
    await dv.push({ batchDelay: 1000, dependantRan: false });
    const slow = slowBatches();
    const waiting = t.rc.loadBalancedView().apply((tab: Table) => {
      (globalThis as { dependantRan?: boolean }).dependantRan = true;
      return tab.numRows;
    }, slow);
    await waiting.abort();
    await assert.rejects(waiting.get(), TaskAbortedError);
    assert.ok(!slow.ready(), 'the input still runs');
    assert.equal((await slow).numRows, 100);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await dv.pull('dependantRan'), [false, false], 'the dependant never ran');
  });

  it('refuses a released input at the call', async () => {
    const gathered = t.rc.directView().gather<number[]>('part');
    await gathered.wait();
    gathered.release();
    assert.throws(() => t.rc.loadBalancedView().apply(total, gathered), ReleasedError);
  });
});

describe('task graphs: the values of a client that dies without closing', () => {
  /** The shortest deadline, so that the blocked client below outlasts it twice over. */
  const CLIENT_DEADLINE = 3000;
  const t = useCluster(2, { clientDeadline: CLIENT_DEADLINE });
  const children: ChildProcess[] = [];

  after(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  });

  /**
   * A client in a process of its own that makes a value its engine keeps, awaits it, prints the
   * task's id, then runs `then`; its further lines are collected in `lines`.
   */
  async function keeper(
    then = '',
  ): Promise<{ child: ChildProcess; msgId: string; lines: string[] }> {
    const script = `
      const { Client } = require(${JSON.stringify(join(__dirname, '../../client/client'))});
      (async () => {
        const rc = await Client.connect({ connectionFile: ${JSON.stringify(t.cluster.clientFile)} });
        const ar = rc.loadBalancedView().apply(() => new Float64Array(200_000).fill(1));
        await ar;
        process.stdout.write(ar.msgIds[0] + '\\n');
        ${then}
      })();`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    const lines: string[] = [];
    child.stdout?.on('data', (d: Buffer) =>
      lines.push(...d.toString().split('\n').filter(Boolean)),
    );
    await until(() => lines.length > 0 || child.exitCode !== null, 'the client to make its value');
    assert.ok(lines.length > 0, `the client process exited (${child.exitCode})`);
    return { child, msgId: lines.shift() as string, lines };
  }

  it('frees the values of a client killed with kill -9', async () => {
    const { child, msgId } = await keeper();
    assert.equal((await t.rc.result(msgId)).valueDropped, false, 'kept while its client lives');
    child.kill('SIGKILL');
    await until(async () => (await t.rc.result(msgId)).valueDropped, 'the value to be freed', 5000);
  });

  /** The bytes of the values engine `id` keeps, as its latest heartbeat said. */
  const keptOn = async (id: number): Promise<number | undefined> =>
    (await t.rc.queueStatus())[id]?.usage?.kept;

  /**
   * A client in a process of its own that sends engine `engineId` a direct task making 2 MB
   * once the file `go` exists (which it then removes), and is killed before it tells the hub of
   * the task: from the moment the task starts it blocks its event loop, where the tell would
   * leave.
   */
  async function untold(engineId: number, go: string): Promise<ChildProcess> {
    const started = join(tmpdir(), `tsp-untold-${process.pid}-${children.length}`);
    const script = `
      const { existsSync } = require('node:fs');
      const { Client } = require(${JSON.stringify(join(__dirname, '../../client/client'))});
      (async () => {
        const rc = await Client.connect({ connectionFile: ${JSON.stringify(t.cluster.clientFile)} });
        rc.directView(${engineId}).apply(async (started, go) => {
          const fs = process.getBuiltinModule('node:fs');
          fs.writeFileSync(started, '');
          while (!fs.existsSync(go)) await new Promise((r) => setTimeout(r, 10));
          fs.rmSync(go);
          return new Uint8Array(2_000_000);
        }, ${JSON.stringify(started)}, ${JSON.stringify(go)});
        // The task leaves two microtask turns after it was made; the tell follows ms later.
        for (let turn = 0; turn < 3; turn++) await null;
        const cell = new Int32Array(new SharedArrayBuffer(4));
        while (!existsSync(${JSON.stringify(started)})) Atomics.wait(cell, 0, 0, 10);
        Atomics.wait(cell, 0, 0);
      })();`;
    const child = spawn(process.execPath, ['-e', script], { stdio: 'inherit' });
    children.push(child);
    await until(() => existsSync(started) || child.exitCode !== null, 'the task to start');
    assert.equal(child.exitCode, null, 'the client process exited');
    rmSync(started);
    return child;
  }

  /** Kills `child` with kill -9 and waits for its end. */
  async function kill9(child: ChildProcess): Promise<void> {
    child.kill('SIGKILL');
    await until(() => child.signalCode !== null, 'the client to end');
  }

  const go = join(tmpdir(), `tsp-go-${process.pid}`);

  it('frees the value of a direct task its client, killed, never told of', async () => {
    const engineId = t.rc.ids[0];
    await until(async () => (await keptOn(engineId)) === 0, 'no value kept before');
    writeFileSync(go, '');
    const child = await untold(engineId, go);
    await until(async () => ((await keptOn(engineId)) ?? 0) >= 2e6, 'the value kept');
    await kill9(child);
    await until(async () => (await keptOn(engineId)) === 0, 'the value to be freed', 5000);
  });

  it('frees such a value made after its client was killed, as it is made', async () => {
    const engineId = t.rc.ids[1];
    await until(async () => (await keptOn(engineId)) === 0, 'no value kept before');
    const child = await untold(engineId, go);
    await kill9(child);
    // The hub hears at once that the connection closed, before the value is made.
    await new Promise((r) => setTimeout(r, 300));
    writeFileSync(go, '');
    await until(() => !existsSync(go), 'the value to be made');
    // Beats enough for the engine's report to tell what it keeps since.
    await new Promise((r) => setTimeout(r, 1000));
    await until(async () => (await keptOn(engineId)) === 0, 'the value to be freed', 5000);
  });

  it('keeps the values of a client whose event loop is blocked past the deadline', async function () {
    this.timeout(30_000);
    const blocked = 2 * CLIENT_DEADLINE;
    const { child, msgId, lines } = await keeper(`
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${blocked});
      const again = await rc.loadBalancedView().apply((x) => x.length, ar);
      process.stdout.write(String(again) + '\\n');
      rc.close();`);
    await until(() => child.exitCode !== null, 'the blocked client to end', blocked + 10_000);
    assert.deepEqual(lines, ['200000'], 'the value read again after the block');
    assert.equal(child.exitCode, 0);
    await until(async () => (await t.rc.result(msgId)).valueDropped, 'the value freed on close');
  });
});

declare const engineId: number;
declare const batchDelay: number;

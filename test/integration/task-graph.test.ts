import assert from 'node:assert/strict';
import type { AsyncResult } from '../../client/async-result';
import {
  DependencyError,
  EngineError,
  ReleasedError,
  RemoteError,
  TaskAbortedError,
} from '../../protocol/errors';
import { until, useCluster } from './fixture';

/** A value large enough to stay on the engine that made it (800 KB). */
function ones(): Float64Array {
  return new Float64Array(100_000).fill(1);
}

function sum(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return s;
}

describe('task graphs: results as arguments', () => {
  const t = useCluster(3);

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
    assert.equal(await total, 400_000);
    // Awaiting a value kept on its engine fetches it.
    assert.equal(sum(await big), 100_000);
    assert.equal(sum(await twice), 200_000);
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
    assert.deepEqual(await lv.map(sum, bigs), [100_000, 100_000]);
  });

  it('takes results on direct views, and gives a direct result as an array', async () => {
    const lv = t.rc.loadBalancedView();
    const dv = t.rc.directView([0, 1]);
    const a = lv.apply(() => 7);
    assert.deepEqual(await dv.apply((x: number) => x + 1, a), [8, 8]);
    const each = dv.apply(() => engineId);
    assert.deepEqual(await lv.apply((ids: number[]) => ids, each), [0, 1]);
    const big = lv.apply(ones);
    assert.deepEqual(await dv.apply(sum, big), [100_000, 100_000]);
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
    const slow = lv.apply(() => new Promise<number>((r) => setTimeout(() => r(1), 1500)));
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
});

declare const engineId: number;

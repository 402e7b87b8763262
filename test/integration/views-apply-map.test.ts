import assert from 'node:assert/strict';
import { CompositeError, RemoteError, SerializationError } from '../../protocol/errors';
import { Reference } from '../../client/reference';
import { gc, until, useCluster } from './fixture';

describe('views on a real cluster of 2 engines', () => {
  const t = useCluster(2);

  it("lets a task's arguments go once it is sent, while it runs (through the hub, direct, leased)", async () => {
    const slow = async (x: Uint8Array): Promise<number> => {
      await new Promise((r) => setTimeout(r, 3000));
      return x.length;
    };
    const views = {
      'through the hub': t.rc.loadBalancedView(),
      direct: t.rc.directView(0),
      leased: t.rc.loadBalancedView().withOptions({ lease: true }),
    };
    for (const [path, view] of Object.entries(views)) {
      let freed = false;
      const finalized = new FinalizationRegistry(() => (freed = true));
      // Under the shared-memory threshold, so that the bytes travel in the message itself.
      let arg: Uint8Array | undefined = new Uint8Array(200_000);
      finalized.register(arg.buffer, path);
      const ar = view.apply(slow, arg);
      arg = undefined;
      await until(
        () => {
          gc();
          return freed;
        },
        `${path}: the argument let go while the task runs`,
        2000,
        50,
      );
      assert.equal(ar.ready(), false, `${path}: still running`);
      assert.deepEqual(await ar, path === 'direct' ? [200_000] : 200_000);
    }
  });

  describe('DirectView', () => {
    it('apply runs on every engine and gives results in target order', async () => {
      const pids = await t.rc.directView().apply(() => process.pid);
      assert.equal(pids.length, 2);
      assert.deepEqual(
        pids,
        t.rc.engineInfo.map((e) => e.pid),
      );
      const one = await t.rc.directView(1).apply((a: number, b: number) => a * b, 6, 7);
      assert.deepEqual(one, [42]);
    });

    it('map splits unevenly and keeps order; empty input gives []', async () => {
      const dv = t.rc.directView();
      const ar = dv.map((x: number) => x * 10 + engineId, [1, 2, 3, 4, 5]);
      assert.deepEqual(await ar, [10, 20, 30, 41, 51]);
      assert.equal(ar.length, 2);
      assert.deepEqual(await dv.map((x: number) => x, []), []);
      assert.deepEqual(await dv.map((a: number, b: string) => b.repeat(a), [1, 2], ['x', 'y']), [
        'x',
        'yy',
      ]);
    });

    it('execute keeps a namespace where const may be declared again', async () => {
      const dv = t.rc.directView();
      await dv.execute(
        'const factor: number = 3; function triple(x: number) { return x * factor; }',
      );
      const replies = await dv.execute('const factor = 4; triple(10)');
      assert.deepEqual(
        replies.map((r) => r.result),
        ['40', '40'],
      );
      assert.deepEqual(await dv.apply((x: number) => triple(x), 2), [8, 8]);
    });

    it('push and pull round trip values, also binary ones', async () => {
      const dv = t.rc.directView();
      const big = new Float64Array(1 << 17).map((_, i) => i);
      await dv.push({ a: 1, m: new Map([['k', [1n, 2n]]]), big });
      const [[a, m, b]] = await t.rc.directView(0).pull(['a', 'm', 'big']);
      assert.equal(a, 1);
      assert.deepEqual(m, new Map([['k', [1n, 2n]]]));
      assert.deepEqual(b, big);
      assert.deepEqual(await dv.pull('a'), [1, 1]);
      await assert.rejects(
        dv.pull('nothing').get(),
        (e: Error) => e instanceof CompositeError && /nothing is not defined/.test(e.message),
      );
    });

    it('scatter and gather split and join arrays and typed arrays', async () => {
      const dv = t.rc.directView();
      await dv.scatter('part', [1, 2, 3, 4, 5]);
      assert.deepEqual(await dv.pull('part'), [
        [1, 2, 3],
        [4, 5],
      ]);
      assert.deepEqual(await dv.gather('part'), [1, 2, 3, 4, 5]);
      const xs = Int32Array.from({ length: 11 }, (_, i) => i * i);
      await dv.scatter('xs', xs);
      assert.deepEqual(await dv.gather('xs'), xs);
    });

    it('a Reference argument is the engine’s own variable', async () => {
      const dv = t.rc.directView();
      await dv.execute('const secret = engineId * 100;');
      assert.deepEqual(
        await dv.apply((s: number, k: number) => s + k, new Reference<number>('secret'), 1),
        [1, 101],
      );
    });

    it('errors from several engines arrive as a CompositeError of RemoteErrors', async () => {
      const err = await t.rc
        .directView()
        .apply(() => {
          throw new RangeError(`bad on ${engineId}`);
        })
        .then(
          () => assert.fail('should reject'),
          (e: unknown) => e,
        );
      assert.ok(err instanceof CompositeError);
      assert.equal(err.errors.length, 2);
      const [e0, e1] = err.errors as RemoteError[];
      assert.ok(e0 instanceof RemoteError);
      assert.equal(e0.ename, 'RangeError');
      assert.equal(e0.evalue, 'bad on 0');
      assert.equal(e0.engineId, 0);
      assert.equal(e1.engineId, 1);
      assert.equal(e1.evalue, 'bad on 1');
      assert.match(e0.traceback.join('\n'), /RangeError: bad on 0/);
      assert.match(e0.traceback.join('\n'), /at .*function/);
    });
  });

  describe('LoadBalancedView', () => {
    it('apply runs once and gives the bare value', async () => {
      const lv = t.rc.loadBalancedView();
      assert.equal(await lv.apply((a: number, b: number) => a + b, 2, 3), 5);
      const ar = lv.apply(
        async (ms: number) => new Promise((r) => setTimeout(() => r(ms), ms)),
        10,
      );
      assert.equal(await ar, 10);
      assert.equal(ar.length, 1);
      assert.equal(ar.metadata[0].status, 'ok');
      assert.ok(ar.engineIds[0] === 0 || ar.engineIds[0] === 1);
    });

    it('map uses both engines, one task per chunk, in input order', async () => {
      const lv = t.rc.loadBalancedView();
      const xs = Array.from({ length: 20 }, (_, i) => i);
      const ar = lv.withOptions({ chunkSize: 3 }).map(async (x: number) => {
        await new Promise((r) => setTimeout(r, 5));
        return [x * 2, engineId];
      }, xs);
      const out = await ar;
      assert.equal(ar.length, 7);
      assert.deepEqual(
        out.map(([v]) => v),
        xs.map((x) => x * 2),
      );
      assert.deepEqual(new Set(out.map(([, e]) => e)), new Set([0, 1]));
      assert.deepEqual(await lv.map((x: number) => x, []), []);
    });

    it('imap unordered yields results as they finish', async () => {
      const lv = t.rc.loadBalancedView().withOptions({ ordered: false });
      const seen: number[] = [];
      const delays = [300, 10, 10, 10];
      for await (const ms of lv.imap(async (d: number) => {
        await new Promise((r) => setTimeout(r, d));
        return d;
      }, delays)) {
        seen.push(ms);
      }
      assert.deepEqual(
        [...seen].sort((a, b) => a - b),
        [10, 10, 10, 300],
      );
      assert.equal(seen[seen.length - 1], 300, 'the slow task arrives last');
    });

    it('a function that closes over a local names the variable and says to push it', async () => {
      const local = 41;
      await assert.rejects(
        t.rc
          .loadBalancedView()
          .apply(() => local + 1)
          .get(),
        (e: unknown) => {
          assert.ok(e instanceof RemoteError);
          assert.equal(e.ename, 'ReferenceError');
          assert.match(e.evalue, /^local is not defined on engine \d/);
          assert.match(e.evalue, /push\(\{ local \}\)/);
          return true;
        },
      );
    });

    it('arguments that cannot travel are refused before sending, naming their path', () => {
      const lv = t.rc.loadBalancedView();
      assert.throws(
        () => lv.apply((o: unknown) => o, { opts: { callback: () => 1 } }),
        (e: unknown) => e instanceof SerializationError && e.path === 'args[0].opts.callback',
      );
    });

    it('a result that cannot travel fails with a clear error', async () => {
      await assert.rejects(
        t.rc
          .loadBalancedView()
          .apply(() => ({ f: () => 1 }))
          .get(),
        (e: unknown) =>
          e instanceof RemoteError &&
          e.ename === 'SerializationError' &&
          /result\.f/.test(e.evalue),
      );
    });
  });

  it('remote and parallel wrap functions', async () => {
    const double = t.rc.directView(0).remote((x: number) => x * 2);
    assert.deepEqual(await double(21), [42]);
    const squares = t.rc.loadBalancedView().parallel((x: number) => x * x);
    assert.deepEqual(await squares([1, 2, 3]), [1, 4, 9]);
  });

  it('queueStatus counts completed tasks per engine', async () => {
    const status = await t.rc.queueStatus();
    assert.equal(status.unassigned, 0);
    assert.ok(status[0].completed > 0 && status[1].completed > 0);
    assert.equal(status[0].queue, 0);
  });

  it('result() reads a finished task back from the controller', async () => {
    const ar = t.rc
      .loadBalancedView()
      .withOptions({ label: 'answer' })
      .apply(() => 42);
    await ar;
    const record = await t.rc.result(ar.msgIds[0]);
    assert.equal(record.state, 'completed');
    assert.equal(record.value, 42);
    assert.equal(record.label, 'answer');
    assert.ok(record.completed instanceof Date);
  });
});

declare const engineId: number;
declare function triple(x: number): number;

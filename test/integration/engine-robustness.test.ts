import assert from 'node:assert/strict';
import { RemoteError } from '../../protocol/errors';
import { useCluster } from './fixture';

describe('engines under awkward user code', () => {
  const t = useCluster(2);

  it('keeps every direct task queued behind a busy engine (no high-water-mark drops)', async () => {
    const dv = t.rc.directView(0);
    const busy = dv.apply(() => {
      const end = Date.now() + 1500;
      while (Date.now() < end);
    });
    const payload = 'x'.repeat(1024);
    const queued = Array.from({ length: 2500 }, (_, i) =>
      dv.apply((s: string, n: number) => s.length + n, payload, i),
    );
    await busy;
    const results = await Promise.all(queued.map((ar) => ar.get()));
    assert.equal(results.length, 2500);
    assert.deepEqual(results[2499], [1024 + 2499]);
  });

  it('survives exceptions and rejections nobody awaited', async () => {
    const dv = t.rc.directView(1);
    await dv.execute(
      'setTimeout(() => { throw new Error("stray") }, 5); Promise.reject(new Error("unawaited"));',
    );
    await dv.apply(() => new Promise((r) => setTimeout(r, 50)));
    assert.deepEqual(t.rc.ids, [0, 1]);
    assert.deepEqual(await dv.apply(() => 'alive'), ['alive']);
  });

  it('credits output to the task that wrote it, not to whichever runs next', async () => {
    const dv = t.rc.directView(1);
    await dv.execute('globalThis.leaky = setInterval(() => console.log("LEAK"), 2);');
    const next = dv.apply(() => new Promise((r) => setTimeout(() => r(console.log('mine')), 50)));
    await next;
    assert.equal(next.stdout[0], 'mine\n');
    await dv.execute('clearInterval(leaky)');
  });

  it('credits display output to the task that made it, not to whichever runs next', async () => {
    const dv = t.rc.directView(1);
    await dv.execute('globalThis.leakyDisplay = setInterval(() => display.text("LEAK"), 2);');
    const next = dv.execute('await new Promise((r) => setTimeout(r, 50)); display.text("mine");');
    await next;
    assert.deepEqual(next.outputs[0], [{ type: 'display_data', data: { 'text/plain': 'mine' } }]);
    await dv.execute('clearInterval(leakyDisplay)');
  });

  it('calls write callbacks of captured output', async () => {
    const written = t.rc
      .directView(0)
      .apply(() => new Promise<string>((r) => process.stdout.write('x', () => r('done'))));
    assert.deepEqual(await written, ['done']);
  });

  it('maps over typed arrays element by element', async () => {
    const dv = t.rc.directView();
    assert.deepEqual(
      await dv.map((x: number) => x * 100, new Uint8Array([1, 2, 3])),
      [100, 200, 300],
    );
    assert.deepEqual(await dv.map((x: number) => `v${x}`, new Float64Array([1.5, 2])), [
      'v1.5',
      'v2',
    ]);
    assert.deepEqual(
      await t.rc.loadBalancedView().map((x: number) => -x, new Int16Array([4, 5])),
      [-4, -5],
    );
  });

  it('gives user code arguments and pushed values of its own realm (instanceof holds)', async () => {
    const dv = t.rc.directView(0);
    const [checks] = await dv.apply(
      (a: unknown, m: unknown, d: unknown, e: unknown) => [
        a instanceof Array,
        m instanceof Map,
        d instanceof Date,
        e instanceof Error,
      ],
      [1],
      new Map(),
      new Date(),
      new Error('x'),
    );
    assert.deepEqual(checks, [true, true, true, true]);
    await dv.push({ pm: new Map([[1, 2]]) });
    const [reply] = await dv.execute('pm instanceof Map && pm.get(1) === 2');
    assert.equal(reply.result, 'true');
  });

  it('reports a thrown object that cannot even be inspected, and lives on', async () => {
    const lv = t.rc.loadBalancedView();
    await assert.rejects(
      lv
        .apply(() => {
          throw new Proxy(
            {},
            {
              get() {
                throw new Error('no peeking');
              },
            },
          );
        })
        .get(),
      (e: unknown) => e instanceof RemoteError && /cannot be inspected/.test(e.evalue),
    );
    assert.equal(await lv.apply(() => 1), 1);
  });
});

declare global {
  var leaky: NodeJS.Timeout;
}

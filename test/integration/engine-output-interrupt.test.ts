import assert from 'node:assert/strict';
import { RemoteError, TaskAbortedError } from '../../protocol/errors';
import type { TaskOutput } from '../../client/async-result';
import { useCluster } from './fixture';

/** Resolves with the first output of `ar` whose text matches `pattern`. */
function outputMatching(
  ar: { onOutput(cb: (o: TaskOutput) => void): void },
  pattern: RegExp,
): Promise<string> {
  return new Promise((resolve) =>
    ar.onOutput((o) => {
      if (o.type === 'stream' && pattern.test(o.text)) resolve(o.text);
    }),
  );
}

describe('engine output, interrupts and aborts', () => {
  const t = useCluster(1);

  it('streams output of a running task before the task ends', async () => {
    const ar = t.rc.loadBalancedView().apply(async () => {
      console.log('first line');
      await new Promise((r) => setTimeout(r, 60_000));
    });
    const text = await outputMatching(ar, /first line/);
    assert.equal(text, 'first line\n');
    assert.equal(ar.ready(), false, 'the task still runs');
    await t.rc.abort(ar);
    await assert.rejects(ar.get(), TaskAbortedError);
  });

  it('streams output of a synchronous loop as it runs, and interrupts the loop with SIGINT', async () => {
    const dv = t.rc.directView(0);
    const ar = dv.execute(`
      for (let i = 0; i < 3; i++) {
        console.log('tick ' + i);
        const t = Date.now();
        while (Date.now() - t < 100) {}
      }
      while (true) {}`);
    await outputMatching(ar, /tick 2/);
    assert.equal(ar.ready(), false);
    await t.rc.sendSignal('SIGINT', 0);
    await assert.rejects(
      ar.get(),
      (e: unknown) => e instanceof RemoteError && e.ename === 'InterruptedError',
    );
    assert.deepEqual(await dv.apply(() => 'still usable'), ['still usable']);
  });

  it('keeps stdout and stderr apart and shows display data', async () => {
    const ar = t.rc
      .directView()
      .execute('console.log("out"); console.error("err"); display.html("<b>hi</b>"); 6 * 7');
    const [reply] = await ar;
    assert.equal(ar.stdout[0], 'out\n');
    assert.equal(ar.stderr[0], 'err\n');
    assert.deepEqual(ar.outputs[0][0], {
      type: 'display_data',
      data: { 'text/html': '<b>hi</b>' },
    });
    assert.equal(reply.result, '42');
  });

  it('aborts queued tasks, which never run, and interrupts the running one', async () => {
    const lv = t.rc.loadBalancedView();
    const running = lv.apply(() => {
      console.log('busy');
      for (;;);
    });
    await outputMatching(running, /busy/);
    const queued = lv.apply(() => {
      globalThis.ranAfterAbort = true;
    });
    const status = await t.rc.queueStatus();
    assert.equal(status.unassigned, 1);
    const aborted = await t.rc.abort([...queued.msgIds, ...running.msgIds]);
    assert.deepEqual(new Set(aborted), new Set([...queued.msgIds, ...running.msgIds]));
    await assert.rejects(queued.get(), TaskAbortedError);
    await assert.rejects(running.get(), TaskAbortedError);
    assert.deepEqual(await t.rc.directView().apply(() => 'ranAfterAbort' in globalThis), [false]);
  });

  it('aborts direct tasks already queued on the engine, which then never run', async () => {
    const dv = t.rc.directView(0);
    const blocking = dv.execute('console.log("blocking"); while (true) {}');
    await outputMatching(blocking, /blocking/);
    const queued = dv.apply(() => {
      globalThis.ranAfterAbort = true;
    });
    assert.deepEqual(await t.rc.abort(queued), queued.msgIds);
    await t.rc.sendSignal('SIGINT', 0);
    await assert.rejects(blocking.get(), /InterruptedError/);
    await assert.rejects(queued.get(), TaskAbortedError);
    assert.deepEqual(await dv.apply(() => 'ranAfterAbort' in globalThis), [false]);
  });

  it('aborts a looping task as it arrives, many times over (the abort meets it being prepared)', async () => {
    const dv = t.rc.directView(0);
    // Decoding the argument takes the engine a while before the loop runs under breakOnSigint.
    const rows = Array.from({ length: 100_000 }, (_, i) => ({ i, name: `row ${i}` }));
    for (let i = 0; i < 10; i++) {
      const ar = dv.apply((_rows: unknown[]) => {
        for (;;);
      }, rows);
      await t.rc.abort(ar);
      await assert.rejects(ar.get({ timeout: 10_000 }), TaskAbortedError);
    }
    assert.deepEqual(await dv.apply(() => 'alive'), ['alive']);
  });

  it('aborts a looping task at any moment of its life, many times over', async function () {
    this.timeout(120_000);
    const dv = t.rc.directView(0);
    // Moments spread over the task's arrival, preparation and run. A signal that met the
    // preparation used to leave the loop beyond any later signal's reach, about 1 abort in 300.
    for (let i = 0; i < 400; i++) {
      const ar = dv.apply(() => {
        for (;;);
      });
      await new Promise((r) => setTimeout(r, (i % 20) * 1.5));
      await t.rc.abort(ar);
      await assert.rejects(ar.get({ timeout: 10_000 }), TaskAbortedError);
    }
  });

  it('get({ timeout }) rejects while the task keeps running', async () => {
    const ar = t.rc
      .loadBalancedView()
      .apply(() => new Promise<string>((r) => setTimeout(() => r('late'), 300)));
    await assert.rejects(ar.get({ timeout: 20 }), /not finished after 20 ms/);
    assert.equal(await ar, 'late');
  });

  it('interrupts a task that awaits, many times over (the signal reaches an idle thread)', async () => {
    const dv = t.rc.directView(0);
    for (let i = 0; i < 3; i++) {
      const ar = dv.execute('console.log("waiting"); await new Promise(() => {});');
      await outputMatching(ar, /waiting/);
      await t.rc.sendSignal('SIGINT', 0);
      await assert.rejects(ar.get(), /InterruptedError/);
      assert.deepEqual(await dv.apply(() => 'alive'), ['alive']);
    }
  });
});

declare global {
  var ranAfterAbort: boolean;
}

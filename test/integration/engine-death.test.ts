import assert from 'node:assert/strict';
import type { TaskOutput } from '../../client/async-result';
import { EngineError } from '../../protocol/errors';
import type { EngineInfo } from '../../protocol/messages';
import { figures, isAlive, until, useCluster } from './fixture';

/** Resolves with the pid a task prints as its first output. */
function printedPid(ar: { onOutput(cb: (o: TaskOutput) => void): void }): Promise<number> {
  return new Promise((resolve) =>
    ar.onOutput((o) => {
      if (o.type === 'stream') resolve(Number(o.text.trim()));
    }),
  );
}

async function pidThenSleep(ms: number): Promise<number> {
  console.log(process.pid);
  await new Promise((r) => setTimeout(r, ms));
  return process.pid;
}

describe('engines that die or hang during a task', () => {
  const t = useCluster(4);

  it('fails that task with EngineError, drops the engine, and leaves the others working', async () => {
    const lv = t.rc.loadBalancedView();
    const doomed = lv.apply(pidThenSleep, 60_000);
    const survivor = lv.apply(pidThenSleep, 300);
    const pid = await printedPid(doomed);
    const victim = t.rc.engineInfo.find((e) => e.pid === pid);
    assert.ok(victim, 'the task runs on a registered engine');
    process.kill(pid, 'SIGKILL');
    const started = performance.now();
    await assert.rejects(doomed.get(), (e: unknown) => {
      assert.ok(e instanceof EngineError);
      assert.equal(e.engineId, victim.id);
      assert.match(e.message, new RegExp(`engine ${victim.id} died`));
      return true;
    });
    assert.ok(performance.now() - started < 5000, 'noticed within the heartbeat deadline');
    await until(() => !t.rc.ids.includes(victim.id), 'the dead engine to leave rc.ids');
    assert.notEqual(await survivor, pid);
    const pids = await t.rc.directView().apply(() => process.pid);
    assert.equal(pids.length, 3);
    assert.ok(!pids.includes(pid));
  });

  it('declares a stopped (SIGSTOP) engine dead; resumed, it is told and registers with a new id', async () => {
    const lv = t.rc.loadBalancedView();
    const ar = lv.apply(pidThenSleep, 60_000);
    const pid = await printedPid(ar);
    const victim = t.rc.engineInfo.find((e) => e.pid === pid);
    assert.ok(victim);
    const events = t.rc.events()[Symbol.asyncIterator]();
    process.kill(pid, 'SIGSTOP');
    figures.faultsInjected++;
    await assert.rejects(
      ar.get(),
      (e: unknown) => e instanceof EngineError && /no heartbeat/.test(e.message),
    );
    await until(() => !t.rc.ids.includes(victim.id), 'the stopped engine to leave rc.ids');
    process.kill(pid, 'SIGCONT');
    let back: EngineInfo | undefined;
    while (!back) {
      const { value } = await events.next();
      if (value.type === 'engine:register' && value.engine.pid === pid) back = value.engine;
    }
    await events.return?.();
    assert.ok(back.id > victim.id, 'a new id, never a reused one');
    assert.ok(isAlive(pid));
    assert.deepEqual(await t.rc.directView(back.id).apply(() => [engineId, process.pid]), [
      [back.id, pid],
    ]);
  });

  it('reruns the task on another engine when retries is set', async () => {
    const lv = t.rc.loadBalancedView().withOptions({ retries: 1 });
    const before = t.rc.ids.length;
    const ar = lv.apply(pidThenSleep, 500);
    const pid = await printedPid(ar);
    process.kill(pid, 'SIGKILL');
    const finalPid = await ar;
    assert.notEqual(finalPid, pid);
    assert.ok(!isAlive(pid));
    await until(() => t.rc.ids.length === before - 1, 'the killed engine to leave rc.ids');
  });
});

/** The engine's id, a global on every engine. */
declare const engineId: number;

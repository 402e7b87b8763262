import assert from 'node:assert/strict';
import { Cluster } from '../../cluster/cluster';
import { OUTPUT_LIMIT } from '../../engine/output';
import { EngineError, RemoteError } from '../../protocol/errors';
import type { EngineInfo } from '../../protocol/messages';
import { FAST_HEARTBEAT, figures, until, useCluster } from './fixture';

describe('faults a task causes on its engine', () => {
  const t = useCluster(2);

  it('reports process.exit() to the task that called it, with the reason, at once', async () => {
    const lv = t.rc.loadBalancedView();
    figures.faultsInjected++;
    figures.tasksSubmitted++;
    await assert.rejects(
      lv.apply(() => process.exit(3)).get(),
      (e: unknown) =>
        e instanceof EngineError && /exited: its task called process\.exit\(3\)/.test(e.message),
    );
    // It unregistered on the way out, rather than being found silent later.
    await until(() => t.rc.ids.length === 1, 'the exited engine to leave');
  });

  it('fails a task whose promise rejection nobody handled, with that rejection', async () => {
    const lv = t.rc.loadBalancedView();
    figures.faultsInjected++;
    figures.tasksSubmitted++;
    const ar = lv.apply(async () => {
      void Promise.reject(new TypeError('forgotten'));
      await new Promise((r) => setTimeout(r, 60_000));
    });
    await assert.rejects(
      ar.get(),
      (e: unknown) =>
        e instanceof RemoteError &&
        e.ename === 'UnhandledRejection' &&
        /rejected and nothing handled it: TypeError: forgotten/.test(e.evalue),
    );
    assert.equal(await lv.apply(() => 'alive'), 'alive');
  });

  it('reports runaway recursion and a failed huge allocation as errors; the engine lives', async () => {
    const lv = t.rc.loadBalancedView();
    figures.faultsInjected += 2;
    figures.tasksSubmitted += 2;
    await assert.rejects(
      lv
        .apply(() => {
          const down = (n: number): number => down(n + 1) + 1;
          return down(0);
        })
        .get(),
      (e: unknown) =>
        e instanceof RemoteError && e.ename === 'RangeError' && /call stack/.test(e.evalue),
    );
    await assert.rejects(
      lv.apply(() => new ArrayBuffer(2 ** 52).byteLength).get(),
      (e: unknown) =>
        e instanceof RemoteError && e.ename === 'RangeError' && /allocation failed/.test(e.evalue),
    );
    assert.equal(await lv.apply(() => 'alive'), 'alive');
  });

  it('truncates 100 MB of output with a notice', async function () {
    this.timeout(60_000);
    const ar = t.rc.loadBalancedView().apply(() => {
      const mb = 'x'.repeat(1024 * 1024);
      for (let i = 0; i < 100; i++) process.stdout.write(mb);
      return 'wrote';
    });
    assert.equal(await ar, 'wrote');
    const written = ar.stdout.join('').length;
    assert.ok(written <= OUTPUT_LIMIT, `${written} characters arrived`);
    assert.match(ar.stderr.join(''), /output truncated: the task wrote more than 10 MB/);
  });
});

describe('a cluster that restarts engines that die (restartEngines)', () => {
  let cluster: Cluster;

  before(async function () {
    this.timeout(30_000);
    cluster = await Cluster.start({ engines: 2, restartEngines: 2, controller: FAST_HEARTBEAT });
  });

  after(async function () {
    this.timeout(30_000);
    await cluster.stop();
  });

  it('replaces each engine that dies, up to the limit a minute, then says it stops', async function () {
    this.timeout(60_000);
    const rc = await cluster.connect();
    const events = rc.events()[Symbol.asyncIterator]();
    const nextRegistration = async (): Promise<EngineInfo> => {
      for (;;) {
        const { value } = await events.next();
        if (value.type === 'engine:register') return value.engine;
      }
    };
    for (let round = 0; round < 2; round++) {
      const [victim] = rc.engineInfo;
      process.kill(victim.pid, 'SIGKILL');
      figures.faultsInjected++;
      const replacement = await nextRegistration();
      assert.ok(replacement.id > victim.id);
      assert.notEqual(replacement.pid, victim.pid);
      await until(() => !rc.ids.includes(victim.id), 'the dead engine to leave');
    }
    const refused = new Promise<Error>((resolve) => process.once('warning', resolve));
    process.kill(rc.engineInfo[0].pid, 'SIGKILL');
    figures.faultsInjected++;
    assert.match(
      (await refused).message,
      /not replaced: 2 engines were restarted in the last minute/,
    );
    await until(() => rc.ids.length === 1, 'the unreplaced engine to leave');
    rc.close();
  });
});

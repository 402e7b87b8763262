import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from '../../cluster/cluster';
import { cli, until } from './fixture';
import { heldUntil, LAUNCHER_HEARTBEAT } from './launchers/common';

describe('scaling a cluster', () => {
  it('scale(n) grows, and shrinks by stopping idle engines first', async function () {
    this.timeout(90_000);
    const cluster = await Cluster.start({ engines: 1, controller: LAUNCHER_HEARTBEAT });
    try {
      const rc = await cluster.connect();
      assert.deepEqual(await cluster.scale(3), [0, 1, 2]);
      const busy = rc.directView(1).execute('await new Promise((r) => setTimeout(r, 60_000))');
      const queued = await rc.queueStatus();
      assert.equal(queued[1].queue, 1);
      // Engines 0 and 2 are idle, engine 1 is not: it stays.
      assert.deepEqual(await cluster.scale(1), [1]);
      await rc.abort(busy);
      assert.deepEqual(await cluster.scale(2), [1, 3]);
      await assert.rejects(cluster.scale(-1), /scale needs an integer >= 0, got -1/);
      rc.close();
    } finally {
      await cluster.stop();
    }
  });

  it('adapt() starts engines while tasks wait, and stops them once idle', async function () {
    this.timeout(90_000);
    const cluster = await Cluster.start({ engines: 0, controller: LAUNCHER_HEARTBEAT });
    try {
      const rc = await cluster.connect();
      const joined = new Set<number>();
      void (async () => {
        for await (const e of rc.events())
          if (e.type === 'engine:register') joined.add(e.engine.id);
      })();
      const adaptive = cluster.adapt({ minimum: 0, maximum: 2, interval: 100, wait: 500 });
      // Tasks hold their engine until the file exists, so that both engines are needed.
      const release = join(process.env.TSPARALLEL_DIR as string, 'adapt-release');
      const results = rc.loadBalancedView().map(heldUntil, [1, 2, 3, 4, 5], Array(5).fill(release));
      await until(() => joined.size === 2, 'two engines to join', 30_000);
      writeFileSync(release, '');
      assert.deepEqual(await results, [1, 2, 3, 4, 5]);
      await until(() => rc.ids.length === 0, 'idle engines to be stopped', 20_000);
      assert.equal(joined.size, 2, 'grown to the maximum, not beyond');
      await adaptive.stop();
      assert.equal(adaptive.lastError, undefined);
      rc.close();
    } finally {
      await cluster.stop();
    }
  });

  it('tsparallel cluster engines --scale N resizes a running cluster', function () {
    this.timeout(90_000);
    const id = ['--cluster-id', 'cli-scale'];
    try {
      const start = cli('cluster', 'start', '-n', '1', '--daemonize', ...id);
      assert.equal(start.status, 0, start.stderr);
      const up = cli('cluster', 'engines', '--scale', '3', ...id);
      assert.equal(up.status, 0, up.stderr);
      assert.match(up.stdout, /scaled to 3 engines/);
      assert.equal(up.stdout.match(/^engine \d+\tpid/gm)?.length, 3);
      const down = cli('cluster', 'engines', '--scale', '1', ...id);
      assert.equal(down.status, 0, down.stderr);
      assert.equal(down.stdout.match(/^engine \d+\tpid/gm)?.length, 1);
      assert.match(cli('cluster', 'list').stdout, /cli-scale\t1 engines\tlocal/);
    } finally {
      cli('cluster', 'stop', ...id);
    }
  });

  it('the CLI refuses bad launcher options with one sentence', function () {
    this.timeout(90_000);
    const cases: [string[], RegExp][] = [
      [
        ['cluster', 'start', '--launcher', 'condor'],
        /argument 'condor' is invalid.*local, mpi, ssh, slurm/,
      ],
      [['cluster', 'start', '--launcher-options', '[1]'], /it must be a JSON object, not an array/],
      [['cluster', 'engines', '--scale', '-2'], /argument '-2' is invalid/],
    ];
    for (const [args, pattern] of cases) {
      const r = cli(...args);
      assert.equal(r.status, 2, args.join(' '));
      assert.match(r.stderr, pattern);
    }
    const r = cli(
      'cluster',
      'start',
      '--launcher',
      'ssh',
      '--launcher-options',
      '{"hosts":["h"],"user":"x"}',
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /unknown ssh launcher option user; its options are hosts/);
  });
});

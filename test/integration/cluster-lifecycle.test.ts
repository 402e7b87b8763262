import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from '../../cluster/cluster';
import { Client } from '../../client/client';
import { ConnectionError } from '../../protocol/errors';
import { cli, FAST_HEARTBEAT, isAlive, until } from './fixture';

async function pidsOf(cluster: Cluster): Promise<number[]> {
  const rc = await cluster.connect();
  const state = JSON.parse((await import('node:fs')).readFileSync(cluster.stateFile, 'utf8')) as {
    controllerPid: number;
  };
  const pids = [state.controllerPid, ...rc.engineInfo.map((e) => e.pid)];
  rc.close();
  return pids;
}

describe('clusters', () => {
  it('start gives engines 0..n-1 and stop leaves no process behind', async () => {
    const cluster = await Cluster.start({ engines: 2, controller: FAST_HEARTBEAT });
    const rc = await cluster.connect();
    assert.deepEqual(rc.ids, [0, 1]);
    rc.close();
    for (const file of [cluster.clientFile, cluster.stateFile]) {
      assert.equal(statSync(file).mode & 0o777, 0o600, file);
    }
    const pids = await pidsOf(cluster);
    assert.equal(pids.length, 3);
    assert.ok(pids.every(isAlive));
    await cluster.stop();
    assert.deepEqual(pids.filter(isAlive), []);
    await assert.rejects(
      Client.connect({ connectionFile: cluster.clientFile, timeout: 500 }),
      ConnectionError,
    );
  });

  it('refuses a second cluster with the same id, and closes its clients when stopped', async () => {
    const settings = { ...FAST_HEARTBEAT, hwm: undefined };
    const cluster = await Cluster.start({ engines: 1, clusterId: 'twin', controller: settings });
    try {
      await assert.rejects(
        Cluster.start({ engines: 1, clusterId: 'twin', controller: FAST_HEARTBEAT }),
        /cluster "twin" of profile "default" is running already \(controller pid \d+\)/,
      );
      const rc = await cluster.connect();
      const pending = rc.loadBalancedView().apply(() => new Promise(() => {}));
      await cluster.stop();
      await assert.rejects(pending.get(), ConnectionError);
      const other = await Client.connect({ connectionFile: cluster.clientFile }).catch(
        () => undefined,
      );
      assert.equal(other, undefined, 'the controller is gone');
    } finally {
      await cluster.stop();
    }
  });

  it('adds, stops, restarts and signals engines; ids are never reused', async () => {
    const cluster = await Cluster.start({ engines: 1, controller: FAST_HEARTBEAT });
    try {
      const rc = await cluster.connect();
      assert.deepEqual(await cluster.addEngines(2), [1, 2]);
      await cluster.stopEngine(1);
      await until(() => !rc.ids.includes(1), 'engine 1 to leave');
      const replacement = await cluster.restartEngine(0);
      assert.equal(replacement, 3);
      await until(() => rc.ids.join() === '2,3', 'ids 2,3');
      const ar = rc.directView(2).execute('console.log("waiting"); while (true) {}');
      await new Promise<void>((r) => ar.onOutput(() => r()));
      await cluster.signalEngines('SIGINT', [2]);
      await assert.rejects(ar.get(), /InterruptedError/);
      rc.close();
    } finally {
      await cluster.stop();
    }
  });

  it('processes exit on their own when the process that started them is killed, busy ones too', async () => {
    const script = `
      const { Cluster } = require(${JSON.stringify(join(__dirname, '..', '..', 'index.js'))});
      Cluster.start({ engines: 2, controller: { heartbeatPeriod: 100, heartbeatDeadline: 600 } })
        .then(async (c) => { const rc = await c.connect();
          const busy = rc.directView(0).execute('console.log("spinning"); while (true) {}');
          await new Promise((r) => busy.onOutput(r));
          const s = JSON.parse(require('fs').readFileSync(c.stateFile, 'utf8'));
          console.log(JSON.stringify([s.controllerPid, ...rc.engineInfo.map((e) => e.pid)])); });
      setInterval(() => {}, 1000);`;
    const owner = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pids = await new Promise<number[]>((resolve) =>
      owner.stdout.once('data', (d: Buffer) => resolve(JSON.parse(d.toString()) as number[])),
    );
    assert.equal(pids.length, 3);
    owner.kill('SIGKILL');
    await until(() => !pids.some(isAlive), 'controller and engines to exit');
  });
});

describe('the tsparallel command', () => {
  // A daemonized cluster outlives a failed assertion; stop it whatever happened.
  after(() => cli('cluster', 'stop', '--cluster-id', 'cli-test'));

  it('answers --help for every command', () => {
    for (const args of [
      [],
      ['controller'],
      ['engine'],
      ['cluster'],
      ['cluster', 'start'],
      ['cluster', 'engines'],
    ]) {
      const r = cli(...args, '--help');
      assert.equal(r.status, 0, args.join(' '));
      assert.match(r.stdout, /Usage: tsparallel/);
    }
  });

  it('refuses bad flags and values with one sentence and status 2', () => {
    const cases: [string[], RegExp][] = [
      [['cluster', 'start', '--bogus'], /unknown option '--bogus'/],
      [['cluster', 'start', '-n', 'many'], /argument 'many' is invalid.*integer/],
      [['controller', '--scheme', 'fastest'], /argument 'fastest' is invalid.*leastload/],
      [['controller', '--hwm', '0'], /argument '0' is invalid/],
      [['cluster', 'frobnicate'], /unknown command 'frobnicate'/],
      [['controller', '--ip', '999.1.1.1'], /'999.1.1.1' is invalid. it must be an IP address/],
      [['cluster', 'start', '--cluster-id', 'x/y'], /--cluster-id "x\/y" may hold only letters/],
      [
        ['controller', '--heartbeat-period', '1000', '--heartbeat-deadline', '500'],
        /--heartbeat-deadline \(500\) must be longer than --heartbeat-period \(1000\)/,
      ],
    ];
    for (const [args, pattern] of cases) {
      const r = cli(...args);
      assert.equal(r.status, 2, args.join(' '));
      assert.match(r.stderr, pattern);
      assert.match(r.stderr, /^error: [^\n]+ \(see --help\)\n$/, 'one line');
      assert.equal(r.stdout, '');
    }
  });

  it('starts a daemonized cluster, lists it, manages engines and stops it', () => {
    const id = ['--cluster-id', 'cli-test'];
    const start = cli('cluster', 'start', '-n', '2', '--daemonize', ...id);
    assert.equal(start.status, 0, start.stderr);
    assert.match(start.stdout, /2 engines \(ids 0, 1\)/);
    assert.match(cli('cluster', 'list').stdout, /cli-test\t2 engines/);
    const added = cli('cluster', 'engines', '--add', '1', ...id);
    assert.equal(added.status, 0, added.stderr);
    assert.match(added.stdout, /added engines 2/);
    assert.equal(added.stdout.match(/^engine \d+\tpid/gm)?.length, 3);
    const state = JSON.parse(
      readFileSync(Cluster.stateFilePath('default', 'cli-test'), 'utf8'),
    ) as { controllerPid: number };
    const pids = [
      state.controllerPid,
      ...[...added.stdout.matchAll(/pid (\d+)/g)].map((m) => Number(m[1])),
    ];
    assert.equal(pids.length, 4);
    const stop = cli('cluster', 'stop', ...id);
    assert.equal(stop.status, 0, stop.stderr);
    assert.deepEqual(pids.filter(isAlive), []);
    assert.doesNotMatch(cli('cluster', 'list').stdout, /cli-test/);
    const again = cli('cluster', 'stop', ...id);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /cannot read cluster file .* is the cluster running\?/);
  });
});

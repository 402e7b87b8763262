import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '../../client/client';
import { Cluster } from '../../cluster/cluster';
import { CLI } from '../../cluster/launchers/launcher';
import { EngineServer } from '../../engine/engine-server';
import { connectionFilePath, profileDir } from '../../protocol/connection';
import { cli, until } from './fixture';

/** The long flags a `--help` text lists. */
function flagsOf(help: string): string[] {
  return [...help.matchAll(/^ {2}(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1]);
}

describe('tsparallel cluster start and the controller options', () => {
  const id = ['--cluster-id', 'cli-options'];
  after(() => cli('cluster', 'stop', ...id));

  it("offers every one of the controller's settings", () => {
    const controller = flagsOf(cli('controller', '--help').stdout);
    const start = flagsOf(cli('cluster', 'start', '--help').stdout);
    const own = ['--profile', '--cluster-id', '--restore', '--exit-with-parent', '--help'];
    const settings = controller.filter((f) => !own.includes(f));
    for (const flag of ['--db', '--curve', '--hwm', '--heartbeat-period', '--heartbeat-deadline']) {
      assert.ok(settings.includes(flag), flag);
    }
    assert.deepEqual(
      settings.filter((f) => !start.includes(f)),
      [],
    );
  });

  it('passes them to the controller it starts', async function () {
    this.timeout(60_000);
    const started = cli(
      'cluster',
      'start',
      '-n',
      '1',
      '--daemonize',
      ...id,
      '--hwm',
      '2',
      '--db',
      'sqlite',
      '--curve',
      '--heartbeat-period',
      '200',
      '--heartbeat-deadline',
      '2000',
    );
    assert.equal(started.status, 0, started.stderr);
    const where = { profile: 'default', clusterId: 'cli-options' };
    // --curve: the connection file carries the server's key; --db sqlite: the records are on disk.
    const info = JSON.parse(readFileSync(connectionFilePath('client', where), 'utf8')) as {
      curve_serverkey?: string;
    };
    assert.match(info.curve_serverkey ?? '', /^.{40}$/);
    assert.ok(existsSync(join(profileDir('default'), 'tasks-cli-options.db')));
    // --hwm 2: the one engine holds two load-balanced tasks, the third waits for it.
    const rc = await Client.connect({ connectionFile: connectionFilePath('client', where) });
    try {
      const lv = rc.loadBalancedView();
      const tasks = [1, 2, 3].map(() => lv.apply(() => new Promise((r) => setTimeout(r, 1500))));
      let status = await rc.queueStatus();
      while (status.unassigned + (status[0]?.queue ?? 0) < 3) status = await rc.queueStatus();
      assert.equal(status[0].queue, 2);
      assert.equal(status.unassigned, 1);
      await Promise.all(tasks);
    } finally {
      rc.close();
    }
    const stopped = cli('cluster', 'stop', ...id);
    assert.equal(stopped.status, 0, stopped.stderr);
  });

  it('refuses bad settings by flag name before it starts anything', () => {
    const r = cli('cluster', 'start', '--heartbeat-period', '1000', '--heartbeat-deadline', '900');
    assert.equal(r.status, 2);
    assert.match(
      r.stderr,
      /^error: --heartbeat-deadline \(900\) must be longer than --heartbeat-period \(1000\)/,
    );
    assert.doesNotMatch(cli('cluster', 'list').stdout, /\tdefault\t/);
  });

  it('names a bad controller option given in code, before it starts anything', async () => {
    await assert.rejects(
      Cluster.start({ engines: 0, controller: { hwm: 0 } }),
      (e: unknown) =>
        e instanceof RangeError &&
        /controller option hwm must be a positive integer, got 0/.test(e.message),
    );
    await assert.rejects(
      Cluster.start({ engines: 0, controller: { hwmm: 2 } as never }),
      (e: unknown) =>
        e instanceof TypeError &&
        /unknown controller option hwmm; its options are ip, scheme, hwm/.test(e.message),
    );
  });

  it('refuses restartEngines with daemonize, in code and on the command line', async () => {
    // A daemonized cluster's starter returns, and nobody is left to replace dead engines.
    await assert.rejects(
      Cluster.start({ engines: 0, daemonize: true, restartEngines: 2 }),
      (e: unknown) =>
        e instanceof RangeError &&
        /^restartEngines needs the process .* drop daemonize or restartEngines$/.test(e.message),
    );
    const r = cli('cluster', 'start', '-n', '0', '--daemonize', '--restart-engines', '2');
    assert.equal(r.status, 2);
    assert.match(
      r.stderr,
      /^error: --restart-engines needs the process .* drop --daemonize or --restart-engines\. \(see --help\)\n$/,
    );
    assert.doesNotMatch(cli('cluster', 'list').stdout, /\tdefault\t/);
  });
});

describe('tsparallel cluster start --resources', () => {
  const id = ['--cluster-id', 'cli-resources'];
  after(() => cli('cluster', 'stop', ...id));

  it("reaches the cluster's engines, and cluster engines --add gives others their own", async function () {
    this.timeout(60_000);
    const started = cli(
      'cluster',
      'start',
      '-n',
      '1',
      '--daemonize',
      ...id,
      '--resources',
      'gpu=1,mem=8G',
    );
    assert.equal(started.status, 0, started.stderr);
    const added = cli('cluster', 'engines', ...id, '--add', '1', '--resources', 'tpu=0.5');
    assert.equal(added.status, 0, added.stderr);
    assert.match(added.stdout, /\tcpu=1,gpu=1,mem=8000000000\n/);
    assert.match(added.stdout, /\tcpu=1,tpu=0\.5\n/);
    const where = { profile: 'default', clusterId: 'cli-resources' };
    const rc = await Client.connect({ connectionFile: connectionFilePath('client', where) });
    try {
      assert.deepEqual(
        rc.engineInfo.map((e) => e.resources),
        [
          { cpu: 1, gpu: 1, mem: 8e9 },
          { cpu: 1, tpu: 0.5 },
        ],
      );
    } finally {
      rc.close();
    }
    const alone = cli('cluster', 'engines', ...id, '--resources', 'gpu=1');
    assert.equal(alone.status, 2);
    assert.match(alone.stderr, /^error: --resources says what added engines hold: give --add too/);
  });
});

describe('tsparallel controller --db sqlite in a fresh TSPARALLEL_DIR', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'tsp-fresh-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('makes the folders it needs and keeps its records there', async function () {
    this.timeout(30_000);
    const home = join(dir, 'not-yet-made');
    const env = { ...process.env, TSPARALLEL_DIR: home };
    const controller = spawn(process.execPath, [CLI, 'controller', '--db', 'sqlite'], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    controller.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => controller.on('exit', resolve));
    const clientFile = join(home, 'profile_default', 'security', 'controller-client.json');
    try {
      // It logs "listening" once its files are written and it serves.
      await until(() => {
        if (controller.exitCode !== null) assert.fail(`the controller exited: ${stderr}`);
        return /listening/.test(stderr);
      }, 'the controller to listen');
      assert.ok(existsSync(clientFile));
      assert.ok(existsSync(join(home, 'profile_default', 'tasks-default.db')));
    } finally {
      controller.kill('SIGTERM');
    }
    assert.equal(await exited, 0, stderr);
  });
});

describe('engine options', () => {
  it('are checked by EngineServer.start and by tsparallel engine, naming the option', async () => {
    await assert.rejects(
      EngineServer.start({ connectionFile: '/nowhere.json', hubTimeout: 0, log: () => undefined }),
      (e: unknown) =>
        e instanceof RangeError &&
        /^engine option hubTimeout must be a positive integer, got 0$/.test(e.message),
    );
    await assert.rejects(
      EngineServer.start({ file: '/nowhere.json', log: () => undefined } as never),
      (e: unknown) => e instanceof TypeError && /unknown engine option file/.test(e.message),
    );
    const r = cli('engine', '--file', '/nowhere.json', '--hub-timeout', '0');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^error: option '--hub-timeout <ms>' argument '0' is invalid/);
  });

  it('take --resources as name=amount pairs, and a bad one is a usage error naming it', () => {
    const amount = cli('engine', '--file', '/nowhere.json', '--resources', 'cpu=2,gpu=x');
    assert.equal(amount.status, 2);
    assert.match(
      amount.stderr,
      /argument 'cpu=2,gpu=x' is invalid\. --resources has gpu=x; an amount must be a number >= 0, with K, M, G or T/,
    );
    const pairs = cli('engine', '--file', '/nowhere.json', '--resources', 'gpu');
    assert.equal(pairs.status, 2);
    assert.match(
      pairs.stderr,
      /it must be name=amount pairs separated by commas, such as cpu=4,gpu=1,mem=8G/,
    );
  });
});

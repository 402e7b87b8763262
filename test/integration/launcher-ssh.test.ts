import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, type ClusterState } from '../../cluster/cluster';
import { SshLauncher } from '../../cluster/launchers/ssh';
import { connectionFilePath, profileDir } from '../../protocol/connection';
import { isAlive, until } from './fixture';
import { LAUNCHER_HEARTBEAT } from './launchers/common';
import { descendants, startSshd, type TestSshd } from './launchers/sshd';

describe('the ssh launcher (a real sshd on 127.0.0.1)', () => {
  let sshd: TestSshd;
  let cluster: Cluster;
  const options = (): { hosts: string[]; sshArgs: string[]; remoteDir: string } => ({
    hosts: [sshd.host],
    sshArgs: sshd.sshArgs,
    remoteDir: sshd.remoteDir,
  });

  before(async function () {
    this.timeout(60_000);
    sshd = await startSshd();
    cluster = await Cluster.start({
      engines: 2,
      launcher: 'ssh',
      launcherOptions: options(),
      controller: LAUNCHER_HEARTBEAT,
    });
  });
  after(async function () {
    this.timeout(60_000);
    await cluster?.stop();
    await sshd?.stop();
  });

  it('starts engines in SSH sessions that run tasks', async function () {
    this.timeout(90_000);
    const rc = await cluster.connect();
    assert.deepEqual(rc.ids, [0, 1]);
    // The engines are sshd's descendants: they came over SSH, not as children of this process.
    const underSshd = descendants(sshd.process.pid as number);
    for (const e of rc.engineInfo)
      assert.ok(underSshd.includes(e.pid), `engine ${e.id} under sshd`);
    assert.equal(new Set(rc.engineInfo.map((e) => e.engine_set)).size, 2, 'a set per engine');
    assert.deepEqual(await rc.loadBalancedView().map((x: number) => x + 1, [1, 2, 3]), [2, 3, 4]);
    // The connection file went over too, readable by its owner only.
    const copied = join(
      sshd.remoteDir,
      `profile_${cluster.profile}-controller-${cluster.clusterId}-engine.json`,
    );
    assert.equal(
      readFileSync(copied, 'utf8'),
      readFileSync(connectionFilePath('engine', cluster), 'utf8'),
    );
    rc.close();
  });

  it('scales up and down', async function () {
    this.timeout(90_000);
    assert.deepEqual(await cluster.scale(3), [0, 1, 2]);
    const state = JSON.parse(readFileSync(cluster.stateFile, 'utf8')) as ClusterState;
    assert.equal(state.engineSets.length, 3);
    assert.deepEqual(await cluster.scale(1), [0]);
    const after = JSON.parse(readFileSync(cluster.stateFile, 'utf8')) as ClusterState;
    assert.deepEqual(
      after.engineSets.map((s) => s.engines),
      [1],
    );
    const stopped = state.engineSets.filter((s) => s.id !== after.engineSets[0].id);
    assert.equal(stopped.length, 2);
    assert.ok(
      stopped.every((s) => !s.pids.some(isAlive)),
      'their SSH sessions ended',
    );
  });

  it('signals an engine through SSH by its pid on the host', async function () {
    this.timeout(90_000);
    const launcher = new SshLauncher(
      {
        profile: cluster.profile,
        clusterId: cluster.clusterId,
        clientFile: cluster.clientFile,
        engineFile: connectionFilePath('engine', cluster),
        logDir: join(profileDir(cluster.profile), 'log'),
        daemonize: false,
      },
      options(),
    );
    const [set] = await launcher.start(1);
    const rc = await cluster.connect();
    await until(() => rc.engineInfo.some((e) => e.engine_set === set.id), 'the engine to register');
    assert.equal(await launcher.status(set), 1);
    await launcher.signal(set, 'SIGTERM');
    await until(() => !set.pids.some(isAlive), 'the SSH session to end with the engine', 20_000);
    assert.equal(await launcher.status(set), 0);
    rc.close();
  });

  it('stops leaving no process behind, here or under sshd', async function () {
    this.timeout(90_000);
    const rc = await cluster.connect();
    const state = JSON.parse(readFileSync(cluster.stateFile, 'utf8')) as ClusterState;
    const pids = [
      state.controllerPid,
      ...state.engineSets.flatMap((s) => s.pids),
      ...rc.engineInfo.map((e) => e.pid),
    ];
    rc.close();
    await cluster.stop();
    assert.deepEqual(pids.filter(isAlive), []);
    await until(() => descendants(sshd.process.pid as number).length === 0, 'SSH sessions to end');
  });

  it('runs the controller on a host too, and stops it there', async function () {
    this.timeout(90_000);
    const before = descendants(sshd.process.pid as number);
    const remote = await Cluster.start({
      engines: 1,
      launcher: 'ssh',
      launcherOptions: { ...options(), controllerHost: sshd.host },
      controller: LAUNCHER_HEARTBEAT,
    });
    const started = descendants(sshd.process.pid as number).filter((p) => !before.includes(p));
    try {
      const rc = await remote.connect();
      const commands = started.map((pid) =>
        readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'),
      );
      assert.ok(
        commands.some((argv) => argv.includes('controller') && argv.includes(remote.clusterId)),
        'the controller runs under sshd',
      );
      assert.equal(await rc.loadBalancedView().apply((a: number) => a * 3, 7), 21);
      rc.close();
    } finally {
      await remote.stop();
    }
    await until(() => !started.some(isAlive), 'its SSH sessions to end');
  });

  it('refuses unknown options and missing hosts by name', async function () {
    this.timeout(90_000);
    await assert.rejects(
      Cluster.start({ launcher: 'ssh', launcherOptions: { hosts: ['h'], port: 22 } as never }),
      /unknown ssh launcher option port; its options are hosts, ssh, sshArgs, remoteDir, controllerHost, node, cli/,
    );
    await assert.rejects(
      Cluster.start({ launcher: 'ssh', launcherOptions: {} as never }),
      /ssh launcher option hosts must be a non-empty array of strings/,
    );
  });
});

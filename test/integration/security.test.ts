import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { join } from 'node:path';
import * as zmq from 'zeromq';
import { CLI } from '../../cluster/launchers/launcher';
import { Client } from '../../client/client';
import { Cluster } from '../../cluster/cluster';
import { profileDir, type ClientConnectionInfo } from '../../protocol/connection';
import { Session } from '../../protocol/session';
import { FAST_HEARTBEAT, figures, until, useCluster } from './fixture';

function controllerLog(cluster: Cluster): string {
  return readFileSync(
    join(profileDir(cluster.profile), 'log', `${cluster.clusterId}-controller.log`),
    'utf8',
  );
}

/**
 * A TCP relay in front of `target` that keeps every byte it carries, so a test can look for
 * plain text on the wire.
 */
async function tap(target: string): Promise<{ address: string; seen: Buffer[]; server: Server }> {
  const { hostname, port } = new URL(target.replace('tcp://', 'http://'));
  const seen: Buffer[] = [];
  const server = createServer((inbound) => {
    const outbound = connect(Number(port), hostname);
    inbound.on('data', (d) => seen.push(d));
    outbound.on('data', (d) => seen.push(d));
    inbound.pipe(outbound).pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const at = server.address();
  assert.ok(at && typeof at === 'object');
  return { address: `tcp://127.0.0.1:${at.port}`, seen, server };
}

/** Runs a task through a relay and says whether its marker crossed the wire as plain text. */
async function markerVisible(cluster: Cluster): Promise<boolean> {
  const info = JSON.parse(readFileSync(cluster.clientFile, 'utf8')) as ClientConnectionInfo;
  const relay = await tap(info.client);
  const file = cluster.clientFile.replace(/\.json$/, '-tapped.json');
  writeFileSync(file, JSON.stringify({ ...info, client: relay.address }), { mode: 0o600 });
  const rc = await Client.connect({ connectionFile: file });
  try {
    const marker = await rc.loadBalancedView().apply(() => ['MARKER', 'plain', 'text'].join('-'));
    assert.equal(marker, 'MARKER-plain-text');
    return Buffer.concat(relay.seen).includes('MARKER-plain-text');
  } finally {
    rc.close();
    relay.server.close();
  }
}

describe('messages that are not signed right, or replayed', () => {
  const t = useCluster(1);

  it('drops, counts and logs a replayed message, and never acts on it twice', async () => {
    const key = (JSON.parse(readFileSync(t.cluster.clientFile, 'utf8')) as { key: string }).key;
    assert.equal(key.length, 64, 'a 256-bit key, hex encoded');
    const insider = new Session(key);
    const peer = new zmq.Dealer({ linger: 0 });
    peer.connect(t.rc.connection.client);
    const count = insider.msg('execute_request', {
      code: 'globalThis.hits = (globalThis.hits ?? 0) + 1',
      silent: true,
      options: { balanced: false, targets: [0] },
    });
    const frames = insider.frames(count);
    await peer.send(frames);
    assert.equal(insider.receive(await peer.receive()).msg.header.msg_type, 'execute_reply');
    figures.faultsInjected += 3;
    for (let i = 0; i < 3; i++) await peer.send(frames); // captured and sent again
    await until(
      () => (controllerLog(t.cluster).match(/message replayed/g) ?? []).length === 3,
      'the controller to log three replays',
    );
    peer.close();
    assert.match(controllerLog(t.cluster), /dropped a message on the client socket \(3 replays/);
    const [hits] = await t.rc.directView(0).execute('hits');
    assert.equal(hits.result, '1');
  });

  it('drops, counts and logs a message with a wrong or missing signature', async () => {
    const peer = new zmq.Dealer({ linger: 0 });
    peer.connect(t.rc.connection.client);
    for (const key of ['a wrong key', '']) {
      const s = new Session(key);
      await peer.send(s.frames(s.msg('shutdown_request', { hub: true, targets: null })));
      figures.faultsInjected++;
    }
    await until(
      () => / 2 bad signatures/.test(controllerLog(t.cluster)),
      'the controller to log two bad signatures',
    );
    peer.close();
    assert.deepEqual(await t.rc.directView().apply(() => 'still up'), ['still up']);
  });
});

describe('CurveZMQ encryption', () => {
  let plain: Cluster;
  let curve: Cluster;

  before(async function () {
    this.timeout(60_000);
    plain = await Cluster.start({ engines: 1, controller: FAST_HEARTBEAT });
    curve = await Cluster.start({ engines: 1, controller: { ...FAST_HEARTBEAT, curve: true } });
  });

  after(async function () {
    this.timeout(30_000);
    await Promise.all([plain?.stop(), curve?.stop()]);
  });

  it('puts the public key in 0600 connection files and hides task data on the wire', async () => {
    const info = JSON.parse(readFileSync(curve.clientFile, 'utf8')) as ClientConnectionInfo;
    assert.match(info.curve_serverkey ?? '', /^.{40}$/);
    assert.equal(statSync(curve.clientFile).mode & 0o777, 0o600);
    assert.equal(await markerVisible(plain), true, 'without CURVE the relay reads the task');
    assert.equal(await markerVisible(curve), false, 'with CURVE it reads nothing');
  });

  it('refuses to listen beyond loopback without CURVE unless --insecure, saying why', () => {
    const run = spawnSync(process.execPath, [CLI, 'controller', '--ip', '0.0.0.0'], {
      encoding: 'utf8',
    });
    assert.equal(run.status, 2);
    assert.match(
      run.stderr,
      /refusing to listen on 0\.0\.0\.0 without encryption.*--curve.*--insecure/,
    );
  });
});

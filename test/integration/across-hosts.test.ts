/**
 * Hosts simulated with network namespaces: the controller in one, an engine in each of two
 * others, joined by veth links through a bridge, over real TCP with CURVE on. The 10.231.0.0/24
 * addresses exist only inside the namespaces this test creates, and it deletes them after.
 * Needs root (CAP_NET_ADMIN) and iproute2.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CLI } from '../../cluster/launchers/launcher';
import { connectionFilePath } from '../../protocol/connection';
import { figures, until } from './fixture';

const DRIVER = join(__dirname, 'netns-driver.js');
const tag = `tsp${process.pid % 100000}`;
const ns = { controller: `${tag}c`, a: `${tag}a`, b: `${tag}b` };
const CONTROLLER_IP = '10.231.0.1';

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** The controller's namespace holds a bridge; each engine's namespace a veth link to it. */
function buildNetwork(): void {
  for (const n of Object.values(ns)) {
    ip('netns', 'add', n);
    ip('-n', n, 'link', 'set', 'lo', 'up');
  }
  const c = ns.controller;
  ip('-n', c, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', c, 'addr', 'add', `${CONTROLLER_IP}/24`, 'dev', 'br0');
  ip('-n', c, 'link', 'set', 'br0', 'up');
  for (const [host, last] of [
    ['a', 2],
    ['b', 3],
  ] as const) {
    const link = `v${host}`;
    ip('-n', c, 'link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns[host]);
    ip('-n', c, 'link', 'set', link, 'master', 'br0');
    ip('-n', c, 'link', 'set', link, 'up');
    ip('-n', ns[host], 'addr', 'add', `10.231.0.${last}/24`, 'dev', 'eth0');
    ip('-n', ns[host], 'link', 'set', 'eth0', 'up');
  }
}

function removeNetwork(): void {
  for (const n of Object.values(ns)) {
    try {
      ip('netns', 'del', n);
    } catch {
      // Not created, or gone already.
    }
  }
}

function inNamespace(n: string, args: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', n, process.execPath, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

describe('a cluster across hosts (network namespaces, TCP, CURVE)', function () {
  const children: ChildProcess[] = [];

  /** A controller in its namespace, listening on the bridge; resolves with its client file. */
  async function startController(
    clusterId: string,
    flags: string[],
  ): Promise<{ controller: ChildProcess; clientFile: string; info: Record<string, string> }> {
    const controller = inNamespace(ns.controller, [
      CLI,
      'controller',
      '--ip',
      CONTROLLER_IP,
      '--cluster-id',
      clusterId,
      ...flags,
    ]);
    children.push(controller);
    const clientFile = connectionFilePath('client', { clusterId });
    await until(
      () => existsSync(clientFile) || controller.exitCode !== null,
      'the controller',
      30_000,
    );
    assert.equal(controller.exitCode, null, 'the controller runs');
    const info = JSON.parse(readFileSync(clientFile, 'utf8')) as Record<string, string>;
    assert.match(info.client, /^tcp:\/\/10\.231\.0\.1:/);
    return { controller, clientFile, info };
  }

  before(function () {
    if (process.getuid?.() !== 0) this.skip(); // creating namespaces needs root
    removeNetwork();
    buildNetwork();
  });

  after(function () {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    removeNetwork();
  });

  it('fails over when a link is cut, and takes the engine back when it returns', async function () {
    this.timeout(120_000);
    const where = { clusterId: tag };
    const flags = ['--curve', '--heartbeat-period', '200', '--heartbeat-deadline', '3000'];
    const { info, clientFile } = await startController(where.clusterId, flags);
    assert.ok(info.curve_serverkey);

    const engines = [ns.a, ns.b].map((n) =>
      inNamespace(n, [CLI, 'engine', '--file', connectionFilePath('engine', where)]),
    );
    children.push(...engines);
    const [pidA, pidB] = engines.map((e) => String(e.pid));

    const driver = inNamespace(ns.controller, [DRIVER, clientFile, 'va', pidA, pidB]);
    children.push(driver);
    let out = '';
    let err = '';
    driver.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    driver.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise((resolve) => driver.on('exit', resolve));
    assert.equal(code, 0, err);
    const seen = JSON.parse(out) as {
      pidsBefore: number[];
      droppedReason: string;
      ranOn: number[];
      idA: number;
      newId: number;
      again: number;
      expected: number[];
    };
    figures.faultsInjected++;
    figures.tasksSubmitted += 20 + 2 + 1;
    assert.deepEqual(seen.pidsBefore, [...seen.expected].sort(), 'both engines worked');
    assert.match(seen.droppedReason, /no heartbeat/);
    assert.deepEqual(seen.ranOn, [seen.expected[1], seen.expected[1]], 'both ran on engine B');
    assert.ok(seen.newId > seen.idA, 'engine A came back under a new id');
    assert.equal(seen.again, seen.expected[0], 'and works');
  });

  it('frees the values of a client whose host vanishes, within --client-deadline', async function () {
    this.timeout(60_000);
    const deadline = 3000;
    const clusterId = `${tag}-gone`;
    const { clientFile } = await startController(clusterId, [
      '--curve',
      '--client-deadline',
      String(deadline),
    ]);
    const engineFile = connectionFilePath('engine', { clusterId });
    children.push(inNamespace(ns.b, [CLI, 'engine', '--file', engineFile]));
    const client = JSON.stringify(join(__dirname, '../../client/client'));
    const connect = `const rc = await require(${client}).Client.connect({ connectionFile: ${JSON.stringify(clientFile)}, timeout: 30_000 });`;
    /** Runs `code` with a client (`rc`) in namespace `n`; returns the lines it prints, in turn. */
    const run = (n: string, code: string): (() => Promise<string>) => {
      const child = inNamespace(n, ['-e', `(async () => { ${connect} ${code} })();`]);
      children.push(child);
      let err = '';
      child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })[
        Symbol.asyncIterator
      ]();
      return async () => {
        const { value, done } = await lines.next();
        if (done) throw new Error(`the client in ${n} exited (${child.exitCode}): ${err}`);
        return value as string;
      };
    };
    // A client on host a makes a value its engine on host b keeps, then host a drops off.
    const maker = run(
      ns.a,
      `await rc.waitForEngines(1);
      const ar = rc.loadBalancedView().apply(() => new Float64Array(200_000).fill(1));
      await ar;
      process.stdout.write(ar.msgIds[0] + '\\n');`,
    );
    const msgId = await maker();
    const watcher = run(
      ns.controller,
      `const id = ${JSON.stringify(msgId)};
      if ((await rc.result(id)).valueDropped) throw new Error('freed while its client lived');
      process.stdout.write('watching\\n');
      while (!(await rc.result(id)).valueDropped) await new Promise((r) => setTimeout(r, 100));
      process.stdout.write('freed\\n');`,
    );
    assert.equal(await watcher(), 'watching');
    ip('-n', ns.controller, 'link', 'set', 'va', 'down');
    try {
      const late = new Promise((resolve) => setTimeout(() => resolve('kept'), deadline + 3000));
      assert.equal(await Promise.race([watcher(), late]), 'freed', 'freed within the deadline');
    } finally {
      ip('-n', ns.controller, 'link', 'set', 'va', 'up');
    }
  });

  it('listens beyond loopback without CURVE only when told --insecure', async function () {
    this.timeout(60_000);
    const { info, controller } = await startController(`${tag}-insecure`, ['--insecure']);
    assert.equal(info.curve_serverkey, undefined);
    controller.kill('SIGKILL');
  });
});

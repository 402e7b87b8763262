/**
 * Values of 256 KiB or more between a client and the engines of its host travel through files in
 * /dev/shm, byte-exact, and no file outlives the processes that could read or free it. Segments
 * are watched as they appear (inotify), and listed by the pids their names carry.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zmq from 'zeromq';
import { Client } from '../../client/client';
import { Cluster } from '../../cluster/cluster';
import { CLI } from '../../cluster/launchers/launcher';
import { connectionFilePath } from '../../protocol/connection';
import { ProtocolError } from '../../protocol/errors';
import { SHARED_MEMORY_THRESHOLD } from '../../protocol/shared-memory';
import { Session } from '../../protocol/session';
import { FAST_HEARTBEAT, figures, finalRecord, isAlive, until, useCluster } from './fixture';

const SHM = '/dev/shm';
const MB = 1024 * 1024;
const SEGMENT = /^tsparallel-[0-9a-f]{12}-(\d+)-(\d+)-[0-9a-f]{16}$/;

/** Segments whose creator or reader is one of `pids`. */
function segmentsOf(pids: number[]): string[] {
  return readdirSync(SHM).filter((n) => {
    const m = SEGMENT.exec(n);
    return m !== null && (pids.includes(Number(m[1])) || pids.includes(Number(m[2])));
  });
}

/** Every segment name that appears in /dev/shm from now on. */
function watchSegments(): { names: Set<string>; watcher: FSWatcher } {
  const names = new Set<string>();
  const watcher = watch(SHM, (_event, name) => {
    if (name !== null && SEGMENT.test(name)) names.add(name);
  });
  return { names, watcher };
}

/** A segment from `creator` to `reader` (0: freed by its creator) among `names`. */
function hasSegment(names: Iterable<string>, creator: number, reader: number): boolean {
  return [...names].some((n) => n.includes(`-${creator}-${reader}-`));
}

/** Resolves once no segment of `pids` is left: each waits a moment to be reused, no longer. */
async function untilFreed(pids: number[]): Promise<void> {
  await until(() => segmentsOf(pids).length === 0, 'the segments to be freed', 10_000);
}

/** Distinct, position-dependent bytes, so that a misplaced frame cannot compare equal. */
function pattern(bytes: number, seed: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i + 4 <= bytes; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return b;
}

describe('large values through shared memory on one host', () => {
  const t = useCluster(1);
  let enginePid: number;
  before(() => {
    enginePid = t.rc.engineInfo[0].pid;
  });

  it('pushes and pulls typed arrays, Buffers and nested values byte-exact', async () => {
    const floats = new Float64Array(3 * MB).map((_, i) => i * 0.5);
    const buf = pattern(2 * MB + 3, 1);
    const nested = {
      ints: new Int32Array(pattern(MB, 2).buffer.slice(0)),
      raw: pattern(MB, 3).buffer.slice(0),
      list: [new Uint8Array(pattern(MB + 1, 4)), 'text', { deep: new BigInt64Array(MB / 8) }],
      small: new Uint16Array([1, 2, 3]),
    };
    const dv = t.rc.directView(0);
    const seen = watchSegments();
    try {
      await dv.push({ floats, buf, nested });
      await until(() => hasSegment(seen.names, process.pid, 0), 'the pushed value in /dev/shm');
      const [back] = await dv.pull<[Float64Array, Buffer, typeof nested]>([
        'floats',
        'buf',
        'nested',
      ]);
      await until(
        () => hasSegment(seen.names, enginePid, process.pid),
        'the pulled value in /dev/shm',
      );
      assert.deepEqual(back, [floats, buf, nested]);
      assert.ok(Buffer.isBuffer(back[1]), 'a Buffer comes back a Buffer');
    } finally {
      seen.watcher.close();
    }
    await untilFreed([process.pid, enginePid]);
  });

  it('brings a pulled value its engine keeps with the reply, where an apply result waits to be fetched', async () => {
    const big = pattern(2 * MB, 11);
    const dv = t.rc.directView(0);
    await dv.push({ big });
    const pulled = dv.pull<Buffer>('big');
    await until(() => pulled.ready(), 'the pull to finish');
    // Released before awaited: a value left to fetch would fail with ReleasedError.
    pulled.release();
    assert.deepEqual(await pulled, [big]);
    // An apply's kept result is fetched when awaited, as before.
    const applied = dv.apply(() => (globalThis as unknown as { big: Buffer }).big);
    await until(() => applied.ready(), 'the apply to finish');
    applied.release();
    await assert.rejects(async () => await applied, { name: 'ReleasedError' });
    await untilFreed([process.pid, enginePid]);
  });

  it('starts local engines with glibc keeping freed heap pages for the next value', async () => {
    const [tunables] = await t.rc.directView(0).apply(() => process.env.GLIBC_TUNABLES ?? '');
    const settings = tunables.split(':');
    for (const s of ['hugetlb=1', `mmap_threshold=${32 * MB}`, `trim_threshold=${128 * MB}`]) {
      assert.ok(settings.includes(`glibc.malloc.${s}`), `${s} in ${tunables}`);
    }
  });

  it('passes apply arguments and results through it, and frees them', async () => {
    const arg = new Float32Array(MB).map((_, i) => i);
    const seen = watchSegments();
    try {
      const [sum] = await t.rc
        .directView(0)
        .apply((a: Float32Array, scale: number) => a.map((x) => x * scale), arg, 2);
      await until(() => hasSegment(seen.names, process.pid, 0), 'the argument in /dev/shm');
      await until(() => hasSegment(seen.names, enginePid, process.pid), 'the result in /dev/shm');
      assert.deepEqual(
        sum,
        arg.map((x) => x * 2),
      );
      const [lb] = await t.rc.loadBalancedView().map((a: Uint8Array) => a.length, [pattern(MB, 5)]);
      assert.equal(lb, MB);
    } finally {
      seen.watcher.close();
    }
    await untilFreed([process.pid, enginePid]);
  });

  it('keeps values under 256 KiB on the socket, as before', async () => {
    const seen = watchSegments();
    const small = pattern(SHARED_MEMORY_THRESHOLD - 64, 6);
    const ar = t.rc.directView(0).apply((b: Buffer) => b, small);
    const [back] = await ar;
    seen.watcher.close();
    assert.deepEqual(back, small);
    // The controller holds what crossed the socket; a value through shared memory never does.
    const record = await finalRecord(t.rc, ar.msgIds[0]);
    assert.deepEqual(record.value, small);
    assert.deepEqual([...seen.names], []);
  });

  it('sends arguments of 256 KiB to 1 MB through shared memory, and their result in the reply', async () => {
    const seen = watchSegments();
    const middle = pattern(MB / 2, 10);
    const ar = t.rc.directView(0).apply((b: Buffer) => b, middle);
    const [back] = await ar;
    seen.watcher.close();
    assert.deepEqual(back, middle);
    assert.ok(hasSegment(seen.names, process.pid, 0), 'the arguments went through a segment');
    // A result under 1 MB is not kept on its engine: the controller holds it.
    assert.deepEqual((await finalRecord(t.rc, ar.msgIds[0])).value, middle);
    await untilFreed([process.pid, enginePid]);
  });

  it('goes on the socket for a client that turns it off', async () => {
    const rc = await t.cluster.connect({ sharedMemory: false });
    try {
      const big = pattern(2 * MB, 7);
      const ar = rc.directView(0).apply((b: Buffer) => b, big);
      assert.deepEqual(await ar, [big]);
      // A result this large stays on its engine, where rc.result fetches it.
      assert.deepEqual((await finalRecord(rc, ar.msgIds[0])).value, big);
    } finally {
      rc.close();
    }
  });

  it('refuses a signed message naming a file outside the pattern, and says why', async () => {
    const { key } = JSON.parse(readFileSync(t.cluster.clientFile, 'utf8')) as { key: string };
    const insider = new Session(key);
    const peer = new zmq.Dealer({ linger: 0 });
    peer.connect(t.rc.connection.client);
    try {
      for (const name of [
        '../../etc/passwd',
        '/etc/passwd',
        `tsparallel-${'0'.repeat(12)}-1-0-${'a'.repeat(16)}`,
      ]) {
        const forged = insider.msg(
          'apply_request',
          {
            source: '(x) => x',
            mode: 'call',
            refs: [],
            options: { balanced: false, targets: [0] },
          },
          { metadata: { shm_segment: { name, lengths: [4] } } },
        );
        await peer.send(insider.frames(forged));
        figures.faultsInjected++;
        const reply = insider.receive(await peer.receive()).msg;
        assert.equal(reply.header.msg_type, 'apply_reply');
        const content = reply.content as { status: string; ename?: string; evalue?: string };
        assert.equal(content.status, 'error');
        assert.equal(content.ename, new ProtocolError('').name);
        assert.match(content.evalue ?? '', /refusing to read shared memory/);
      }
    } finally {
      peer.close();
    }
    assert.deepEqual(await t.rc.directView(0).apply(() => 'still serving'), ['still serving']);
  });

  it('gives rc.result the value its engine keeps, and tells rc.resubmit the controller never held the arguments', async () => {
    const ar = t.rc.directView(0).apply((b: Buffer) => b, pattern(MB, 8));
    await ar;
    // The engine tells the hub of a direct task's reply after the client has it.
    const completed = async (): Promise<boolean> =>
      (await t.rc.result(ar.msgIds[0])).state === 'completed';
    await until(completed, 'the hub to hear of the reply');
    const record = await t.rc.result(ar.msgIds[0]);
    assert.deepEqual([record.value, record.valueDropped], [pattern(MB, 8), false]);
    ar.release();
    await until(
      async () => (await t.rc.result(ar.msgIds[0])).valueDropped,
      'the value to be freed',
    );
    await assert.rejects(async () => await t.rc.resubmit(ar.msgIds), {
      name: 'UnknownTaskError',
      message: /its arguments .* shared memory/,
    });
  });
});

describe('shared memory left by killed processes', () => {
  let cluster: Cluster;
  let rc: Client;
  const children: ChildProcess[] = [];

  before(async function () {
    this.timeout(30_000);
    cluster = await Cluster.start({ engines: 2, controller: FAST_HEARTBEAT });
    rc = await cluster.connect();
  });

  after(async function () {
    this.timeout(30_000);
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rc.close();
    await cluster.stop();
  });

  /** A client in a process of its own that sends `code`'s task and prints `sent` once it did. */
  function clientProcess(code: string): Promise<ChildProcess> {
    const script = `
      const { Client } = require(${JSON.stringify(join(__dirname, '../../client/client'))});
      (async () => {
        const rc = await Client.connect({ connectionFile: ${JSON.stringify(cluster.clientFile)} });
        ${code}
        // Tasks go out at the end of the turn they were made in.
        await new Promise((r) => setImmediate(r));
        process.stdout.write('sent\\n');
      })();`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    return new Promise((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => d.toString().includes('sent') && resolve(child));
      child.on('exit', (c) => reject(new Error(`the client process exited (${c})`)));
    });
  }

  it('reruns a task whose engine died on the arguments it left in shared memory', async function () {
    this.timeout(30_000);
    const marker = join(tmpdir(), `tsp-shm-retry-${process.pid}`);
    await rc
      .directView()
      .execute(
        "globalThis.dieOnce = (m) => { const fs = require('node:fs'); if (!fs.existsSync(m)) " +
          "{ fs.writeFileSync(m, ''); process.kill(process.pid, 'SIGKILL'); } }",
      );
    const big = pattern(2 * MB, 9);
    try {
      const back = await rc
        .loadBalancedView()
        .withOptions({ retries: 1 })
        .apply(
          (b: Buffer, m: string) => {
            (globalThis as unknown as { dieOnce(m: string): void }).dieOnce(m);
            return b;
          },
          big,
          marker,
        );
      figures.faultsInjected++;
      assert.deepEqual(back, big);
    } finally {
      rmSync(marker, { force: true });
    }
    await until(() => rc.ids.length === 1, 'the dead engine to leave');
    await cluster.addEngines(1);
    await rc.waitForEngines(2);
  });

  it('sweeps what a killed client left, at the next client start', async function () {
    this.timeout(30_000);
    const { id } = rc.engineInfo[0];
    // The engine is busy until the file `done` exists, so the pushed value waits in /dev/shm.
    const done = join(tmpdir(), `tsp-shm-busy-${process.pid}`);
    const busy = rc.directView(id).apply(async (file: string) => {
      const fs = process.getBuiltinModule('node:fs');
      while (!fs.existsSync(file)) await new Promise((r) => setTimeout(r, 10));
    }, done);
    const pusher = await clientProcess(
      `rc.directView(${id}).push({ big: new Float64Array(${MB}) });`,
    );
    const pid = pusher.pid as number;
    try {
      assert.equal(segmentsOf([pid]).length, 1, 'the pushed value waits in /dev/shm');
      pusher.kill('SIGKILL');
      await new Promise((r) => pusher.once('exit', r));
      figures.faultsInjected++;
    } finally {
      writeFileSync(done, '');
    }
    await busy;
    rmSync(done);
    // And a reader that asked for a result kept on the engine, and never read the answer (its
    // event loop spins by then: the engine answers once a blocking task lets it), leaves the
    // engine's segment behind when killed.
    const puller = await clientProcess(
      `const ar = rc.directView(${id}).apply(() => new Uint8Array(${2 * MB}));
       await ar.wait();
       void rc.directView(${id}).apply(() => { const end = Date.now() + 1500; while (Date.now() < end); });
       await new Promise((r) => setTimeout(r, 300));
       void ar.get();
       await new Promise((r) => setImmediate(r));
       process.stdout.write('sent\\n');
       for (;;);`,
    );
    const readerPid = puller.pid as number;
    await until(() => segmentsOf([readerPid]).length === 1, 'the result for the reader');
    puller.kill('SIGKILL');
    await new Promise((r) => puller.once('exit', r));
    figures.faultsInjected++;
    (await Client.connect({ connectionFile: cluster.clientFile })).close();
    assert.deepEqual(segmentsOf([pid, readerPid]), []);
  });

  it('leaves nothing of a killed engine after cluster.stop()', async function () {
    this.timeout(30_000);
    const [engine] = rc.engineInfo;
    // Its result written, the engine dies before the client reads it.
    const ar = rc.directView(engine.id).apply(() => {
      setImmediate(() => process.kill(process.pid, 'SIGKILL'));
      return new Uint8Array(2 * 1024 * 1024);
    });
    await ar.then(
      () => undefined,
      () => undefined,
    );
    figures.faultsInjected++;
    await until(() => !isAlive(engine.pid), 'the engine to die');
    await cluster.stop();
    assert.deepEqual(segmentsOf([engine.pid, process.pid]), []);
  });
});

describe('an engine that sees other shared memory (another host)', () => {
  const t = useCluster(0);
  let remote: ChildProcess | undefined;

  before(function () {
    if (process.getuid?.() !== 0) this.skip(); // a mount namespace needs root
  });

  after(() => {
    if (remote?.exitCode === null) remote.kill('SIGKILL');
  });

  it('gets large values through the socket', async function () {
    this.timeout(30_000);
    // A /dev/shm of its own, as on another machine: a mount namespace with a fresh tmpfs there.
    const { clusterId, profile } = t.cluster;
    const file = connectionFilePath('engine', { clusterId, profile });
    remote = spawn(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        `mount -t tmpfs tmpfs ${SHM} && exec "$0" "$@"`,
        process.execPath,
        CLI,
        'engine',
        '--file',
        file,
      ],
      { stdio: 'ignore' },
    );
    await t.rc.waitForEngines(1);
    const [info] = t.rc.engineInfo;
    assert.equal(info.pid, remote.pid, 'unshare execs the engine in its own process');
    const seen = watchSegments();
    try {
      const big = new Float64Array(MB).map((_, i) => i);
      const dv = t.rc.directView(info.id);
      await dv.push({ big });
      const [back] = await dv.apply((b: Float64Array) => b, big);
      assert.deepEqual(back, big);
      assert.deepEqual(await dv.pull('big'), [big]);
    } finally {
      seen.watcher.close();
    }
    assert.deepEqual([...seen.names], [], 'nothing went through this host’s /dev/shm');
  });
});

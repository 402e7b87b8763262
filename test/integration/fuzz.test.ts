import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import * as zmq from 'zeromq';
import { CLI } from '../../cluster/launchers/launcher';
import type { ClusterState } from '../../cluster/cluster';
import {
  connectionFilePath,
  newKey,
  profileDir,
  writeConnectionFile,
} from '../../protocol/connection';
import { isMsg } from '../../protocol/messages';
import { encodeValue } from '../../protocol/serialize';
import { BATCH_DELIMITER, DELIMITER, Session, type Frame } from '../../protocol/session';
import { figures, isAlive, useCluster } from './fixture';
import { delivered } from '../delivered';

/** Fixed, so that a failure can be replayed; fast-check prints it with the failing case. */
const SEED = 20261125;

/** Message types a fuzzed message may claim. Requests that stop processes are left out: a
 * peer holding the key may rightly send those, and they would end the test's cluster. */
const TYPES = [
  'apply_request',
  'execute_request',
  'apply_reply',
  'execute_reply',
  'registration_request',
  'registration_reply',
  'unregistration_request',
  'heartbeat',
  'stream',
  'queue_status_request',
  'abort_request',
  'result_request',
  'resubmit_request',
  'connection_request',
  'signal_request',
  'no_such_request',
];

const bytes = fc.uint8Array({ maxLength: 48 }).map((a) => Buffer.from(a));

/** v8 value bodies that declare far more than they hold: huge strings, arrays, transfers. */
const hugeDeclared = fc
  .tuple(
    fc.constantFrom(0x22, 0x41, 0x61, 0x42, 0x5c),
    fc.integer({ min: 2 ** 20, max: 2 ** 32 - 1 }),
  )
  .map(([tag, n]) => {
    const varint: number[] = [];
    for (let v = n; ; v = Math.floor(v / 128)) {
      if (v < 128) {
        varint.push(v);
        break;
      }
      varint.push(v % 128 | 128);
    }
    return Buffer.from([0xff, 0x0f, ...(tag === 0x5c ? varint : [0]), tag, ...varint]);
  });

/** How a fuzzed message or batch is signed: right, with another key, or not at all. */
type Signing = 'key' | 'wrong' | 'none';

/** The signature frame of `parts` signed as `signing` says. */
function signature(signing: Signing, key: string, parts: Frame[]): Buffer {
  if (signing === 'none') return Buffer.alloc(0);
  const hmac = createHmac('sha256', signing === 'wrong' ? 'not the key' : key);
  for (const p of parts) hmac.update(p);
  return Buffer.from(hmac.digest('hex'));
}

/** A multipart message as a broken or malicious peer might send it. */
function malformed(key: string): fc.Arbitrary<Buffer[]> {
  const raw = fc.array(fc.oneof(bytes, fc.constant(DELIMITER), fc.constant(BATCH_DELIMITER)), {
    minLength: 1,
    maxLength: 10,
  });
  const header = fc.record(
    {
      msg_id: fc.oneof(fc.uuid(), fc.jsonValue()),
      msg_type: fc.oneof(fc.constantFrom(...TYPES), fc.string()),
      session: fc.oneof(fc.uuid(), fc.jsonValue()),
      username: fc.string(),
      date: fc.oneof(
        fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        fc.jsonValue(),
      ),
      version: fc.constantFrom('5.3', ''),
    },
    { requiredKeys: [] },
  );
  const json = (a: fc.Arbitrary<unknown>): fc.Arbitrary<Buffer> =>
    fc.oneof(
      a.map((v) => Buffer.from(JSON.stringify(v) ?? 'undefined')),
      fc.string().map((s) => Buffer.from(s)), // mostly not JSON
    );
  const content = fc.oneof(
    fc.jsonValue(),
    fc.object(),
    fc.record({ msg_ids: fc.array(fc.jsonValue()), msg_id: fc.jsonValue() }),
    fc.record({
      source: fc.oneof(fc.string(), fc.constant('(x) => x')),
      mode: fc.constantFrom('call', 'map', 'other'),
      refs: fc.array(fc.integer()),
      options: fc.record({
        balanced: fc.boolean(),
        targets: fc.array(fc.integer({ min: -1, max: 3 })),
      }),
    }),
  );
  const structured = fc
    .record({
      ids: fc.array(bytes, { maxLength: 2 }),
      parts: fc.tuple(json(header), json(fc.jsonValue()), json(fc.jsonValue()), json(content)),
      buffers: fc.array(fc.oneof(bytes, hugeDeclared), { maxLength: 3 }),
      signing: fc.constantFrom<Signing>('key', 'wrong', 'none'),
      keep: fc.integer({ min: 0, max: 7 }),
    })
    .map(({ ids, parts, buffers, signing, keep }) => {
      const frames = [...ids, DELIMITER, signature(signing, key, parts), ...parts, ...buffers];
      // Wrong frame counts: sometimes cut the message short.
      return keep < 6 ? frames.slice(0, ids.length + 1 + keep) : frames;
    });
  // Several of them as one batch, its layout sometimes off by a byte, the batch signed (or not)
  // after that: a batch signed right has its messages' signatures taken for verified.
  const batched = fc
    .record({
      ids: fc.array(bytes, { maxLength: 2 }),
      messages: fc.array(structured, { minLength: 1, maxLength: 4 }),
      skew: fc.constantFrom(0, 0, -1, 1),
      signing: fc.constantFrom<Signing>('key', 'key', 'wrong', 'none'),
    })
    .map(({ ids, messages, skew, signing }) => {
      const bodies = messages.map((m) => m.slice(m.findIndex((f) => f.equals(DELIMITER))));
      const frames = new Session(key).batch(ids, bodies);
      // The layout: each message's frame lengths, `,` between frames and `;` between messages.
      const at = ids.length + 2;
      const layout = String(frames[at])
        .split(';')
        .map((m) => m.split(',').map(Number));
      layout[0][0] += skew;
      frames[at] = layout.map((m) => m.join(',')).join(';');
      frames[at - 1] = signature(signing, key, [frames[at], frames[at + 1]]);
      return delivered(frames);
    });
  return fc.oneof(raw, structured, structured, batched);
}

/** Kilobytes of resident memory of process `pid`. */
function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1]);
}

/** Sends `runs` fuzzed messages through `send`, checking `alive` every few hundred. */
async function fuzz(
  key: string,
  runs: number,
  send: (frames: Buffer[]) => Promise<void>,
  alive: () => Promise<void>,
): Promise<void> {
  let n = 0;
  await fc.assert(
    fc.asyncProperty(malformed(key), async (frames) => {
      await send(frames);
      figures.fuzzCases++;
      if (++n % 250 === 0) await alive();
    }),
    { numRuns: runs, seed: SEED, endOnFailure: true },
  );
}

describe('fuzzing the controller: malformed multipart messages on every socket', () => {
  // Slow beats: the test must not depend on how busy the machine keeps the engine.
  const t = useCluster(1, { heartbeatPeriod: 500, heartbeatDeadline: 30_000 });

  it('survives thousands of them with no crash, hang or memory growth, and serves on', async function () {
    this.timeout(10 * 60_000);
    const state = JSON.parse(readFileSync(t.cluster.stateFile, 'utf8')) as ClusterState;
    const client = JSON.parse(readFileSync(state.clientFile, 'utf8')) as Record<string, string>;
    const engine = JSON.parse(readFileSync(state.engineFile, 'utf8')) as Record<string, string>;
    const alive = async (): Promise<void> => {
      assert.deepEqual(await t.rc.directView(0).apply((x: number) => x + 1, 1), [2]);
    };
    const peers = [client.client, engine.engine, engine.heartbeat].map((address) => {
      const peer = new zmq.Dealer({ linger: 0, sendHighWaterMark: 0 });
      peer.connect(address);
      return peer;
    });
    const round = (runs: number): Promise<void[]> =>
      Promise.all(peers.map((p) => fuzz(client.key, runs, (f) => p.send(f), alive)));
    await round(300); // warm up: the first cases grow caches and JIT code
    const before = rssKb(state.controllerPid);
    await round(1500);
    const grown = rssKb(state.controllerPid) - before;
    for (const p of peers) p.close();
    assert.ok(isAlive(state.controllerPid));
    assert.ok(grown < 64 * 1024, `the controller grew by ${grown} kB`);
    await alive();
    assert.deepEqual(t.rc.ids, [0], 'no stray engine registered');
    // The cases reached both checks: signatures, and the shape of signed messages.
    const log = readFileSync(
      join(profileDir(t.cluster.profile), 'log', `${t.cluster.clusterId}-controller.log`),
      'utf8',
    );
    for (const socket of ['client', 'engine', 'heartbeat']) {
      const counts = [
        ...log.matchAll(
          new RegExp(
            `on the ${socket} socket \\((\\d+) replays, (\\d+) bad signatures, (\\d+) malformed`,
            'g',
          ),
        ),
      ].at(-1);
      assert.ok(
        counts && Number(counts[2]) > 100 && Number(counts[3]) > 100,
        `${socket}: ${counts?.[0]}`,
      );
    }
    assert.match(log, /batch's layout .* does not split/, 'no broken batch was refused');
  });
});

describe('fuzzing an engine: malformed messages on its task and control sockets', () => {
  let engine: ChildProcess;
  const tasks = new zmq.Router({ linger: 0, sendHighWaterMark: 0 });
  const control = new zmq.Router({ linger: 0, sendHighWaterMark: 0 });
  const key = newKey();
  const session = new Session(key);
  let identity: Buffer;

  before(async function () {
    this.timeout(30_000);
    // The test plays the controller, so that it can send the engine anything.
    await tasks.bind('tcp://127.0.0.1:*');
    await control.bind('tcp://127.0.0.1:*');
    const file = connectionFilePath('engine', { clusterId: 'fuzz' });
    await writeConnectionFile(file, {
      key,
      signature_scheme: 'hmac-sha256',
      cluster_id: 'fuzz',
      engine: tasks.lastEndpoint,
      heartbeat: control.lastEndpoint,
    });
    engine = spawn(process.execPath, [CLI, 'engine', '--file', file, '--exit-with-parent'], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    const request = session.receive(await tasks.receive()).msg;
    assert.ok(isMsg(request, 'registration_request'));
    identity = request.identities[0];
    await tasks.send(
      delivered(
        session.frames(
          session.msg(
            'registration_reply',
            { status: 'ok', id: 0, heartbeat_period: 100, heartbeat_deadline: 600 },
            { parent: request.header, identities: [identity] },
          ),
        ),
      ),
    );
    void (async () => {
      // Answer beats as a controller would; ignore everything else the engine says here.
      for await (const [from] of control) {
        if (!control.closed)
          await control.send(
            delivered(session.frames(session.msg('heartbeat', {}, { identities: [from] }))),
          );
      }
    })().catch(() => undefined);
  });

  after(() => {
    engine?.kill('SIGKILL');
    tasks.close();
    control.close();
  });

  /** A well-formed task, answered with its value. */
  async function roundTrip(): Promise<void> {
    const msg = session.msg(
      'apply_request',
      {
        source: '(x) => x * 2',
        mode: 'call',
        refs: [],
        options: { balanced: false, targets: [0] },
      },
      { identities: [identity], buffers: encodeValue([21]) },
    );
    await tasks.send(session.frames(msg));
    for (;;) {
      const reply = session.receive(await tasks.receive()).msg;
      if (isMsg(reply, 'apply_reply') && reply.parent_header.msg_id === msg.header.msg_id) {
        assert.equal(reply.content.status, 'ok');
        return;
      }
    }
  }

  it('survives thousands of them and runs the next task', async function () {
    this.timeout(10 * 60_000);
    await roundTrip();
    const pid = engine.pid as number;
    const send = (socket: zmq.Router) => (frames: Buffer[]) => socket.send([identity, ...frames]);
    await fuzz(key, 200, send(tasks), roundTrip);
    const before = rssKb(pid);
    await fuzz(key, 1000, send(tasks), roundTrip);
    await fuzz(key, 1000, send(control), roundTrip);
    const grown = rssKb(pid) - before;
    assert.ok(isAlive(pid));
    assert.ok(grown < 64 * 1024, `the engine grew by ${grown} kB`);
    await roundTrip();
  });
});

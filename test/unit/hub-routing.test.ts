import assert from 'node:assert/strict';

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HUB_ERROR, Hub, type HubOptions, type HubOutlet } from '../../controller/hub';
import { SETTLE_MS } from '../../controller/task-dispatcher';
import Database from 'better-sqlite3';
import { SqliteTaskRecords } from '../../controller/sqlite-task-records';
import type {
  ContentMap,
  ErrorContent,
  IMessage,
  Message,
  MsgType,
  TaskOptions,
  TaskRecordSummary,
} from '../../protocol/messages';
import { packCarried } from '../../protocol/messages';
import { Session, type Frame } from '../../protocol/session';
import { delivered } from '../delivered';
import { ManualClock } from './manual-clock';

type Route = 'client' | 'engine' | 'control' | 'publish';

interface Sent {
  route: Route;
  msg: Message;
  /** What goes on the socket. */
  frames: Buffer[];
  topic?: string;
}

const CLIENT = Buffer.from('client-1');
const ENGINE_A = Buffer.from('engine-a');
const ENGINE_B = Buffer.from('engine-b');
const STARTED = '2024-01-01T00:00:01.000Z';
const COMPLETED = '2024-01-01T00:00:02.000Z';
const HUB_OPTIONS: HubOptions = {
  scheme: 'leastload',
  hwm: 1,
  quickDepth: 8,
  recordLimit: 5,
  recordBytes: 100,
  heartbeatPeriod: 1000,
  heartbeatDeadline: 3000,
  leaseTerm: 1000,
};

/**
 * Records what the hub sends. Every message goes through serialize/deserialize on the way, as the
 * controller server's sockets would, so a reply the client could not parse fails the test.
 */
class RecordingOutlet implements HubOutlet {
  sent: Sent[] = [];
  shutdowns: number[] = [];

  constructor(private readonly session: Session) {}

  private record(route: Route, msg: IMessage, topic?: string, wire?: Frame[]): void {
    const frames = wire
      ? [...msg.identities, ...wire].map((f) => Buffer.from(f))
      : delivered(this.session.frames(msg));
    this.sent.push({ route, msg: this.session.receive(frames).msg, frames, topic });
  }

  toClient(msg: IMessage, wire?: Frame[]): void {
    this.record('client', msg, undefined, wire);
  }
  toEngine(msg: IMessage, wire?: Frame[]): void {
    this.record('engine', msg, undefined, wire);
  }
  toEngineControl(msg: IMessage): void {
    this.record('control', msg);
  }
  publish(topic: string, msg: IMessage): void {
    this.record('publish', msg, topic);
  }
  shutdown(): void {
    this.shutdowns.push(this.sent.length);
  }

  /** Everything sent since the last call. */
  take(): Sent[] {
    const s = this.sent;
    this.sent = [];
    return s;
  }
}

/** The messages of `type` among `sent`, optionally only on `route`. */
function ofType<T extends MsgType>(sent: Sent[], type: T, route?: Route): IMessage<T>[] {
  return sent
    .filter((s) => s.msg.header.msg_type === type && (route === undefined || s.route === route))
    .map((s) => s.msg as IMessage<T>);
}

function only<T extends MsgType>(sent: Sent[], type: T, route?: Route): IMessage<T> {
  const found = ofType(sent, type, route);
  assert.equal(found.length, 1, `expected one ${type}, got ${found.length}`);
  return found[0];
}

function assertError(content: unknown, ename: string, evalue: RegExp): void {
  const c = content as ErrorContent;
  assert.equal(c.status, 'error');
  assert.equal(c.ename, ename);
  assert.match(c.evalue, evalue);
}

describe('Hub routing', () => {
  let session: Session;
  let out: RecordingOutlet;
  let hub: Hub;
  let clock: ManualClock;

  /** As the controller server does: bytes off a socket, verified, handed to the hub. */
  const wire = <T extends MsgType>(msg: IMessage<T>): Message =>
    session.receive(delivered(session.frames(msg))).msg;

  /** As the controller server does for a task and its reply: the message and its frames. */
  const received = (frames: Buffer[]): [Message, Frame[]] => {
    const r = session.receive(frames);
    return [r.msg, r.wire];
  };

  /**
   * What an engine does on start: registers on its task socket, then its control thread sends
   * the first heartbeat with the id it was given.
   */
  const register = (identity: Buffer): void => {
    const before = out.sent.length;
    hub.handleEngine(
      wire(
        session.msg(
          'registration_request',
          {
            uuid: identity.toString(),
            pid: 100,
            hostname: 'node-1',
            direct: { address: `tcp://127.0.0.1:${4000 + identity.length}` },
          },
          { identities: [identity] },
        ),
      ),
    );
    const reply = only(out.sent.slice(before), 'registration_reply', 'engine').content;
    assert.equal(reply.status, 'ok', 'registration failed');
    if (reply.status !== 'ok') return;
    hub.handleHeartbeat(wire(session.msg('heartbeat', {}, { identities: [identity] })));
  };

  const beat = (identity: Buffer): void =>
    hub.handleHeartbeat(wire(session.msg('heartbeat', {}, { identities: [identity] })));

  /** Time passes beyond the heartbeat deadline with only the `alive` engines beating. */
  const onlyBeat = (alive: Buffer[]): void => {
    for (let t = 0; t < 4000; t += 500) {
      for (const e of alive) beat(e);
      clock.advance(500);
    }
  };

  /** What an engine does when it stops: unregisters on its task socket. */
  const unregister = (identity: Buffer): void =>
    hub.handleEngine(wire(session.msg('unregistration_request', {}, { identities: [identity] })));

  /** A client request; the hub's replies go to `CLIENT`. */
  const request = <T extends MsgType>(type: T, content: ContentMap[T]): IMessage<T> => {
    const msg = session.msg(type, content, { identities: [CLIENT] });
    hub.handleClient(wire(msg));
    return msg;
  };

  const apply = (options: TaskOptions, source = '() => 1'): IMessage<'apply_request'> =>
    request('apply_request', { source, mode: 'call', refs: [], options });

  /** The engine at `engine` answers `task`; `quick` when it says the run took under 1 ms. */
  const engineReply = (
    task: IMessage,
    engine: Buffer,
    content: ContentMap['apply_reply'] = { status: 'ok' },
    buffers: Buffer[] = [],
    quick = false,
  ): void =>
    hub.handleEngine(
      wire(
        session.msg('apply_reply', content, {
          parent: task.header,
          identities: [engine],
          // An engine names the run it answers, as the request it got did.
          metadata: {
            started: STARTED,
            completed: COMPLETED,
            attempt: task.metadata.attempt,
            ...(quick && { quick }),
          },
          buffers,
        }),
      ),
    );

  /** The task messages forwarded to engines, as [engine identity, msg_id]. */
  const forwarded = (sent: Sent[]): [string, string][] =>
    ofType(sent, 'apply_request', 'engine').map((m) => [
      m.identities[0].toString(),
      m.header.msg_id,
    ]);

  /** The ids of the engines the hub lists to a client. */
  const liveEngines = (): number[] => {
    request('connection_request', {});
    const reply = only(out.take(), 'connection_reply').content;
    return reply.status === 'ok' ? reply.engines.map((e) => e.id) : [];
  };

  const queueStatus = (): ContentMap['queue_status_reply'] => {
    request('queue_status_request', {});
    return only(out.take(), 'queue_status_reply').content;
  };

  beforeEach(() => {
    session = new Session('k');
    out = new RecordingOutlet(session);
    clock = new ManualClock();
    hub = new Hub(session, out, HUB_OPTIONS, { clock });
    hub.start();
  });

  afterEach(() => hub.stop());

  describe('registration', () => {
    it('gives engines ids 0, 1 in order, replies ok and publishes a notification', () => {
      register(ENGINE_A);
      register(ENGINE_B);
      const sent = out.take();

      const replies = ofType(sent, 'registration_reply', 'engine');
      assert.deepEqual(
        replies.map((r) => [r.identities[0].toString(), r.content]),
        [
          ['engine-a', { status: 'ok', id: 0, heartbeat_period: 1000, heartbeat_deadline: 3000 }],
          ['engine-b', { status: 'ok', id: 1, heartbeat_period: 1000, heartbeat_deadline: 3000 }],
        ],
      );

      const notices = sent.filter((s) => s.route === 'publish');
      assert.deepEqual(
        notices.map((s) => s.topic),
        ['hub.registration', 'hub.registration'],
      );
      const engines = ofType(notices, 'registration_notification').map((m) => m.content.engine);
      assert.deepEqual(
        engines.map((e) => [e.id, e.uuid, e.hostname, e.pid]),
        [
          [0, 'engine-a', 'node-1', 100],
          [1, 'engine-b', 'node-1', 100],
        ],
      );
    });

    it('gives an engine that registers again its old id', () => {
      register(ENGINE_A);
      register(ENGINE_B);
      out.take();
      register(ENGINE_A);
      const sent = out.take();
      assert.equal(only(sent, 'registration_reply').content.status, 'ok');
      assert.deepEqual(only(sent, 'registration_reply').content, {
        status: 'ok',
        id: 0,
        heartbeat_period: 1000,
        heartbeat_deadline: 3000,
      });
      assert.equal(ofType(sent, 'registration_notification').length, 0);
    });

    it('lists both engines in the connection reply', () => {
      register(ENGINE_A);
      register(ENGINE_B);
      out.take();
      const req = request('connection_request', {});
      const reply = only(out.take(), 'connection_reply', 'client');
      assert.deepEqual(reply.identities, [CLIENT]);
      assert.equal(reply.parent_header.msg_id, req.header.msg_id);
      assert.equal(reply.content.status, 'ok');
      if (reply.content.status !== 'ok') return;
      assert.deepEqual(
        reply.content.engines.map((e) => [e.id, e.uuid]),
        [
          [0, 'engine-a'],
          [1, 'engine-b'],
        ],
      );
    });
  });

  describe('with two engines', () => {
    beforeEach(() => {
      register(ENGINE_A);
      register(ENGINE_B);
      out.take();
    });

    describe('direct tasks', () => {
      it('forwards a task to its engine and the reply to the client', () => {
        const task = apply({ balanced: false, targets: [1] }, '(x) => x');
        const toEngine = only(out.take(), 'apply_request', 'engine');
        assert.deepEqual(toEngine.identities, [ENGINE_B]);
        assert.equal(toEngine.header.msg_id, task.header.msg_id);
        assert.equal(toEngine.content.source, '(x) => x');

        const result = Buffer.from('result bytes');
        engineReply(task, ENGINE_B, { status: 'ok' }, [result]);
        const reply = only(out.take(), 'apply_reply', 'client');
        assert.deepEqual(reply.identities, [CLIENT]);
        assert.equal(reply.parent_header.msg_id, task.header.msg_id);
        assert.deepEqual(reply.content, { status: 'ok' });
        assert.equal(reply.metadata.engine_id, 1);
        assert.equal(reply.metadata.started, STARTED);
        assert.equal(reply.metadata.completed, COMPLETED);
        assert.deepEqual(reply.buffers, [result]);
      });

      it('forwards a task and its reply in the frames their senders signed', () => {
        const task = session.msg(
          'apply_request',
          { source: '() => 1', mode: 'call', refs: [], options: { balanced: false, targets: [1] } },
          { identities: [CLIENT], buffers: [Buffer.from('args')] },
        );
        const taskFrames = delivered(session.frames(task));
        hub.handleClient(...received(taskFrames));
        const toEngine = out.take().filter((s) => s.route === 'engine');
        assert.deepEqual(
          toEngine.map((s) => s.frames),
          [[ENGINE_B, ...taskFrames.slice(1)]],
        );

        const reply = (engineId: number): Buffer[] =>
          delivered(
            session.frames(
              session.msg(
                'apply_reply',
                { status: 'ok' },
                { parent: task.header, identities: [ENGINE_B], metadata: { engine_id: engineId } },
              ),
            ),
          );
        const replyFrames = reply(1);
        hub.handleEngine(...received(replyFrames));
        const toClient = out.take().filter((s) => s.route === 'client');
        assert.deepEqual(
          toClient.map((s) => s.frames),
          [[CLIENT, ...replyFrames.slice(1)]],
        );
      });

      it('names the engine as it knows it when the reply says otherwise', () => {
        const task = apply({ balanced: false, targets: [1] });
        out.take();
        const frames = delivered(
          session.frames(
            session.msg(
              'apply_reply',
              { status: 'ok' },
              { parent: task.header, identities: [ENGINE_B], metadata: { engine_id: 7 } },
            ),
          ),
        );
        hub.handleEngine(...received(frames));
        assert.equal(only(out.take(), 'apply_reply', 'client').metadata.engine_id, 1);
      });

      it('answers a task for an unknown engine with an EngineError naming the live ones', () => {
        const task = apply({ balanced: false, targets: [7] });
        const sent = out.take();
        assert.deepEqual(forwarded(sent), []);
        const reply = only(sent, 'apply_reply', 'client');
        assert.deepEqual(reply.identities, [CLIENT]);
        assert.equal(reply.parent_header.msg_id, task.header.msg_id);
        assertError(reply.content, 'EngineError', /engine 7 .*live engines: 0, 1/);
      });

      it('holds a direct task until its dependencies end, and fails it when one failed', () => {
        const failed = apply({ balanced: false, targets: [0] });
        const waiting = apply({ balanced: false, targets: [1], after: [failed.header.msg_id] });
        assert.deepEqual(forwarded(out.take()), [['engine-a', failed.header.msg_id]]);
        engineReply(failed, ENGINE_A, {
          status: 'error',
          ename: 'E',
          evalue: 'x',
          traceback: ['t'],
        });
        const sent = out.take();
        assert.deepEqual(forwarded(sent), []);
        const reply = ofType(sent, 'apply_reply').find(
          (m) => m.parent_header.msg_id === waiting.header.msg_id,
        );
        assert.ok(reply && reply.content.status === 'error');
        assertError(reply.content, 'DependencyError', /did not succeed \(failed: E: x\)/);
        assert.deepEqual(reply.content.cause, { ename: 'E', evalue: 'x', traceback: ['t'] });
      });
    });

    describe('load balancing with hwm 1', () => {
      it('gives each engine one task and holds the third until an engine replies', () => {
        const tasks = [
          apply({ balanced: true }),
          apply({ balanced: true }),
          apply({ balanced: true }),
        ];
        const first = forwarded(out.take());
        assert.deepEqual(first, [
          ['engine-a', tasks[0].header.msg_id],
          ['engine-b', tasks[1].header.msg_id],
        ]);

        const status = queueStatus();
        assert.equal(status.status, 'ok');
        if (status.status !== 'ok') return;
        assert.equal(status.unassigned, 1);
        assert.deepEqual(status.engines, {
          0: { queue: 1, completed: 0, tasks: 1 },
          1: { queue: 1, completed: 0, tasks: 1 },
        });

        engineReply(tasks[1], ENGINE_B);
        const sent = out.take();
        assert.equal(
          only(sent, 'apply_reply', 'client').parent_header.msg_id,
          tasks[1].header.msg_id,
        );
        assert.deepEqual(forwarded(sent), [['engine-b', tasks[2].header.msg_id]]);
        const after = queueStatus();
        assert.equal(after.status === 'ok' && after.unassigned, 0);
      });

      it('sends waiting tasks to an engine that registers later', () => {
        apply({ balanced: true });
        apply({ balanced: true });
        const waiting = apply({ balanced: true });
        out.take();
        register(Buffer.from('engine-c'));
        assert.deepEqual(forwarded(out.take()), [['engine-c', waiting.header.msg_id]]);
      });
    });

    describe('quick depth', () => {
      const QUICK = '() => 1';
      /** Runs `QUICK` once on each engine, each replying that it ran quick. */
      const warm = (): void => {
        const [a, b] = [apply({ balanced: true }, QUICK), apply({ balanced: true }, QUICK)];
        out.take();
        engineReply(a, ENGINE_A, undefined, undefined, true);
        engineReply(b, ENGINE_B, undefined, undefined, true);
        out.take();
      };
      /** How many of the forwarded tasks went to each engine. */
      const perEngine = (sent: Sent[]): Record<string, number> => {
        const n: Record<string, number> = {};
        for (const [engine] of forwarded(sent)) n[engine] = (n[engine] ?? 0) + 1;
        return n;
      };

      it('queues tasks of a function known to run quick beyond hwm, up to quickDepth', () => {
        warm();
        for (let i = 0; i < 20; i++) apply({ balanced: true }, QUICK);
        assert.deepEqual(perEngine(out.take()), { 'engine-a': 8, 'engine-b': 8 });
        const status = queueStatus();
        assert.equal(status.status === 'ok' && status.unassigned, 4);
      });

      it('keeps hwm for a task not known to be quick, and queues nothing deep behind it or after a slow reply', () => {
        warm();
        const slow = apply({ balanced: true }, '() => sleep(100)');
        const quick = Array.from({ length: 12 }, () => apply({ balanced: true }, QUICK));
        const sent = out.take();
        assert.deepEqual(
          forwarded(sent).filter(([e]) => e === 'engine-a'),
          [['engine-a', slow.header.msg_id]],
        );
        assert.equal(perEngine(sent)['engine-b'], 8);

        // The slow reply frees engine a for one task at hwm, not for a deep queue.
        engineReply(slow, ENGINE_A);
        assert.deepEqual(forwarded(out.take()), [['engine-a', quick[8].header.msg_id]]);
        engineReply(quick[8], ENGINE_A, undefined, undefined, true);
        assert.deepEqual(forwarded(out.take()), [['engine-a', quick[9].header.msg_id]]);

        // Known slow now: it waits for an engine below hwm, and the quick task after it waits
        // behind it even when engine b could take that one deep.
        const slowAgain = apply({ balanced: true }, '() => sleep(100)');
        const last = apply({ balanced: true }, QUICK);
        engineReply(quick[1], ENGINE_B, undefined, undefined, true);
        assert.deepEqual(forwarded(out.take()), [['engine-b', quick[10].header.msg_id]]);
        engineReply(quick[9], ENGINE_A, undefined, undefined, true);
        assert.deepEqual(forwarded(out.take()), [['engine-a', quick[11].header.msg_id]]);
        engineReply(quick[2], ENGINE_B, undefined, undefined, true);
        assert.deepEqual(forwarded(out.take()), []);
        engineReply(quick[11], ENGINE_A, undefined, undefined, true);
        assert.deepEqual(forwarded(out.take()), [
          ['engine-a', slowAgain.header.msg_id],
          ['engine-b', last.header.msg_id],
        ]);
      });
    });

    describe('when an engine dies', () => {
      it('fails its task with an EngineError and publishes the unregistration', () => {
        const task = apply({ balanced: false, targets: [1] });
        out.take();
        onlyBeat([ENGINE_A]);
        const sent = out.take();

        const reply = only(sent, 'apply_reply', 'client');
        assert.deepEqual(reply.identities, [CLIENT]);
        assert.equal(reply.parent_header.msg_id, task.header.msg_id);
        assertError(reply.content, 'EngineError', /engine 1 died.*no heartbeat for 3000 ms/);

        const notice = sent.find((s) => s.route === 'publish');
        assert.equal(notice?.topic, 'hub.unregistration');
        assert.deepEqual(notice?.msg.content, { id: 1, reason: 'no heartbeat for 3000 ms' });

        request('connection_request', {});
        const conn = only(out.take(), 'connection_reply').content;
        assert.deepEqual(conn.status === 'ok' && conn.engines.map((e) => e.id), [0]);
      });

      it('fails a balanced task without retries too', () => {
        const task = apply({ balanced: true });
        out.take();
        unregister(ENGINE_A);
        const sent = out.take();
        assert.deepEqual(forwarded(sent), []);
        const reply = only(sent, 'apply_reply', 'client');
        assert.equal(reply.parent_header.msg_id, task.header.msg_id);
        assertError(reply.content, 'EngineError', /engine 0/);
      });

      it('re-sends a task with retries to the other engine', () => {
        const task = apply({ balanced: true, retries: 1 });
        assert.deepEqual(forwarded(out.take()), [['engine-a', task.header.msg_id]]);
        unregister(ENGINE_A);
        const sent = out.take();
        assert.deepEqual(ofType(sent, 'apply_reply'), []);
        assert.deepEqual(forwarded(sent), [['engine-b', task.header.msg_id]]);

        // A reply naming the first run is not the rerun's.
        engineReply(task, ENGINE_B);
        assert.deepEqual(ofType(out.take(), 'apply_reply'), []);
        engineReply(only(sent, 'apply_request', 'engine'), ENGINE_B);
        const reply = only(out.take(), 'apply_reply', 'client');
        assert.equal(reply.content.status, 'ok');
        assert.equal(reply.metadata.engine_id, 1);
      });

      it('re-sends a task to an engine left, not to one that fell silent with its engine', () => {
        const ENGINE_C = Buffer.from('engine-c');
        register(ENGINE_C);
        const task = apply({ balanced: true, retries: 1 });
        assert.deepEqual(forwarded(out.take()), [['engine-a', task.header.msg_id]]);
        // Engines a and b stop beating at once, as the engines of one process do; b was idle
        // and comes first among the others, so a rerun placed before it is dropped lands there.
        onlyBeat([ENGINE_C]);
        const sent = out.take();
        assert.deepEqual(ofType(sent, 'apply_reply'), []);
        assert.deepEqual(forwarded(sent), [['engine-c', task.header.msg_id]]);
        assert.deepEqual(liveEngines(), [2]);
      });

      it('fails a retried task once its retries are used up', () => {
        const task = apply({ balanced: true, retries: 1 });
        onlyBeat([ENGINE_B]);
        out.take();
        unregister(ENGINE_B);
        const reply = only(out.take(), 'apply_reply', 'client');
        assert.equal(reply.parent_header.msg_id, task.header.msg_id);
        assertError(reply.content, 'EngineError', /engine 1 died.*it unregistered/);
      });

      it('tells the dead engine, when it beats again, that it was dropped and why', () => {
        onlyBeat([ENGINE_B]);
        out.take();
        beat(ENGINE_A);
        const lost = only(out.take(), 'registration_lost', 'control');
        assert.deepEqual(lost.identities, [ENGINE_A]);
        assert.equal(lost.content.reason, 'engine 0 was dropped: no heartbeat for 3000 ms');
        assert.deepEqual(liveEngines(), [1]);
      });
    });

    describe('abort', () => {
      it('fails a task still waiting for an engine with TaskAbortedError', () => {
        apply({ balanced: true });
        apply({ balanced: true });
        const waiting = apply({ balanced: true });
        out.take();
        request('abort_request', { msg_ids: [waiting.header.msg_id] });
        const sent = out.take();

        const failed = only(sent, 'apply_reply', 'client');
        assert.equal(failed.parent_header.msg_id, waiting.header.msg_id);
        assertError(failed.content, 'TaskAbortedError', /aborted before it started/);
        assert.deepEqual(only(sent, 'abort_reply').content, {
          status: 'ok',
          aborted: [waiting.header.msg_id],
        });
        assert.deepEqual(forwarded(sent), []);
        assert.equal(ofType(sent, 'abort_request').length, 0);
        const status = queueStatus();
        assert.equal(status.status === 'ok' && status.unassigned, 0);
      });

      it("asks the engine running a task to abort it, on the engine's control socket", () => {
        apply({ balanced: true });
        const running = apply({ balanced: true });
        out.take();
        request('abort_request', { msg_ids: [running.header.msg_id, 'no-such-task'] });
        const sent = out.take();

        const toEngine = only(sent, 'abort_request', 'control');
        assert.deepEqual(toEngine.identities, [ENGINE_B]);
        assert.deepEqual(toEngine.content, { msg_ids: [running.header.msg_id] });
        assert.deepEqual(only(sent, 'abort_reply').content, {
          status: 'ok',
          aborted: [running.header.msg_id],
        });
        // The engine answers the task itself; the hub does not fail it early.
        assert.equal(ofType(sent, 'apply_reply').length, 0);

        engineReply(running, ENGINE_B, {
          status: 'error',
          ename: 'TaskAbortedError',
          evalue: 'aborted',
          traceback: [],
        });
        out.take();
        request('result_request', { msg_id: running.header.msg_id });
        const rec = only(out.take(), 'result_reply').content;
        assert.equal(rec.status === 'ok' && rec.record.state, 'aborted');
      });
    });

    describe('dependencies', () => {
      it('fails a task whose `after` task failed with DependencyError', () => {
        const bad = apply({ balanced: true });
        engineReply(bad, ENGINE_A, {
          status: 'error',
          ename: 'TypeError',
          evalue: 'x is not a function',
          traceback: [],
        });
        out.take();
        const dependent = apply({ balanced: true, after: [bad.header.msg_id] });
        const sent = out.take();
        assert.deepEqual(forwarded(sent), []);
        const reply = only(sent, 'apply_reply', 'client');
        assert.equal(reply.parent_header.msg_id, dependent.header.msg_id);
        assertError(reply.content, 'DependencyError', new RegExp(`${bad.header.msg_id}.*failed`));
      });

      it('fails a task whose `after` task is unknown', () => {
        apply({ balanced: true, after: ['never-submitted'] });
        assertError(only(out.take(), 'apply_reply').content, 'DependencyError', /never-submitted/);
      });

      it('holds a task until its `after` task completes, even with an idle engine', () => {
        const first = apply({ balanced: true });
        const second = apply({ balanced: true, after: [first.header.msg_id] });
        assert.deepEqual(forwarded(out.take()), [['engine-a', first.header.msg_id]]);
        const status = queueStatus();
        assert.equal(status.status === 'ok' && status.unassigned, 1);

        engineReply(first, ENGINE_A);
        const sent = out.take();
        assert.equal(forwarded(sent).length, 1);
        assert.equal(forwarded(sent)[0][1], second.header.msg_id);
      });

      it('runs a `follow` task on the engine its dependency ran on', () => {
        const leader = apply({ balanced: false, targets: [1] });
        engineReply(leader, ENGINE_B);
        out.take();
        // Engine 0 was never used, so leastload alone would pick it.
        const follower = apply({ balanced: true, follow: [leader.header.msg_id] });
        assert.deepEqual(forwarded(out.take()), [['engine-b', follower.header.msg_id]]);
      });

      it('fails a `follow` task whose engine has died', () => {
        const leader = apply({ balanced: false, targets: [1] });
        engineReply(leader, ENGINE_B);
        unregister(ENGINE_B);
        out.take();
        apply({ balanced: true, follow: [leader.header.msg_id] });
        const sent = out.take();
        assert.deepEqual(forwarded(sent), []);
        assertError(only(sent, 'apply_reply').content, 'DependencyError', /\(1\) is alive/);
      });
    });

    describe('tasks that went straight to their engines', () => {
      /** A task a client sent straight to the engine it targets, not (yet) told to the hub. */
      const straight = (targets: number[], source = '() => 1'): IMessage<'apply_request'> =>
        session.msg('apply_request', {
          source,
          mode: 'call',
          refs: [],
          options: { balanced: false, targets },
        });

      /** The client tells the hub of tasks it sent straight, in one message. */
      const tell = (...tasks: IMessage<'apply_request'>[]): void => {
        const { carried, buffers } = packCarried(tasks);
        const told = carried.map((c, i) => ({
          ...c,
          engine_id: tasks[i].content.options.targets?.[0] ?? -1,
        }));
        hub.handleClient(
          wire(session.msg('direct_tasks', { tasks: told }, { identities: [CLIENT], buffers })),
        );
      };

      /**
       * The engine at `engine` tells the hub of its replies to `tasks`, one message for all: the
       * result `42`, or `kept` there.
       */
      const report = (engine: Buffer, tasks: IMessage[], kept?: number): void => {
        const [content, result]: [ContentMap['apply_reply'], Buffer[]] =
          kept === undefined
            ? [{ status: 'ok' }, [Buffer.from('42')]]
            : [{ status: 'ok', kept }, []];
        const replies = tasks.map((t) =>
          session.msg('apply_reply', content, {
            parent: t.header,
            metadata: { engine_id: 1, started: STARTED, completed: COMPLETED },
            buffers: result,
          }),
        );
        const { carried, buffers } = packCarried(replies);
        hub.handleEngine(
          wire(
            session.msg('direct_replies', { replies: carried }, { identities: [engine], buffers }),
          ),
        );
      };

      const record = (task: IMessage): TaskRecordSummary & { buffers: Buffer[] } => {
        request('result_request', { msg_id: task.header.msg_id });
        const reply = only(out.take(), 'result_reply');
        assert.equal(reply.content.status, 'ok');
        return {
          ...(reply.content as { record: TaskRecordSummary }).record,
          buffers: reply.buffers,
        };
      };

      it('records them and their replies, sending nothing the client already has', () => {
        const tasks = [straight([1]), straight([1])];
        tell(...tasks);
        assert.deepEqual(out.take(), [], 'neither to the engine nor to the client');
        const status = queueStatus();
        assert.equal(status.status === 'ok' && status.engines[1].queue, 2);

        report(ENGINE_B, tasks);
        assert.deepEqual(out.take(), []);
        for (const task of tasks) {
          const r = record(task);
          assert.equal(r.state, 'completed');
          assert.equal(r.engine_id, 1);
          assert.equal(r.submitted, task.header.date, 'sent when the client sent it');
          assert.equal(r.completed, COMPLETED);
          assert.deepEqual(r.buffers, [Buffer.from('42')]);
        }
        const after = queueStatus();
        assert.equal(after.status === 'ok' && after.engines[1].completed, 2);
      });

      it('ends a task from the hub that its engine answered straight, sending the client nothing, and places the next', () => {
        const tasks = [
          apply({ balanced: true }),
          apply({ balanced: true }),
          apply({ balanced: true }),
        ];
        assert.deepEqual(forwarded(out.take()), [
          ['engine-a', tasks[0].header.msg_id],
          ['engine-b', tasks[1].header.msg_id],
        ]);
        report(ENGINE_B, [tasks[1]]);
        const sent = out.take();
        assert.deepEqual(ofType(sent, 'apply_reply', 'client'), [], 'the client has it');
        assert.deepEqual(forwarded(sent), [['engine-b', tasks[2].header.msg_id]]);
        assert.equal(record(tasks[1]).state, 'completed');
      });

      it('takes the engine’s reply before the client’s word of the task', () => {
        const task = straight([1]);
        report(ENGINE_B, [task]);
        tell(task);
        assert.deepEqual(out.take(), []);
        assert.equal(record(task).state, 'completed');
      });

      it('ignores a reply from an engine the task did not go to', () => {
        const task = straight([1]);
        tell(task);
        report(ENGINE_A, [task]);
        request('result_request', { msg_id: task.header.msg_id });
        assert.deepEqual(out.take(), [], 'the answer waits for news from engine 1');
        report(ENGINE_B, [task]);
        assert.equal(only(out.take(), 'result_reply').content.status, 'ok');
      });

      it('answers about one its engine has not told of when the news comes, or as running a moment later', () => {
        const [done, running] = [straight([1]), straight([1])];
        tell(done, running);
        request('result_request', { msg_id: done.header.msg_id });
        request('result_request', { msg_id: running.header.msg_id });
        assert.deepEqual(out.take(), [], 'both answers wait');
        report(ENGINE_B, [done]);
        const first = only(out.take(), 'result_reply').content;
        assert.equal(first.status === 'ok' && first.record.state, 'completed');
        clock.advance(SETTLE_MS);
        const second = only(out.take(), 'result_reply').content;
        assert.equal(second.status === 'ok' && second.record.state, 'running');
      });

      it('fails them through the hub when their engine dies', () => {
        const task = straight([1]);
        tell(task);
        onlyBeat([ENGINE_A]);
        const reply = only(out.take(), 'apply_reply', 'client');
        assert.deepEqual(reply.identities, [CLIENT]);
        assert.equal(reply.parent_header.msg_id, task.header.msg_id);
        assertError(reply.content, 'EngineError', /engine 1 died/);
      });

      it('fails one whose engine left before the hub heard of it', () => {
        const task = straight([7]);
        tell(task);
        const reply = only(out.take(), 'apply_reply', 'client');
        assertError(reply.content, 'EngineError', /engine 7 is not registered; live engines: 0, 1/);
      });

      describe('of a client gone before it told of them', () => {
        const released = (sent: Sent[]): [string, string[]][] =>
          ofType(sent, 'value_release', 'engine').map((m) => [
            m.identities[0].toString(),
            m.content.msg_ids,
          ]);

        it('frees the values their replies keep, come before or after it went', () => {
          const before = straight([1]);
          const small = straight([1]);
          const after = straight([0]);
          report(ENGINE_B, [before], 2e6);
          report(ENGINE_B, [small]);
          assert.deepEqual(released(out.take()), []);
          // A client's ROUTER identity is its session's id.
          hub.clientGone(Buffer.from(session.id));
          assert.deepEqual(released(out.take()), [['engine-b', [before.header.msg_id]]]);
          report(ENGINE_A, [after], 2e6);
          assert.deepEqual(released(out.take()), [['engine-a', [after.header.msg_id]]]);
        });

        it('keeps them again once it is back', () => {
          const client = Buffer.from(session.id);
          hub.clientGone(client);
          hub.handleClient(wire(session.msg('connection_request', {}, { identities: [client] })));
          const task = straight([1]);
          report(ENGINE_B, [task], 2e6);
          tell(task);
          assert.deepEqual(released(out.take()), []);
          assert.equal(record(task).state, 'completed');
        });
      });

      it('asks their engine to abort them, on its control socket', () => {
        const task = straight([1]);
        tell(task);
        request('abort_request', { msg_ids: [task.header.msg_id] });
        const sent = out.take();
        assert.deepEqual(only(sent, 'abort_request', 'control').identities, [ENGINE_B]);
        assert.deepEqual(only(sent, 'abort_reply').content, {
          status: 'ok',
          aborted: [task.header.msg_id],
        });
      });

      it('publishes their output without sending it to the client, who has it', () => {
        const task = straight([1]);
        tell(task);
        hub.handleEngine(
          wire(
            session.msg(
              'stream',
              { name: 'stdout', text: 'hi\n' },
              { parent: task.header, identities: [ENGINE_B] },
            ),
          ),
        );
        const sent = out.take();
        assert.deepEqual(
          sent.map((s) => [s.route, s.topic]),
          [['publish', 'engine.1.stream']],
        );
      });
    });

    describe('a client gone without closing', () => {
      const OTHER = Buffer.from('client-2');
      const released = (sent: Sent[]): [string, string[]][] =>
        ofType(sent, 'value_release', 'engine').map((m) => [
          m.identities[0].toString(),
          m.content.msg_ids,
        ]);

      it('frees the values it held, and those of its unfinished tasks as they end', () => {
        const done = apply({ balanced: false, targets: [0] });
        const running = apply({ balanced: false, targets: [1] });
        const others = session.msg(
          'apply_request',
          { source: '() => 1', mode: 'call', refs: [], options: { balanced: false, targets: [0] } },
          { identities: [OTHER] },
        );
        hub.handleClient(wire(others));
        engineReply(done, ENGINE_A, { status: 'ok', kept: 2e6 });
        engineReply(others, ENGINE_A, { status: 'ok', kept: 2e6 });
        out.take();
        hub.clientGone(CLIENT);
        assert.deepEqual(released(out.take()), [['engine-a', [done.header.msg_id]]]);
        engineReply(running, ENGINE_B, { status: 'ok', kept: 2e6 });
        assert.deepEqual(released(out.take()), [['engine-b', [running.header.msg_id]]]);
      });

      it('ends its lease, so that the tasks waiting in the queue are placed at once', () => {
        request('lease_request', { slots: 8, waiting: 0 });
        const task = session.msg(
          'apply_request',
          { source: '() => 1', mode: 'call', refs: [], options: { balanced: true } },
          { identities: [OTHER] },
        );
        hub.handleClient(wire(task));
        assert.deepEqual(forwarded(out.take()), [], 'no room while the lease holds the slots');
        hub.clientGone(CLIENT);
        assert.equal(
          forwarded(out.take())[0][1],
          task.header.msg_id,
          'placed before the term ends',
        );
      });
    });

    describe('a task taking a value whose engine dies while it runs', () => {
      /** Engine B answers `task` that it could not fetch the values it takes. */
      const fetchFailed = (task: IMessage): void =>
        hub.handleEngine(
          wire(
            session.msg(
              'apply_reply',
              {
                status: 'error',
                ename: 'DependencyError',
                evalue: 'the value is lost',
                traceback: [],
              },
              {
                parent: task.header,
                identities: [ENGINE_B],
                metadata: { attempt: task.metadata.attempt, inputs_failed: true },
              },
            ),
          ),
        );

      /**
       * A value kept on engine A by a task with retries, a task on engine B that takes it, and
       * engine A gone: the value is being remade.
       */
      const lost = (): { made: string; user: IMessage<'apply_request'> } => {
        const producer = apply({ balanced: true, retries: 1 });
        const made = producer.header.msg_id;
        assert.deepEqual(forwarded(out.take()), [['engine-a', made]]);
        engineReply(producer, ENGINE_A, { status: 'ok', kept: 2e6 });
        const user = request('apply_request', {
          source: '(x) => x',
          mode: 'call',
          refs: [],
          options: { balanced: true, targets: [1], after: [made] },
          results: [{ path: [0], msg_ids: [made], combine: 'one' }],
        });
        assert.deepEqual(forwarded(out.take()), [['engine-b', user.header.msg_id]]);
        unregister(ENGINE_A);
        assert.deepEqual(forwarded(out.take()), [], 'the rerun waits for engine B');
        return { made, user };
      };

      it('ends as its engine says when it fetched the value already: it runs once', () => {
        const { user } = lost();
        engineReply(user, ENGINE_B);
        const reply = only(out.take(), 'apply_reply', 'client');
        assert.equal(reply.parent_header.msg_id, user.header.msg_id);
        assert.equal(reply.content.status, 'ok');
      });

      it('waits for the rerun when its fetch failed, and takes the value remade', () => {
        const { made, user } = lost();
        fetchFailed(user);
        let sent = out.take();
        assert.deepEqual(ofType(sent, 'apply_reply', 'client'), []);
        const rerun = only(sent, 'apply_request', 'engine');
        assert.equal(rerun.header.msg_id, made);
        engineReply(rerun, ENGINE_B, { status: 'ok', kept: 2e6 });
        sent = out.take();
        const again = ofType(sent, 'apply_request', 'engine');
        assert.deepEqual(
          again.map((m) => [m.header.msg_id, m.content.sources?.[made]]),
          [[user.header.msg_id, { kept_on: 1, direct: { address: 'tcp://127.0.0.1:4008' } }]],
        );
      });

      it('fails with the fetch when it was aborted', () => {
        const { user } = lost();
        request('abort_request', { msg_ids: [user.header.msg_id] });
        out.take();
        fetchFailed(user);
        const reply = only(out.take(), 'apply_reply', 'client');
        assertError(reply.content, 'DependencyError', /lost/);
      });
    });

    describe('leases', () => {
      const lease = (slots = 4): Record<string, number> => {
        request('lease_request', { slots, waiting: 0 });
        const reply = only(out.take(), 'lease_reply').content;
        assert.equal(reply.status, 'ok');
        return reply.status === 'ok' ? reply.leases : {};
      };

      it('lends its quick depth at most on each engine, which its scheduler counts as load', () => {
        assert.deepEqual(lease(64), { 0: 8, 1: 8 });
        request('lease_request', { slots: 4, waiting: 0 });
        const reply = only(out.take(), 'lease_reply').content;
        assert.deepEqual(reply, { status: 'ok', leases: { 0: 4, 1: 4 }, term: 1000, mark: 1 });
        const task = apply({ balanced: true });
        assert.deepEqual(forwarded(out.take()), [], 'no room left for the hub to place it');
        const status = queueStatus();
        assert.equal(status.status === 'ok' && status.unassigned, 1);
        clock.advance(1000);
        assert.equal(forwarded(out.take())[0][1], task.header.msg_id, 'placed once the lease ends');
      });

      it('counts the tasks waiting in a holder for a slot as unassigned, as it last told', () => {
        request('lease_request', { slots: 4, waiting: 30 });
        out.take();
        const counted = (): number | false => {
          const status = queueStatus();
          return status.status === 'ok' && status.unassigned;
        };
        assert.equal(counted(), 30);
        request('lease_request', { slots: 4, waiting: 12 });
        out.take();
        assert.equal(counted(), 12, 'a renewal tells anew');
        clock.advance(1000);
        assert.equal(counted(), 0, 'the lease ended with its term');
      });

      it('lends nothing under a scheme other than least load: its scheduler places all', () => {
        hub.stop();
        hub = new Hub(session, out, { ...HUB_OPTIONS, scheme: 'lru' }, { clock });
        hub.start();
        register(ENGINE_A);
        register(ENGINE_B);
        out.take();
        assert.deepEqual(lease(), {});
      });

      it('places the tasks its queue holds as soon as a lease is given back (0 slots)', () => {
        assert.deepEqual(lease(), { 0: 4, 1: 4 });
        const task = apply({ balanced: true });
        assert.deepEqual(forwarded(out.take()), []);
        request('lease_request', { slots: 0, waiting: 0 });
        const sent = out.take();
        const reply = only(sent, 'lease_reply').content;
        assert.deepEqual(reply.status === 'ok' && reply.leases, {});
        assert.equal(forwarded(sent)[0][1], task.header.msg_id, 'placed before the term ends');
      });

      it('lends nothing while tasks wait in its queue, so their clients go first', () => {
        apply({ balanced: true });
        apply({ balanced: true });
        apply({ balanced: true });
        out.take();
        assert.deepEqual(lease(), {});
      });

      it('counts a leased task in its slot, and a renewal keeps the slot it fills', () => {
        assert.deepEqual(lease(), { 0: 4, 1: 4 });
        const task = session.msg('apply_request', {
          source: '() => 1',
          mode: 'call',
          refs: [],
          options: { balanced: true },
        });
        const { carried } = packCarried([task]);
        hub.handleClient(
          wire(
            session.msg(
              'direct_tasks',
              { tasks: [{ ...carried[0], engine_id: 0 }] },
              { identities: [CLIENT] },
            ),
          ),
        );
        const status = queueStatus();
        assert.equal(status.status === 'ok' && status.engines[0].tasks, 1);
        assert.deepEqual(lease(), { 0: 4, 1: 4 });
        clock.advance(1000);
        apply({ balanced: true });
        assert.deepEqual(
          forwarded(out.take()).map(([engine]) => engine),
          ['engine-b'],
          'the leased task still fills engine 0 after its lease ended',
        );
      });

      it('renews in full while the tasks it heard of outnumber the slots, their replies late', () => {
        assert.deepEqual(lease(8), { 0: 8, 1: 8 });
        const tasks = Array.from({ length: 10 }, () =>
          session.msg('apply_request', {
            source: '() => 1',
            mode: 'call',
            refs: [],
            options: { balanced: true },
          }),
        );
        const { carried } = packCarried(tasks);
        hub.handleClient(
          wire(
            session.msg(
              'direct_tasks',
              { tasks: carried.map((c) => ({ ...c, engine_id: 0 })) },
              { identities: [CLIENT] },
            ),
          ),
        );
        assert.deepEqual(lease(8), { 0: 8, 1: 8 });
      });
    });

    it("relays a task's stream output to its client and publishes it", () => {
      const task = apply({ balanced: false, targets: [1] });
      out.take();
      hub.handleEngine(
        wire(
          session.msg(
            'stream',
            { name: 'stdout', text: 'hello\n' },
            { parent: task.header, identities: [ENGINE_B] },
          ),
        ),
      );
      const sent = out.take();
      const toClient = only(sent, 'stream', 'client');
      assert.deepEqual(toClient.identities, [CLIENT]);
      assert.deepEqual(toClient.content, { name: 'stdout', text: 'hello\n' });
      assert.equal(toClient.parent_header.msg_id, task.header.msg_id);
      assert.equal(toClient.metadata.engine_id, 1);
      const published = sent.filter((s) => s.route === 'publish');
      assert.deepEqual(
        published.map((s) => [s.topic, s.msg.content]),
        [['engine.1.stream', { name: 'stdout', text: 'hello\n' }]],
      );
    });

    it("relays a task's published data and keeps the latest in its record", () => {
      const task = apply({ balanced: false, targets: [1] });
      out.take();
      const publish = (from: Buffer, data: string): void =>
        hub.handleEngine(
          wire(
            session.msg(
              'data_message',
              {},
              { parent: task.header, identities: [from], buffers: [Buffer.from(data)] },
            ),
          ),
        );
      publish(ENGINE_B, 'first');
      publish(ENGINE_B, 'second');
      // Only the engine running the task speaks for it.
      publish(ENGINE_A, 'not its engine');
      const toClient = out.take().filter((s) => s.route === 'client');
      assert.deepEqual(
        toClient.map((s) => [
          s.msg.header.msg_type,
          s.msg.metadata.engine_id,
          `${s.msg.buffers[0]}`,
        ]),
        [
          ['data_message', 1, 'first'],
          ['data_message', 1, 'second'],
        ],
      );
      const result = Buffer.from('result');
      engineReply(task, ENGINE_B, { status: 'ok' }, [result]);
      out.take();
      request('result_request', { msg_id: task.header.msg_id });
      const reply = only(out.take(), 'result_reply', 'client');
      assert.ok(reply.content.status === 'ok');
      assert.equal(reply.content.record.data_buffers, 1);
      assert.deepEqual(reply.buffers.map(String), ['result', 'second']);
    });

    describe('task records', () => {
      it('returns the record and the result buffers of a finished task', () => {
        const task = apply({ balanced: false, targets: [0], label: 'squares' });
        const payload = Buffer.from([1, 2, 3, 4]);
        engineReply(task, ENGINE_A, { status: 'ok' }, [payload]);
        out.take();
        const req = request('result_request', { msg_id: task.header.msg_id });
        const reply = only(out.take(), 'result_reply', 'client');
        assert.equal(reply.parent_header.msg_id, req.header.msg_id);
        assert.equal(reply.content.status, 'ok');
        if (reply.content.status !== 'ok') return;
        const { record } = reply.content;
        assert.equal(record.msg_id, task.header.msg_id);
        assert.equal(record.state, 'completed');
        assert.equal(record.engine_id, 0);
        assert.equal(record.label, 'squares');
        assert.equal(record.started, STARTED);
        assert.equal(record.completed, COMPLETED);
        assert.deepEqual(record.reply, { status: 'ok' });
        assert.deepEqual(reply.buffers, [payload]);
      });

      it('lets the oldest results go past recordBytes, keeping their records', () => {
        const first = apply({ balanced: false, targets: [0] });
        engineReply(first, ENGINE_A, { status: 'ok' }, [Buffer.alloc(60)]);
        const second = apply({ balanced: false, targets: [0] });
        engineReply(second, ENGINE_A, { status: 'ok' }, [Buffer.alloc(60)]);
        out.take();
        request('result_request', { msg_id: first.header.msg_id });
        const dropped = only(out.take(), 'result_reply');
        assert.deepEqual(dropped.buffers, []);
        assert.equal(
          dropped.content.status === 'ok' && dropped.content.record.buffers_dropped,
          true,
        );
        request('result_request', { msg_id: second.header.msg_id });
        const kept = only(out.take(), 'result_reply');
        assert.equal(kept.buffers[0].byteLength, 60);
        request('resubmit_request', { msg_ids: [first.header.msg_id], new_msg_ids: ['again'] });
        assertError(
          only(out.take(), 'resubmit_reply').content,
          'UnknownTaskError',
          /or its arguments/,
        );
      });

      it('forgets the oldest finished record past recordLimit and says how many it keeps', () => {
        const running = apply({ balanced: false, targets: [1] });
        const done: IMessage<'apply_request'>[] = [];
        for (let i = 0; i < 6; i++) {
          const t = apply({ balanced: false, targets: [0] });
          engineReply(t, ENGINE_A);
          done.push(t);
        }
        out.take();

        request('result_request', { msg_id: done[0].header.msg_id });
        const gone = only(out.take(), 'result_reply');
        assertError(gone.content, 'UnknownTaskError', /keeps the last 5 finished tasks/);

        for (const t of done.slice(1)) {
          request('result_request', { msg_id: t.header.msg_id });
          const kept = only(out.take(), 'result_reply').content;
          assert.equal(kept.status === 'ok' && kept.record.state, 'completed');
        }
        // Unfinished tasks are never dropped; answered as running once their engine may have
        // told of a straight reply.
        request('result_request', { msg_id: running.header.msg_id });
        clock.advance(SETTLE_MS);
        const still = only(out.take(), 'result_reply').content;
        assert.equal(still.status === 'ok' && still.record.state, 'running');
      });
    });

    describe('signals', () => {
      it('sends a signal to every engine when targets is null', () => {
        request('signal_request', { signal: 'SIGINT', targets: null });
        const sent = out.take();
        const signals = ofType(sent, 'signal_request', 'control');
        assert.deepEqual(
          signals.map((m) => [m.identities[0].toString(), m.content]),
          [
            ['engine-a', { signal: 'SIGINT', targets: [0] }],
            ['engine-b', { signal: 'SIGINT', targets: [1] }],
          ],
        );
        assert.deepEqual(only(sent, 'signal_reply', 'client').content, {
          status: 'ok',
          targets: [0, 1],
        });
      });

      it('refuses an unknown target without signalling anyone', () => {
        request('signal_request', { signal: 'SIGINT', targets: [0, 4] });
        const sent = out.take();
        assert.equal(ofType(sent, 'signal_request').length, 0);
        assertError(
          only(sent, 'signal_reply').content,
          'EngineError',
          /engine 4 .*live engines: 0, 1/,
        );
      });
    });

    describe('shutdown', () => {
      it('stops the engines, replies, then shuts the hub down', () => {
        request('shutdown_request', { hub: true, targets: null });
        const sent = out.sent;
        assert.deepEqual(
          ofType(sent, 'shutdown_request', 'control').map((m) => m.identities[0].toString()),
          ['engine-a', 'engine-b'],
        );
        const replyAt = sent.findIndex((s) => s.msg.header.msg_type === 'shutdown_reply');
        assert.ok(replyAt >= 0, 'no shutdown_reply');
        assert.deepEqual(sent[replyAt].msg.content, { status: 'ok' });
        assert.deepEqual(out.shutdowns, [replyAt + 1]);
      });

      it('leaves the hub running when hub is false', () => {
        request('shutdown_request', { hub: false, targets: [1] });
        const sent = out.take();
        assert.deepEqual(
          ofType(sent, 'shutdown_request', 'control').map((m) => m.identities[0].toString()),
          ['engine-b'],
        );
        assert.deepEqual(out.shutdowns, []);
      });
    });

    describe('a handler that throws', () => {
      let dir: string;

      beforeEach(() => {
        dir = mkdtempSync(join(tmpdir(), 'tsparallel-hub-'));
        records = new SqliteTaskRecords(join(dir, 'tasks.db'));
        hub.stop();
        hub = new Hub(session, out, HUB_OPTIONS, { records });
        register(ENGINE_A);
        out.take();
      });
      afterEach(() => rmSync(dir, { recursive: true, force: true }));
      let records: SqliteTaskRecords;

      it('answers the request with a HubError, and the hub serves on', () => {
        records.close(); // the task store fails, as a lost disk would make it
        const task = session.msg(
          'apply_request',
          { source: '() => 1', mode: 'call', refs: [], options: { balanced: false, targets: [0] } },
          { identities: [CLIENT] },
        );
        assert.throws(() => hub.handleClient(wire(task)), /database connection is not open/);
        const reply = only(out.take(), 'apply_reply', 'client');
        assert.deepEqual(reply.identities, [CLIENT]);
        assert.equal(reply.parent_header.msg_id, task.header.msg_id);
        assertError(reply.content, HUB_ERROR, /the hub failed on this request: .*not open/);

        request('connection_request', {});
        const conn = only(out.take(), 'connection_reply').content;
        assert.deepEqual(conn.status === 'ok' && conn.engines.map((e) => e.id), [0]);
      });

      it("answers an engine's registration whose handler throws on the engine's socket", () => {
        records.close(); // a new engine id comes from the store
        const reg = session.msg(
          'registration_request',
          { uuid: 'u-c', pid: 3, hostname: 'h' },
          { identities: [Buffer.from('engine-c')] },
        );
        assert.throws(() => hub.handleEngine(wire(reg)), /database connection is not open/);
        const reply = only(out.take(), 'registration_reply', 'engine');
        assert.deepEqual(reply.identities, [Buffer.from('engine-c')]);
        assert.equal(reply.parent_header.msg_id, reg.header.msg_id);
        assertError(reply.content, HUB_ERROR, /the hub failed on this request: .*not open/);
      });

      it('fails a task whose record was added before the store broke, with one reply', () => {
        // A second connection makes every write that starts a task fail, as a full disk would.
        const db = new Database(records.path);
        db.exec(`CREATE TRIGGER no_start BEFORE UPDATE ON tasks WHEN NEW.state = 'running'
                 BEGIN SELECT RAISE(FAIL, 'disk full'); END`);
        db.close();
        const task = session.msg(
          'apply_request',
          { source: '() => 1', mode: 'call', refs: [], options: { balanced: true } },
          { identities: [CLIENT] },
        );
        assert.throws(() => hub.handleClient(wire(task)), /disk full/);
        const sent = out.take();
        const reply = only(sent, 'apply_reply', 'client');
        assertError(reply.content, HUB_ERROR, /the hub failed on this task: disk full/);
        assert.equal(ofType(sent, 'apply_request', 'engine').length, 0);
        const r = records.get(task.header.msg_id);
        assert.equal(r?.state, 'failed');
        assert.equal(r?.reply?.content.status === 'error' && r.reply.content.ename, HUB_ERROR);
        request('queue_status_request', {});
        const status = only(out.take(), 'queue_status_reply').content;
        assert.equal(status.status === 'ok' && status.unassigned, 0);
        assert.deepEqual(status.status === 'ok' && status.engines[0].queue, 0);
      });
    });

    describe('heartbeats', () => {
      it("answers a registered engine's heartbeat on its control socket", () => {
        const beat = session.msg('heartbeat', {}, { identities: [ENGINE_B] });
        hub.handleHeartbeat(wire(beat));
        const answer = only(out.take(), 'heartbeat', 'control');
        assert.deepEqual(answer.identities, [ENGINE_B]);
        assert.deepEqual(answer.content, {});
        assert.equal(answer.parent_header.msg_id, beat.header.msg_id);
      });

      it('answers a request clients may not make with its reply type, and serves on', () => {
        const req = request('heartbeat', {});
        assert.deepEqual(out.take(), [], 'not a request: nothing to answer');
        const reg = request('registration_request', { uuid: 'u', pid: 1, hostname: 'h' });
        const [reply] = out.take();
        assert.equal(reply.msg.header.msg_type, 'registration_reply');
        assert.equal(reply.msg.parent_header.msg_id, reg.header.msg_id);
        assertError(reply.msg.content, 'ProtocolError', /clients cannot send registration_request/);
        assert.ok(req);
      });

      it("beats for a process's engines together: one answer, and a left-out engine dies alone", () => {
        // Lightweight engines share their process's link (engine/shared-link.ts), whose
        // identity comes before each engine's own.
        const link = Buffer.from('process-link');
        for (const uuid of ['light-x', 'light-y']) {
          hub.handleEngine(
            wire(
              session.msg(
                'registration_request',
                { uuid, pid: 200, hostname: 'node-1' },
                { identities: [link, Buffer.from(uuid)] },
              ),
            ),
          );
        }
        const together = (engines: string[]): void =>
          hub.handleHeartbeat(wire(session.msg('heartbeat', { engines }, { identities: [link] })));
        out.take();
        together(['light-x', 'light-y', 'stranger']);
        const sent = out.take();
        assert.deepEqual(only(sent, 'heartbeat', 'control').identities, [link]);
        const lost = only(sent, 'registration_lost', 'control');
        assert.deepEqual(lost.identities, [link, Buffer.from('stranger')]);
        assert.deepEqual(liveEngines(), [0, 1, 2, 3]);
        // Its control messages reach the engine behind the link.
        request('signal_request', { targets: [3], signal: 'SIGINT' });
        const signal = only(out.take(), 'signal_request', 'control');
        assert.deepEqual(signal.identities, [link, Buffer.from('light-y')]);
        // One engine of the process stops: the process beats on for the other only.
        for (let t = 0; t < 4000; t += 500) {
          together(['light-x']);
          [ENGINE_A, ENGINE_B].forEach(beat);
          clock.advance(500);
        }
        assert.deepEqual(liveEngines(), [0, 1, 2]);
        // The process dies: its last engine goes too.
        onlyBeat([ENGINE_A, ENGINE_B]);
        assert.deepEqual(liveEngines(), [0, 1]);
      });

      it('tells an unknown identity to register, and does not count its beat', () => {
        const beat = session.msg('heartbeat', {}, { identities: [Buffer.from('stranger')] });
        hub.handleHeartbeat(wire(beat));
        const lost = only(out.take(), 'registration_lost', 'control');
        assert.match(lost.content.reason, /does not know this engine/);
        assert.deepEqual(liveEngines(), [0, 1]);
      });
    });
  });
});

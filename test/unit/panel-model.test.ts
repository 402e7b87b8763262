/**
 * The lab panel's model without a browser: how comm messages, replies, restarts and clicks
 * change what the panel shows, and the task stream's geometry.
 */
import { strict as assert } from 'node:assert';
import type {
  PanelEngine,
  KernelState,
  PanelMessage,
  PanelTask,
} from '../../kernel-ext/comm-messages';
import {
  axisTicks,
  ClusterModel,
  formatAmount,
  formatBytes,
  formatSeconds,
  resourceUse,
  taskSeconds,
  taskStream,
  waitsForText,
} from '../../labextension/src/model';

const T0 = Date.parse('2026-01-01T12:00:00.000Z');
const at = (ms: number): string => new Date(T0 + ms).toISOString();

const engine = (id: number, status: PanelEngine['status'] = 'idle'): PanelEngine => ({
  id,
  host: 'node',
  pid: 100 + id,
  status,
  queue: status === 'busy' ? 1 : 0,
  completed: 0,
  currentTask: null,
  replacedBy: null,
  cpu: null,
  memory: null,
  resources: { cpu: 1 },
  resourcesInUse: {},
});

const task = (id: string, engineId: number | null, fields: Partial<PanelTask> = {}): PanelTask => ({
  id,
  view: 'direct',
  engine: engineId,
  label: null,
  state: 'done',
  submitted: at(0),
  started: null,
  completed: null,
  resultPreview: null,
  errorPreview: null,
  map: null,
  published: 0,
  waitsFor: [],
  ...fields,
});

const kernelState = (fields: Partial<KernelState> = {}): KernelState => ({
  time: at(10_000),
  cluster: { controller: 'tcp://127.0.0.1:5555', launcher: 'local', started: at(0), uptime: 10 },
  engines: [engine(0), engine(1)],
  tasks: [],
  targets: 'all',
  views: [],
  maps: [],
  ...fields,
});

/** A model attached to a kernel whose messages the test collects. */
function connected(): { model: ClusterModel; sent: PanelMessage[]; changes: () => number } {
  const model = new ClusterModel();
  const sent: PanelMessage[] = [];
  let changes = 0;
  model.subscribe(() => changes++);
  model.attach((m) => sent.push(m));
  return { model, sent, changes: () => changes };
}

describe('panel model', () => {
  it("shows each engine's resources and what its tasks occupy, as the kernel sent them", () => {
    const { model } = connected();
    const gpu: PanelEngine = {
      ...engine(1, 'busy'),
      resources: { cpu: 1, gpu: 1, mem: 8e9 },
      resourcesInUse: { gpu: 1, mem: 2.5e9 },
    };
    model.receive({ type: 'state', state: kernelState({ engines: [engine(0), gpu] }) });
    const [idle, busy] = model.liveEngines().map(resourceUse);
    assert.deepEqual(idle, [{ name: 'cpu', inUse: 0, held: 1, fraction: 0, text: 'cpu 0/1' }]);
    assert.deepEqual(
      busy.map((r) => [r.text, r.fraction]),
      [
        ['cpu 0/1', 0],
        ['gpu 1/1', 1],
        ['mem 2.5G/8G', 2.5 / 8],
      ],
    );
    // A kernel that sends no resources is one the panel cannot read, and says so.
    const without: Partial<PanelEngine> = { ...gpu };
    delete without.resources;
    model.receive({ type: 'state', state: kernelState({ engines: [without as PanelEngine] }) });
    assert.match(String(model.error), /engines\[0\]\.resources is not an object/);
  });

  it('spells amounts as --resources takes them', () => {
    assert.deepEqual([0, 0.5, 4, 1500, 8e9, 1.25e12, 123456].map(formatAmount), [
      '0',
      '0.5',
      '4',
      '1.5K',
      '8G',
      '1.25T',
      '123K',
    ]);
  });

  it('says why it is empty until a kernel with a cluster answers', () => {
    const model = new ClusterModel();
    assert.match(String(model.emptyReason()), /No notebook is open/);
    model.detach('not-tsparallel', 'python3');
    assert.match(
      String(model.emptyReason()),
      /kernel \(python3\) is not a tsparallel kernel: change the kernel to "TypeScript \(tsparallel\)"/,
    );
    model.attach(() => {});
    assert.equal(model.phase, 'connecting');
    model.receive({ type: 'state', state: kernelState({ cluster: null, engines: [] }) });
    assert.equal(model.phase, 'connected');
    assert.match(String(model.emptyReason()), /No cluster is running: start one here/);
    model.receive({ type: 'state', state: kernelState() });
    assert.equal(model.emptyReason(), null);
  });

  it('sends commands with fresh request ids and tracks them until their reply', () => {
    const { model, sent, changes } = connected();
    model.receive({ type: 'state', state: kernelState() });
    const before = changes();
    const id = model.run({ type: 'engine:restart', id: 1 });
    assert.deepEqual(sent, [{ type: 'engine:restart', id: 1, requestId: id }]);
    assert.ok(model.waiting('engine:restart', 1));
    assert.ok(!model.waiting('engine:restart', 0));
    assert.ok(changes() > before);
    model.receive({ type: 'reply', requestId: String(id), ok: true });
    assert.ok(!model.waiting('engine:restart'));
    assert.equal(model.error, null);
    const other = model.run({ type: 'cluster:scale', engines: 5 });
    assert.notEqual(other, id);
  });

  it('shows a failed command until the next command or a dismissal', () => {
    const { model } = connected();
    const id = String(model.run({ type: 'cluster:start', engines: 2 }));
    model.receive({ type: 'reply', requestId: id, ok: false, error: 'a cluster is running' });
    assert.equal(model.error, 'a cluster is running');
    model.run({ type: 'cluster:stop' });
    assert.equal(model.error, null);
    const next = String(model.run({ type: 'engine:add', count: 1 }));
    model.receive({ type: 'reply', requestId: next, ok: false, error: 'no cluster' });
    model.dismissError();
    assert.equal(model.error, null);
  });

  it('ignores replies to requests it did not send', () => {
    const { model, changes } = connected();
    const before = changes();
    model.receive({ type: 'reply', requestId: 'r999', ok: false, error: 'not ours' });
    assert.equal(changes(), before);
    assert.equal(model.error, null);
  });

  it('drops a message it cannot read, keeps its last state and says what was wrong', () => {
    const { model } = connected();
    const good = kernelState();
    model.receive({ type: 'state', state: good });
    const bad: [unknown, RegExp][] = [
      [null, /unknown kernel message undefined; known: state, reply/],
      [{ type: 'gossip' }, /unknown kernel message "gossip"/],
      [{ type: 'state' }, /message\.state is not an object/],
      [
        { type: 'state', state: { ...good, engines: {} } },
        /message\.state\.engines is not an array/,
      ],
      [{ type: 'state', state: { ...good, tasks: undefined } }, /state\.tasks is not an array/],
      [{ type: 'state', state: { ...good, views: 'none' } }, /state\.views is not an array/],
      [{ type: 'state', state: { ...good, cluster: 'up' } }, /state\.cluster is not an object/],
      [
        {
          type: 'state',
          state: { ...good, engines: [engine(0), { ...engine(1), status: 'asleep' }] },
        },
        /state\.engines\[1\]\.status is not one of idle, busy, dead, restarting/,
      ],
      [
        { type: 'state', state: { ...good, tasks: [{ ...task('a', 0), submitted: 5 }] } },
        /state\.tasks\[0\]\.submitted is not a string/,
      ],
      [
        { type: 'state', state: { ...good, tasks: [{ ...task('a', 0), waitsFor: ['b'] }] } },
        /state\.tasks\[0\]\.waitsFor\[0\] is not an object/,
      ],
      [{ type: 'reply', ok: true }, /reply: message\.requestId is not a string/],
      [{ type: 'reply', requestId: 'r1', ok: false }, /message\.error is not a string/],
      [
        { type: 'reply', requestId: 'r1', ok: true, output: { id: 'a', stdout: 'x' } },
        /message\.output\.stderr is not a string/,
      ],
      [
        {
          type: 'reply',
          requestId: 'r1',
          ok: true,
          output: { id: 'a', stdout: '', stderr: '', result: null, error: null, data: 3 },
        },
        /message\.output\.data is not/,
      ],
    ];
    for (const [data, problem] of bad) {
      model.dismissError();
      model.receive(data);
      assert.match(String(model.error), problem);
      assert.match(String(model.error), /^The panel cannot read a message from the kernel/);
      assert.equal(model.state, good, 'the last good state stays');
    }
    const malformed = { type: 'state', state: { ...good, engines: null } };
    const fresh = new ClusterModel();
    fresh.attach(() => {});
    fresh.receive(malformed);
    assert.equal(fresh.state, null);
    assert.equal(fresh.phase, 'connecting', 'a malformed first state does not count as connected');
  });

  it('shows a command that could not be sent as an error instead of waiting for it', () => {
    const model = new ClusterModel();
    model.attach(() => {
      throw new Error('Comm is closed');
    });
    model.receive({ type: 'state', state: kernelState({ tasks: [task('a', 0)] }) });
    assert.equal(model.run({ type: 'cluster:stop' }), undefined);
    assert.equal(model.pending.size, 0);
    assert.ok(!model.clusterBusy(), 'no "working…" for a command that never left');
    assert.match(String(model.error), /did not reach the kernel \(Comm is closed\)/);
    model.toggle('a');
    assert.deepEqual(model.outputs.get('a'), {
      status: 'failed',
      error: 'the request did not reach the kernel',
    });
  });

  it('sends nothing while no tsparallel kernel is connected', () => {
    const model = new ClusterModel();
    assert.equal(model.run({ type: 'cluster:stop' }), undefined);
    assert.equal(model.pending.size, 0);
  });

  it("opens a task's full output once, and again while the task still runs", () => {
    const { model, sent } = connected();
    const done = task('a', 0, { resultPreview: '42' });
    const running = task('b', 1, { state: 'pending' });
    model.receive({ type: 'state', state: kernelState({ tasks: [done, running] }) });

    model.toggle('a');
    assert.deepEqual(model.outputs.get('a'), { status: 'loading' });
    const ask = sent.at(-1)!;
    assert.deepEqual(ask, { type: 'task:output', id: 'a', requestId: ask.requestId });
    const output = {
      id: 'a',
      stdout: 'hi\n',
      stderr: '',
      result: '42',
      error: null,
      data: null,
      truncated: false,
    };
    model.receive({ type: 'reply', requestId: ask.requestId, ok: true, output });
    assert.deepEqual(model.outputs.get('a'), { status: 'ready', output });
    model.toggle('a');
    assert.ok(!model.expanded.has('a'));
    model.toggle('a');
    assert.ok(model.expanded.has('a'));
    assert.equal(sent.length, 1, 'a finished task is fetched once');

    model.toggle('b');
    const again = sent.at(-1)!;
    model.receive({ type: 'reply', requestId: again.requestId, ok: false, error: 'gone' });
    assert.deepEqual(model.outputs.get('b'), { status: 'failed', error: 'gone' });
    assert.equal(model.error, null, "a task's missing output is shown in its row, not as an error");
    model.toggle('b');
    model.toggle('b');
    assert.equal(sent.length, 3, 'a running task is fetched each time it opens');
  });

  it("fetches an open task's output again when the task finishes", () => {
    const { model, sent } = connected();
    const running = task('a', 0, { state: 'pending' });
    model.receive({ type: 'state', state: kernelState({ tasks: [running] }) });
    model.toggle('a');
    const first = sent.at(-1)!;
    const partial = {
      id: 'a',
      stdout: 'step 1\n',
      stderr: '',
      result: null,
      error: null,
      data: null,
    };
    model.receive({
      type: 'reply',
      requestId: first.requestId,
      ok: true,
      output: { ...partial, truncated: false },
    });
    model.receive({ type: 'state', state: kernelState({ tasks: [running] }) });
    assert.equal(sent.length, 1, 'an unchanged state fetches nothing');

    model.receive({
      type: 'state',
      state: kernelState({ tasks: [{ ...running, state: 'done' }] }),
    });
    assert.equal(sent.length, 2);
    assert.deepEqual(sent[1], { type: 'task:output', id: 'a', requestId: sent[1].requestId });
    assert.deepEqual(model.outputs.get('a'), { status: 'loading' });

    // Closed while it finished: reopening fetches the finished output.
    const b = task('b', 1, { state: 'pending' });
    model.receive({ type: 'state', state: kernelState({ tasks: [b] }) });
    model.toggle('b');
    model.receive({ type: 'reply', requestId: sent[2].requestId, ok: false, error: 'x' });
    model.toggle('b');
    model.receive({ type: 'state', state: kernelState({ tasks: [{ ...b, state: 'error' }] }) });
    assert.equal(sent.length, 3, 'a closed task is not fetched');
    model.toggle('b');
    assert.equal(sent.length, 4);
    assert.equal(sent[3].type, 'task:output');
  });

  it("fetches an open running task's output again when it publishes data, to show the latest", () => {
    const { model, sent } = connected();
    const running = task('a', 0, { state: 'pending' });
    model.receive({ type: 'state', state: kernelState({ tasks: [running] }) });
    model.toggle('a');
    const output = (data: string | null) => ({
      id: 'a',
      stdout: '',
      stderr: '',
      result: null,
      error: null,
      data,
      truncated: false,
    });
    model.receive({ type: 'reply', requestId: sent[0].requestId, ok: true, output: output(null) });
    model.receive({ type: 'state', state: kernelState({ tasks: [{ ...running, published: 1 }] }) });
    assert.equal(sent.length, 2, 'new data fetches the output again');
    const latest = output('{ step: 1 }');
    model.receive({ type: 'reply', requestId: sent[1].requestId, ok: true, output: latest });
    assert.deepEqual(model.outputs.get('a'), { status: 'ready', output: latest });
    model.receive({ type: 'state', state: kernelState({ tasks: [{ ...running, published: 1 }] }) });
    assert.equal(sent.length, 2, 'no new data, no fetch');
  });

  it('forgets the old kernel on a restart and starts over when the new one answers', () => {
    const { model, sent } = connected();
    model.receive({ type: 'state', state: kernelState({ tasks: [task('a', 0)] }) });
    model.toggle('a');
    model.run({ type: 'cluster:stop' });
    model.detach('restarting');
    assert.equal(model.state, null);
    assert.equal(model.pending.size, 0);
    assert.equal(model.expanded.size, 0);
    assert.match(String(model.error), /restarted before it answered/);
    assert.match(String(model.emptyReason()), /restarting; the panel reconnects/);
    assert.equal(model.run({ type: 'cluster:stop' }), undefined);

    const after: PanelMessage[] = [];
    model.attach((m) => after.push(m));
    assert.equal(model.phase, 'connecting');
    assert.equal(model.error, null);
    model.receive({ type: 'state', state: kernelState({ cluster: null, engines: [] }) });
    assert.match(String(model.emptyReason()), /No cluster is running/);
    model.run({ type: 'cluster:start', engines: 3 });
    assert.equal(after.length, 1);
    assert.equal(sent.length, 2, 'nothing more went to the old kernel');
  });

  it("advances the kernel's clock and the uptime between states", () => {
    const { model } = connected();
    const now = Date.now();
    model.receive({ type: 'state', state: kernelState() });
    assert.ok(Math.abs(model.kernelTime(now + 5_000) - (T0 + 15_000)) < 1_000);
    assert.ok(Math.abs(model.uptime(now + 5_000) - 15) < 1);
  });

  it('lists live engines', () => {
    const { model } = connected();
    model.receive({
      type: 'state',
      state: kernelState({ engines: [engine(0, 'dead'), engine(1, 'busy'), engine(2)] }),
    });
    assert.deepEqual(
      model.liveEngines().map((e) => e.id),
      [1, 2],
    );
  });
});

describe('panel model: waiting tasks', () => {
  const ids = ['5f0c2a1e-0000', '9b77d3c4-0000', 'c0ffee00-0000', 'deadbeef-0000'];

  it('says what a waiting task waits for, by label or the start of its id', () => {
    const waiting = task('t', null, {
      state: 'pending',
      waitsFor: [
        { id: ids[0], label: 'load' },
        { id: ids[1], label: null },
      ],
    });
    assert.equal(waitsForText(waiting), 'waits for 2: load, 9b77d3…');
  });

  it('names three and counts the rest', () => {
    const waitsFor = ids.map((id) => ({ id, label: null }));
    assert.equal(
      waitsForText(task('t', null, { state: 'pending', waitsFor })),
      'waits for 4: 5f0c2a…, 9b77d3…, c0ffee…, …',
    );
  });

  it('says nothing for a task that waits for nothing, or that ended', () => {
    assert.equal(waitsForText(task('t', null, { state: 'pending' })), '');
    const ended = task('t', 0, { state: 'error', waitsFor: [{ id: ids[0], label: null }] });
    assert.equal(waitsForText(ended), '');
  });
});

describe('panel model: maps and clearing', () => {
  it("shows the latest maps' progress, newest first, running or finished", () => {
    const { model } = connected();
    model.receive({
      type: 'state',
      state: kernelState({
        maps: [
          { id: 0, view: 'balanced', total: 4, done: 4, failed: 0 },
          { id: 1, view: 'direct', total: 2, done: 0, failed: 1 },
          { id: 2, view: 'balanced', total: 8, done: 2, failed: 0 },
        ],
      }),
    });
    assert.deepEqual(
      model.mapProgress().map((p) => [p.map.id, p.fraction, p.running]),
      [
        [2, 0.25, true],
        [1, 0.5, true],
        [0, 1, false],
      ],
    );
    assert.deepEqual(
      model.mapProgress(1).map((p) => p.map.id),
      [2],
    );
  });

  it('offers to clear finished tasks only when there are some, and asks the kernel to', () => {
    const { model, sent } = connected();
    model.receive({
      type: 'state',
      state: kernelState({ tasks: [task('a', 0, { state: 'pending' })] }),
    });
    assert.equal(model.hasFinished(), false);
    model.receive({
      type: 'state',
      state: kernelState({ tasks: [task('a', 0, { state: 'pending' }), task('b', 1)] }),
    });
    assert.equal(model.hasFinished(), true);
    model.clearFinished();
    assert.deepEqual(sent, [{ type: 'tasks:clear', requestId: 'r1' }]);
    assert.equal(model.waiting('tasks:clear'), true);
  });
});

describe('task stream', () => {
  const state = kernelState({
    engines: [engine(0), engine(1, 'busy'), engine(2, 'dead'), engine(3, 'dead')],
    tasks: [
      task('a', 0, { started: at(1_000), completed: at(3_000) }),
      task('b', 1, { state: 'pending', submitted: at(2_000) }),
      task('c', 0, { state: 'error', started: at(5_000), completed: at(5_000) }),
      task('d', null, { view: 'balanced', state: 'pending', submitted: at(6_000) }),
      task('e', 2, { started: at(3_000), completed: at(4_000) }),
    ],
  });

  it('draws a lane per engine and a bar per placed task, from start to end or now', () => {
    const s = taskStream(state, T0 + 9_000, 800);
    assert.equal(s.start, T0 + 1_000);
    assert.equal(s.end, T0 + 9_000);
    assert.deepEqual(
      s.lanes.map((l) => [l.engine, l.bars.map((b) => [b.id, b.state, b.x, b.width])]),
      [
        [
          0,
          [
            ['a', 'done', 0, 200],
            ['c', 'error', 400, 1],
          ],
        ],
        [1, [['b', 'pending', 100, 700]]],
        [2, [['e', 'done', 200, 100]]],
      ],
      'dead engine 3 has no bars and no lane; balanced task d has no engine yet',
    );
  });

  it('says on hover which task a bar is, its engine, its time and its state', () => {
    const s = taskStream(state, T0 + 9_000, 800);
    assert.deepEqual(
      s.lanes[0].bars.map((b) => b.summary),
      ['task a · engine 0 · 2.0 s · done', 'task c · engine 0 · 0 ms · error'],
    );
    assert.equal(s.lanes[1].bars[0].summary, 'task b · engine 1 · 7.0 s · pending');
  });

  it('marks the time axis back from now in round steps, at most five', () => {
    assert.deepEqual(
      axisTicks(8_000, 800).map((t) => [t.x, t.label]),
      [
        [800, 'now'],
        [600, '-2 s'],
        [400, '-4 s'],
        [200, '-6 s'],
        [0, '-8 s'],
      ],
    );
    assert.deepEqual(
      axisTicks(1_000, 100).map((t) => t.label),
      ['now', '-0.2 s', '-0.4 s', '-0.6 s', '-0.8 s', '-1 s'],
    );
    assert.deepEqual(axisTicks(0, 100), [{ x: 100, label: 'now' }]);
    assert.deepEqual(
      axisTicks(600_000, 100).map((t) => t.label),
      ['now', '-2 min 0 s', '-4 min 0 s', '-6 min 0 s', '-8 min 0 s', '-10 min 0 s'],
    );
  });

  it('writes memory sizes in binary units', () => {
    assert.deepEqual([512, 2048, 85 * 1024 ** 2, 1.25 * 1024 ** 3].map(formatBytes), [
      '512 B',
      '2.0 KB',
      '85 MB',
      '1.3 GB',
    ]);
  });

  it('has lanes and no bars before any task', () => {
    const s = taskStream(kernelState(), T0, 100);
    assert.deepEqual(
      s.lanes.map((l) => [l.engine, l.bars.length]),
      [
        [0, 0],
        [1, 0],
      ],
    );
  });

  it('times tasks from their start, or their submission until the engine reports it', () => {
    assert.equal(taskSeconds(state.tasks[0], T0 + 9_000), 2);
    assert.equal(taskSeconds(state.tasks[1], T0 + 9_000), 7);
    assert.deepEqual([0.25, 4.44, 12.4, 184, 7_500].map(formatSeconds), [
      '250 ms',
      '4.4 s',
      '12 s',
      '3 min 4 s',
      '2 h 5 min',
    ]);
  });

  it('rounds durations to the unit it shows before choosing the unit', () => {
    assert.deepEqual([0.9996, 9.96, 59.6, 239.6, 3_599.6].map(formatSeconds), [
      '1.0 s',
      '10 s',
      '1 min 0 s',
      '4 min 0 s',
      '1 h 0 min',
    ]);
  });
});

/**
 * The lab panel's comm, driven by a real Jupyter client: open it and receive the state, send
 * commands and see their effect in the state and in the notebook.
 */
import { strict as assert } from 'node:assert';
import {
  parseKernelMessage,
  type KernelMessage,
  type KernelState,
} from '../../kernel-ext/comm-messages';
import {
  drive,
  installKernel,
  ofType,
  streamText,
  type Executed,
  type KernelEnv,
} from './kernel-fixture';

type Reply = Extract<KernelMessage, { type: 'reply' }>;

const states = (msgs: KernelMessage[]): KernelState[] =>
  msgs.flatMap((m) => (m.type === 'state' ? [m.state] : []));
const replyOf = (msgs: KernelMessage[]): Reply | undefined =>
  msgs.find((m): m is Reply => m.type === 'reply');
const errorOf = (r: Reply | undefined): string => (r?.ok === false ? r.error : '');

describe('kernel comm for the lab panel', function () {
  this.timeout(600_000);
  let k: KernelEnv;
  const results = new Map<string, unknown>();

  before(async () => {
    k = await installKernel();
    const send = (data: object) => ({ op: 'comm_send', comm_id: 'panel', data });
    /** Refreshes the driver's view of the state, for the ids "$PENDING" and "$LAST" pick. */
    const look = (name: string) => send({ type: 'targets:set', targets: 'all', requestId: name });
    const steps: [string, object][] = [
      ['open', { op: 'comm_open', comm_id: 'panel' }],
      ['info', { op: 'comm_info' }],
      ['start', send({ type: 'cluster:start', engines: 2, requestId: 'start' })],
      ['px', { op: 'execute', code: '%px "from the panel\'s cluster"' }],
      ['add', send({ type: 'engine:add', count: 1, requestId: 'add' })],
      ['targets', send({ type: 'targets:set', targets: '1:', requestId: 'targets' })],
      ['px12', { op: 'execute', code: '%px "on 1 and 2"' }],
      ['stop0', send({ type: 'engine:stop', id: 0, requestId: 'stop0' })],
      ['bad', send({ type: 'targets:set', targets: 'x', requestId: 'bad' })],
      ['unknown', send({ type: 'warp', requestId: 'unknown' })],
      [
        'map',
        { op: 'execute', code: 'await rc.loadBalancedView().map((n: number) => n + 1, [1, 2, 3])' },
      ],
      ['all', look('all')],
      [
        'printing',
        {
          op: 'execute',
          code:
            "%%px --targets 1\nconsole.log('line one'); console.error('a warning');\n" +
            'publish({ rows: 1 }); publish({ rows: 3 }); 6 * 7',
        },
      ],
      ['see printing', look('see printing')],
      ['output', send({ type: 'task:output', id: '$LAST', requestId: 'output' })],
      ['failing', { op: 'execute', code: "%%px --targets 1\nthrow new TypeError('bad input')" }],
      ['see failing', look('see failing')],
      ['error output', send({ type: 'task:output', id: '$LAST', requestId: 'error output' })],
      ['no output', send({ type: 'task:output', id: 'nope', requestId: 'no output' })],
      [
        'sleeping',
        {
          op: 'execute',
          code: '%%px --noblock --targets 2\nawait new Promise((r) => setTimeout(r, 600_000))',
        },
      ],
      ['see sleeping', look('see sleeping')],
      ['interrupt', send({ type: 'engine:interrupt', id: 2, requestId: 'interrupt' })],
      ['interrupted', { op: 'comm_until', comm_id: 'panel', task: '$LAST', state: 'error' }],
      [
        'sleeping again',
        {
          op: 'execute',
          code: '%%px --noblock --targets 2\nawait new Promise((r) => setTimeout(r, 600_000))',
        },
      ],
      ['see pending', look('see pending')],
      ['abort', send({ type: 'task:abort', id: '$PENDING', requestId: 'abort' })],
      ['restart', send({ type: 'engine:restart', id: 1, requestId: 'restart' })],
      ['scale', send({ type: 'cluster:scale', engines: 1, requestId: 'scale' })],
      ['scale magic', { op: 'execute', code: '%cluster scale 3' }],
      [
        'actor',
        {
          op: 'execute',
          code:
            'class Tally { n = 0; add(k: number) { return (this.n += k); } }\n' +
            'const tally = await rc.loadBalancedView().actor(Tally);\n' +
            'await tally.add(2);\nawait tally.add(3)',
        },
      ],
      ['see actor', look('see actor')],
      [
        'graph',
        {
          op: 'execute',
          code:
            'const gv = rc.loadBalancedView();\n' +
            "const gate = gv.withOptions({ label: 'gate' }).apply(() => new Promise<number>((r) => setTimeout(() => r(20), 600_000)));\n" +
            'const opener = gv.apply(() => new Promise<number>((r) => setTimeout(() => r(1), 1_000)));\n' +
            'const waiter = gv.apply((g: number, o: number) => g + o, gate, opener);\n' +
            'const ready = gv.apply(() => 20);',
        },
      ],
      ['see waiting', look('see waiting')],
      ['opened', { op: 'execute', code: 'await opener' }],
      ['see opened', look('see opened')],
      [
        'abort gate',
        {
          op: 'execute',
          code: 'await gate.abort();\nawait waiter.wait();\nwaiter.metadata[0].status',
        },
      ],
      ['see aborted', look('see aborted')],
      [
        'earlier cells',
        {
          op: 'execute',
          code: 'await gv.apply((a: number, b: number) => a * 2 + b, ready, tally.add(1))',
        },
      ],
      ['see finished', look('see finished')],
      ['clear', send({ type: 'tasks:clear', requestId: 'clear' })],
      ['stop', send({ type: 'cluster:stop', requestId: 'stop' })],
    ];
    const out = await drive(
      k,
      steps.map(([, step]) => step),
    );
    steps.forEach(([name], i) => results.set(name, out[i]));
  });
  after(() => k?.cleanup());

  /** What the kernel sent during `step`, each checked as the panel checks it. */
  const msgs = (step: string): KernelMessage[] =>
    (results.get(step) as unknown[]).map(parseKernelMessage);
  const last = (step: string): KernelState => states(msgs(step)).at(-1) as KernelState;
  const executed = (step: string): Executed => results.get(step) as Executed;

  it('sends the state when the comm opens and lists the comm in comm_info', () => {
    const [first] = states(msgs('open'));
    assert.equal(first.cluster, null);
    assert.equal(first.targets, 'all');
    assert.ok(Math.abs(Date.parse(first.time) - Date.now()) < 600_000, first.time);
    const info = results.get('info') as {
      content: { comms: Record<string, { target_name: string }> };
    };
    assert.deepEqual(info.content.comms, { panel: { target_name: 'tsparallel' } });
  });

  it('cluster:start starts a cluster that the state shows and %px uses', () => {
    assert.deepEqual(replyOf(msgs('start')), { type: 'reply', requestId: 'start', ok: true });
    const state = last('start');
    assert.equal(state.cluster?.launcher, 'local');
    assert.match(String(state.cluster?.controller), /^tcp:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(
      state.engines.map((e) => [e.id, e.status]),
      [
        [0, 'idle'],
        [1, 'idle'],
      ],
    );
    assert.equal(ofType(executed('px'), 'execute_result').length, 2);
  });

  it('engine:add and targets:set change the engines and what %px runs on', () => {
    assert.equal(replyOf(msgs('add'))?.ok, true);
    assert.deepEqual(
      last('add').engines.map((e) => e.id),
      [0, 1, 2],
    );
    assert.equal(last('targets').targets, '1:');
    const ran = ofType(executed('px12'), 'execute_result').map(
      (c) => (c.metadata as { engine: number }).engine,
    );
    assert.deepEqual(ran, [1, 2]);
  });

  it('shows the tasks the kernel sent, with their engine, state and the value %px printed', () => {
    const tasks = last('targets').tasks;
    assert.ok(tasks.length >= 2);
    assert.ok(tasks.every((t) => t.state === 'done' && t.view === 'direct' && t.engine !== null));
    assert.equal(tasks[0].resultPreview, `"from the panel's cluster"`);
  });

  it('engine:stop marks the engine dead, keeping the count of tasks it did', () => {
    assert.equal(replyOf(msgs('stop0'))?.ok, true);
    assert.equal(last('stop0').engines[0].completed, 1);
    assert.deepEqual(
      last('stop0').engines.map((e) => [e.id, e.status]),
      [
        [0, 'dead'],
        [1, 'idle'],
        [2, 'idle'],
      ],
    );
  });

  it('answers a bad command with one sentence', () => {
    assert.equal(replyOf(msgs('bad'))?.ok, false);
    assert.match(errorOf(replyOf(msgs('bad'))), /--targets takes all/);
    assert.match(errorOf(replyOf(msgs('unknown'))), /unknown panel command "warp"/);
  });

  it('lists the views code and %px sent tasks through', () => {
    assert.deepEqual(
      last('all').views.map((v) => [v.kind, v.targets, v.tasks]),
      [
        ['direct', [0, 1], 2],
        ['direct', [1, 2], 2],
        ['balanced', null, 3],
      ],
    );
  });

  it("shows each live engine's CPU and memory, from its heartbeats", () => {
    const live = last('all').engines.filter((e) => e.status !== 'dead');
    assert.equal(live.length, 2);
    for (const e of live) {
      assert.ok(e.cpu !== null && e.cpu >= 0, `engine ${e.id} cpu ${e.cpu}`);
      assert.ok(e.memory !== null && e.memory > 10 * 1024 * 1024, `engine ${e.id} ${e.memory}`);
    }
    assert.deepEqual(
      last('all')
        .engines.filter((e) => e.status === 'dead')
        .map((e) => [e.cpu, e.memory]),
      [[null, null]],
    );
  });

  it("counts a map's tasks as they finish, and marks which map each task is of", () => {
    assert.deepEqual(last('all').maps, [{ id: 0, view: 'balanced', total: 3, done: 3, failed: 0 }]);
    const tasks = last('all').tasks;
    assert.deepEqual(
      tasks.map((t) => t.map),
      [null, null, null, null, 0, 0, 0],
    );
  });

  it('tasks:clear forgets the finished tasks and maps', () => {
    assert.ok(last('see finished').tasks.length > 0);
    assert.equal(replyOf(msgs('clear'))?.ok, true);
    assert.deepEqual(last('clear').tasks, []);
    assert.deepEqual(last('clear').maps, []);
  });

  it("task:output answers with a task's whole stdout, stderr, latest data and value", () => {
    const reply = replyOf(msgs('output'));
    assert.equal(reply?.ok, true);
    assert.deepEqual(reply?.ok && reply.output, {
      id: last('see printing').tasks.at(-1)?.id,
      stdout: 'line one\n',
      stderr: 'a warning\n',
      result: '42',
      error: null,
      data: '{ rows: 3 }',
      truncated: false,
    });
  });

  it("task:output answers with a failed task's error and the engine's traceback", () => {
    const reply = replyOf(msgs('error output'));
    const output = reply?.ok ? reply.output : undefined;
    assert.equal(output?.result, null);
    assert.equal(output?.data, null);
    assert.match(String(output?.error), /^TypeError: bad input\n\s+at /);
    assert.equal(last('see failing').tasks.at(-1)?.errorPreview, '[engine 1] TypeError: bad input');
    assert.match(errorOf(replyOf(msgs('no output'))), /task nope is not among the 200 latest/);
  });

  it("engine:interrupt interrupts the engine's running task, and the engine goes on", () => {
    const sleeping = last('see sleeping');
    const task = sleeping.tasks.find((t) => t.state === 'pending');
    assert.equal(task?.engine, 2);
    assert.deepEqual(
      sleeping.engines.filter((e) => e.status === 'busy').map((e) => [e.id, e.currentTask]),
      [[2, task?.id]],
    );
    assert.equal(replyOf(msgs('interrupt'))?.ok, true);
    const done = [...states(msgs('interrupt')), ...states(msgs('interrupted'))]
      .flatMap((s) => s.tasks)
      .findLast((t) => t.id === task?.id);
    assert.equal(done?.state, 'error');
    assert.match(String(done?.errorPreview), /InterruptedError/);
    // The engine lives on and runs the next task.
    assert.equal(last('see pending').engines.find((e) => e.id === 2)?.status, 'busy');
  });

  it('task:abort stops a running task', () => {
    const pending = last('see pending').tasks.filter((t) => t.state === 'pending');
    assert.deepEqual(
      pending.map((t) => t.engine),
      [2],
    );
    assert.equal(replyOf(msgs('abort'))?.ok, true);
    const aborted = last('abort').tasks.find((t) => t.id === pending[0].id);
    assert.equal(aborted?.state, 'error');
    assert.match(String(aborted?.errorPreview), /aborted/);
  });

  it('engine:restart shows the engine restarting, then replaced by a new one', () => {
    assert.equal(replyOf(msgs('restart'))?.ok, true);
    const during = states(msgs('restart')).map((s) => s.engines.find((e) => e.id === 1)?.status);
    assert.ok(during.includes('restarting'), `engine 1 was ${during.join(', ')}`);
    assert.deepEqual(
      last('restart').engines.map((e) => [e.id, e.status, e.replacedBy]),
      [
        [0, 'dead', null],
        [1, 'dead', 3],
        [2, 'idle', null],
        [3, 'idle', null],
      ],
    );
  });

  it('cluster:scale and %cluster scale N shrink and grow the cluster', () => {
    assert.equal(replyOf(msgs('scale'))?.ok, true);
    assert.equal(last('scale').engines.filter((e) => e.status !== 'dead').length, 1);
    assert.match(streamText(executed('scale magic')), /The cluster has 3 engines: /);
  });

  it('lists an actor made in a cell, with its class, engine and calls done', () => {
    const [result] = ofType(executed('actor'), 'execute_result');
    assert.equal((result?.data as Record<string, string>)['text/plain'], '5');
    const state = last('see actor');
    const actor = state.views.find((v) => v.actor !== null)?.actor;
    assert.deepEqual(actor && [actor.className, actor.calls], ['Tally', 2]);
    const live = state.engines.filter((e) => e.status !== 'dead').map((e) => e.id);
    assert.ok(
      actor && live.includes(actor.engine),
      `engine ${actor?.engine} of ${live.join(', ')}`,
    );
  });

  it('shows what a waiting task waits for, by label or id, as long as those have not finished', () => {
    const [gate, opener, waiter, ready] = last('see waiting').tasks.slice(-4);
    assert.deepEqual(
      [gate.label, gate.state, waiter.state, ready.waitsFor],
      ['gate', 'pending', 'pending', []],
    );
    // The opener sleeps a second: the panel may already have seen it finish.
    const stillOpening = opener.state === 'pending' ? [{ id: opener.id, label: null }] : [];
    assert.deepEqual(waiter.waitsFor, [{ id: gate.id, label: 'gate' }, ...stillOpening]);
    const opened = last('see opened').tasks.find((t) => t.id === waiter.id);
    assert.deepEqual(
      [opened?.state, opened?.waitsFor],
      ['pending', [{ id: gate.id, label: 'gate' }]],
    );
    const [status] = ofType(executed('abort gate'), 'execute_result');
    assert.equal((status?.data as Record<string, string>)['text/plain'], 'error');
    const aborted = last('see aborted').tasks.find((t) => t.id === waiter.id);
    assert.deepEqual([aborted?.state, aborted?.waitsFor], ['error', []]);
  });

  it("takes an earlier cell's AsyncResult and actor's call as arguments", () => {
    const [result] = ofType(executed('earlier cells'), 'execute_result');
    assert.equal((result?.data as Record<string, string>)['text/plain'], '46');
  });

  it('cluster:stop stops it and the state is empty again', () => {
    assert.equal(replyOf(msgs('stop'))?.ok, true);
    assert.equal(last('stop').cluster, null);
  });
});

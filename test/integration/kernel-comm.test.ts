/**
 * The lab panel's comm, driven by a real Jupyter client: open it and receive the state, send
 * commands and see their effect in the state and in the notebook.
 */
import { strict as assert } from 'node:assert';
import type { KernelMessage, KernelState } from '../../kernel-ext/comm-messages';
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

describe('kernel comm for the lab panel', function () {
  this.timeout(600_000);
  let k: KernelEnv;
  let results: unknown[];

  before(async () => {
    k = await installKernel();
    const send = (data: object) => ({ op: 'comm_send', comm_id: 'panel', data });
    results = await drive(k, [
      { op: 'comm_open', comm_id: 'panel' },
      { op: 'comm_info' },
      send({ type: 'cluster:start', engines: 2, requestId: 'start' }),
      { op: 'execute', code: '%px "from the panel\'s cluster"' },
      send({ type: 'engine:add', count: 1, requestId: 'add' }),
      send({ type: 'targets:set', targets: '1:', requestId: 'targets' }),
      { op: 'execute', code: '%px "on 1 and 2"' },
      send({ type: 'engine:stop', id: 0, requestId: 'stop0' }),
      send({ type: 'targets:set', targets: 'x', requestId: 'bad' }),
      send({ type: 'warp', requestId: 'unknown' }),
      { op: 'execute', code: 'await rc.loadBalancedView().map((n: number) => n + 1, [1, 2, 3])' },
      send({ type: 'targets:set', targets: 'all', requestId: 'all' }),
      {
        op: 'execute',
        code: '%%px --noblock --targets 2\nawait new Promise((r) => setTimeout(r, 600_000))',
      },
      send({ type: 'targets:set', targets: 'all', requestId: 'see pending' }),
      send({ type: 'task:abort', id: '$PENDING', requestId: 'abort' }),
      send({ type: 'engine:restart', id: 1, requestId: 'restart' }),
      send({ type: 'cluster:scale', engines: 1, requestId: 'scale' }),
      { op: 'execute', code: '%cluster scale 3' },
      send({ type: 'cluster:stop', requestId: 'stop' }),
    ]);
  });
  after(() => k?.cleanup());

  const msgs = (i: number): KernelMessage[] => results[i] as KernelMessage[];

  it('sends the state when the comm opens and lists the comm in comm_info', () => {
    const [first] = states(msgs(0));
    assert.equal(first.cluster, null);
    assert.equal(first.targets, 'all');
    const info = results[1] as { content: { comms: Record<string, { target_name: string }> } };
    assert.deepEqual(info.content.comms, { panel: { target_name: 'tsparallel' } });
  });

  it('cluster:start starts a cluster that the state shows and %px uses', () => {
    assert.deepEqual(replyOf(msgs(2)), { type: 'reply', requestId: 'start', ok: true });
    const state = states(msgs(2)).at(-1) as KernelState;
    assert.equal(state.cluster?.launcher, 'local');
    assert.match(String(state.cluster?.controller), /^tcp:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(
      state.engines.map((e) => [e.id, e.status]),
      [
        [0, 'idle'],
        [1, 'idle'],
      ],
    );
    assert.equal(ofType(results[3] as Executed, 'execute_result').length, 2);
  });

  it('engine:add and targets:set change the engines and what %px runs on', () => {
    assert.equal(replyOf(msgs(4))?.ok, true);
    assert.deepEqual(
      (states(msgs(4)).at(-1) as KernelState).engines.map((e) => e.id),
      [0, 1, 2],
    );
    assert.equal((states(msgs(5)).at(-1) as KernelState).targets, '1:');
    const ran = ofType(results[6] as Executed, 'execute_result').map(
      (c) => (c.metadata as { engine: number }).engine,
    );
    assert.deepEqual(ran, [1, 2]);
  });

  it('shows the tasks the kernel sent, with their engine and state', () => {
    const tasks = (states(msgs(5)).at(-1) as KernelState).tasks;
    assert.ok(tasks.length >= 2);
    assert.ok(tasks.every((t) => t.state === 'done' && t.view === 'direct' && t.engine !== null));
    assert.match(String(tasks[0].resultPreview), /from the panel's cluster/);
  });

  it('engine:stop marks the engine dead', () => {
    assert.equal(replyOf(msgs(7))?.ok, true);
    const engines = (states(msgs(7)).at(-1) as KernelState).engines;
    assert.deepEqual(
      engines.map((e) => [e.id, e.status]),
      [
        [0, 'dead'],
        [1, 'idle'],
        [2, 'idle'],
      ],
    );
  });

  it('answers a bad command with one sentence', () => {
    const bad = replyOf(msgs(8));
    assert.equal(bad?.ok, false);
    assert.match(bad?.ok === false ? bad.error : '', /--targets takes all/);
    const unknown = replyOf(msgs(9));
    assert.match(unknown?.ok === false ? unknown.error : '', /unknown panel command "warp"/);
  });

  it('lists the views code and %px sent tasks through', () => {
    const views = (states(msgs(11)).at(-1) as KernelState).views;
    assert.deepEqual(
      views.map((v) => [v.kind, v.targets, v.tasks]),
      [
        ['direct', [0, 1], 2],
        ['direct', [1, 2], 2],
        ['balanced', null, 3],
      ],
    );
  });

  it('task:abort stops a running task', () => {
    const pending = (states(msgs(13)).at(-1) as KernelState).tasks.filter(
      (t) => t.state === 'pending',
    );
    assert.deepEqual(
      pending.map((t) => t.engine),
      [2],
    );
    assert.equal(replyOf(msgs(14))?.ok, true);
    const aborted = (states(msgs(14)).at(-1) as KernelState).tasks.find(
      (t) => t.id === pending[0].id,
    );
    assert.equal(aborted?.state, 'error');
    assert.match(String(aborted?.errorPreview), /aborted/);
  });

  it('engine:restart replaces an engine with a new one', () => {
    assert.equal(replyOf(msgs(15))?.ok, true);
    const engines = (states(msgs(15)).at(-1) as KernelState).engines;
    assert.deepEqual(
      engines.map((e) => [e.id, e.status]),
      [
        [0, 'dead'],
        [1, 'dead'],
        [2, 'idle'],
        [3, 'idle'],
      ],
    );
  });

  it('cluster:scale and %cluster scale N shrink and grow the cluster', () => {
    assert.equal(replyOf(msgs(16))?.ok, true);
    const live = (states(msgs(16)).at(-1) as KernelState).engines.filter(
      (e) => e.status !== 'dead',
    );
    assert.equal(live.length, 1);
    assert.match(streamText(results[17] as Executed), /The cluster has 3 engines: /);
  });

  it('cluster:stop stops it and the state is empty again', () => {
    assert.equal(replyOf(msgs(18))?.ok, true);
    assert.equal((states(msgs(18)).at(-1) as KernelState).cluster, null);
  });
});

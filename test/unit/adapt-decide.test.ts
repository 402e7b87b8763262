import assert from 'node:assert/strict';
import { Adaptive, decide, type AdaptTarget } from '../../cluster/adapt';

const counts = (queue: number) => ({ queue, completed: 0, tasks: queue });
const options = { minimum: 0, maximum: 4, interval: 100, wait: 1000 };

describe('adaptive scaling decisions', () => {
  it('grows to one engine per busy engine and waiting task, up to the maximum', () => {
    assert.deepEqual(decide({ 0: counts(1), unassigned: 2 }, new Map(), 0, options), { grow: 3 });
    assert.deepEqual(decide({ 0: counts(1), unassigned: 9 }, new Map(), 0, options), { grow: 4 });
    assert.deepEqual(decide({ unassigned: 0 }, new Map(), 0, { ...options, minimum: 2 }), {
      grow: 2,
    });
  });

  it('stops engines only after they stayed idle for `wait`, newest first, down to the minimum', () => {
    const idle = new Map<number, number>();
    const status = { 0: counts(0), 1: counts(0), 2: counts(0), unassigned: 0 };
    const opts = { ...options, minimum: 1 };
    assert.equal(decide(status, idle, 0, opts), null);
    assert.equal(decide(status, idle, 999, opts), null);
    assert.deepEqual(decide(status, idle, 1000, opts), { retire: [2, 1] });
  });

  it('forgets idleness when an engine gets work, and engines that left', () => {
    const idle = new Map<number, number>();
    decide({ 0: counts(0), 1: counts(0), unassigned: 0 }, idle, 0, options);
    assert.equal(decide({ 0: counts(0), 1: counts(2), unassigned: 0 }, idle, 500, options), null);
    assert.deepEqual([...idle.keys()], [0]);
    assert.deepEqual(decide({ 0: counts(0), 1: counts(0), unassigned: 0 }, idle, 2000, options), {
      retire: [0],
    });
    decide({ 1: counts(0), unassigned: 0 }, idle, 2100, options);
    assert.deepEqual([...idle.keys()], [1]);
  });

  it('keeps the count while every engine is busy and nothing waits', () => {
    assert.equal(
      decide({ 0: counts(3), 1: counts(1), unassigned: 0 }, new Map(), 0, options),
      null,
    );
  });
});

describe('Adaptive', () => {
  it('polls, grows and retires through its target until stopped', async () => {
    const calls: string[] = [];
    let engines: number[] = [];
    let unassigned = 3;
    let done: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const target: AdaptTarget = {
      queueStatus: async () => ({
        ...Object.fromEntries(engines.map((id) => [id, counts(0)])),
        unassigned,
      }),
      resize: async (n) => {
        calls.push(`resize ${n}`);
        engines = Array.from({ length: n }, (_, i) => i);
        unassigned = 0;
      },
      retire: async (ids) => {
        calls.push(`retire ${ids.join(',')}`);
        engines = engines.filter((id) => !ids.includes(id));
        if (engines.length === 1) done();
      },
    };
    const adaptive = new Adaptive(target, { minimum: 1, maximum: 2, interval: 5, wait: 20 });
    await finished;
    await adaptive.stop();
    assert.deepEqual(calls, ['resize 2', 'retire 1']);
    assert.equal(adaptive.lastError, undefined);
  });

  it('refuses bad options by name', () => {
    const target = {} as AdaptTarget;
    assert.throws(
      () => new Adaptive(target, { minimum: -1 }),
      /adapt option minimum must be an integer >= 0/,
    );
    assert.throws(
      () => new Adaptive(target, { minimum: 3, maximum: 2 }),
      /adapt option maximum must be an integer >= minimum \(3\), got 2/,
    );
    assert.throws(() => new Adaptive(target, { max: 2 } as never), /unknown adapt option max/);
  });
});

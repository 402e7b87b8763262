/**
 * The engine's actor table without a cluster: instances built from class source and kept by id,
 * methods called on them, and the errors a wrong call gets.
 */
import { strict as assert } from 'node:assert';
import { ActorTable } from '../../engine/actors';

const COUNTER = `class Counter {
  static made = 0;
  n;
  constructor(start) { this.n = start; Counter.made += 1; }
  add(k) { return (this.n += k); }
  async later(k) { await null; return this.add(k); }
  get doubled() { return this.n * 2; }
  made() { return Counter.made; }
}`;

describe('engine actor table', () => {
  it('keeps each instance by id, with its own state, between calls', async () => {
    const table = new ActorTable();
    table.create('a', COUNTER, [10]);
    table.create('b', COUNTER, [0]);
    assert.equal(table.call('a', 'add', [5]), 15);
    assert.equal(table.call('b', 'add', [1]), 1);
    assert.equal(await table.call('a', 'later', [1]), 16);
    // One class for one source: its statics are shared, as a module's class's would be.
    assert.equal(table.call('b', 'made', []), 2);
    assert.equal(table.size, 2);
  });

  it('names the methods an instance has when asked for one it has not', () => {
    const table = new ActorTable();
    table.create('a', COUNTER, [1]);
    assert.throws(
      () => table.call('a', 'sub', [1]),
      (e: unknown) =>
        e instanceof TypeError &&
        e.message === 'Counter has no method sub; its methods: add, later, made',
    );
    assert.throws(
      () => table.call('a', 'n', []),
      /^TypeError: Counter\.n is number, not a method$/,
    );
    assert.throws(() => table.call('a', 'doubled', []), /Counter\.doubled is number/);
  });

  it('drops a released instance; a call to it says so', () => {
    const table = new ActorTable();
    table.create('a', COUNTER, [1]);
    table.release('a');
    assert.equal(table.size, 0);
    assert.throws(
      () => table.call('a', 'add', [1]),
      /actor a is not on this engine: it was released/,
    );
  });

  it('refuses source that is no class, and keeps nothing when a constructor throws', () => {
    const table = new ActorTable();
    assert.throws(() => table.create('a', '42', []), /actor needs a class/);
    assert.throws(
      () => table.create('b', 'class Bad { constructor() { throw new RangeError("no") } }', []),
      RangeError,
    );
    assert.equal(table.size, 0);
  });
});

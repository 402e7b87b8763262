import assert from 'node:assert/strict';

import { Table, tableFromArrays } from 'apache-arrow';
import { chunk, concat, partition, partitionRows, toSliceable } from '../../client/partition';
import { functionSource } from '../../client/views';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const lengths = (parts: ArrayLike<unknown>[]): number[] => parts.map((p) => p.length);

/** What an engine does with the source: evaluate it as an expression. */
const compile = (src: string): unknown => new Function('return (' + src + ')')() as unknown;

describe('partition', () => {
  it('splits 5 into 2 as [3, 2], contiguous and in order', () => {
    assert.deepEqual(partition([1, 2, 3, 4, 5], 2), [
      [1, 2, 3],
      [4, 5],
    ]);
  });

  it('gives empty parts when there are more parts than elements', () => {
    assert.deepEqual(partition(['a', 'b'], 4), [['a'], ['b'], [], []]);
  });

  it('always gives n parts differing by at most one, longer first, that join back', () => {
    for (let len = 0; len <= 12; len++) {
      for (let n = 1; n <= 6; n++) {
        const seq = range(len);
        const parts = partition(seq, n);
        const ls = lengths(parts);
        assert.equal(parts.length, n);
        assert.ok(Math.max(...ls) - Math.min(...ls) <= 1, `${len} into ${n}: ${ls.join(',')}`);
        assert.deepEqual(
          ls,
          [...ls].sort((a, b) => b - a),
          `${len} into ${n}: ${ls.join(',')}`,
        );
        assert.deepEqual(concat(parts), seq);
      }
    }
  });

  it('splits a typed array into subarrays of the same kind sharing its memory', () => {
    const data = new Float64Array([0.5, 1.5, 2.5, 3.5, 4.5]);
    const parts = partition(data, 2);
    assert.deepEqual(lengths(parts), [3, 2]);
    for (const p of parts) {
      assert.ok(p instanceof Float64Array);
      assert.equal(p.buffer, data.buffer);
    }
    (parts[1] as Float64Array)[0] = 99;
    assert.equal(data[3], 99);
  });

  it('accepts any iterable once read by toSliceable', () => {
    const parts = partition(toSliceable(new Set([1, 2, 3])), 2);
    assert.deepEqual(parts, [[1, 2], [3]]);
  });
});

describe('chunk', () => {
  it('gives chunks of the given size, the last shorter', () => {
    assert.deepEqual(lengths(chunk(range(7), 3)), [3, 3, 1]);
    assert.deepEqual(chunk(range(6), 2), [
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
  });

  it('gives no chunks for an empty sequence, one for a short one', () => {
    assert.deepEqual(chunk([], 4), []);
    assert.deepEqual(chunk([1, 2], 10), [[1, 2]]);
  });

  it('chunks typed arrays without copying', () => {
    const data = new Int32Array(range(5));
    const parts = chunk(data, 2);
    assert.deepEqual(lengths(parts), [2, 2, 1]);
    assert.ok(parts.every((p) => p instanceof Int32Array && p.buffer === data.buffer));
  });
});

describe('partitionRows', () => {
  it('splits a table by rows as partition splits an array, and concat joins it back', () => {
    const table = tableFromArrays({ x: Float64Array.from(range(10)), s: range(10).map(String) });
    const parts = partitionRows(table, 4);
    assert.deepEqual(
      parts.map((p) => p.numRows),
      lengths(partition(range(10), 4)),
    );
    assert.deepEqual(
      parts.map((p) => p.get(0)?.x),
      [0, 3, 6, 8],
    );
    const joined = concat(parts);
    assert.ok(joined instanceof Table);
    assert.deepEqual(
      joined.toArray().map((r) => r.toJSON()),
      table.toArray().map((r) => r.toJSON()),
    );
  });
});

describe('concat', () => {
  it('joins arrays one level flat', () => {
    assert.deepEqual(concat([[1, 2], [3], []]), [1, 2, 3]);
    assert.deepEqual(concat([[[1], [2]], [[3]]]), [[1], [2], [3]]);
  });

  it('joins typed arrays into one of the same kind', () => {
    const joined = concat([new Float32Array([1, 2]), new Float32Array([]), new Float32Array([3])]);
    assert.ok(joined instanceof Float32Array);
    assert.deepEqual(Array.from(joined), [1, 2, 3]);
  });

  it('undoes a typed-array partition', () => {
    const data = new Int16Array([5, -4, 3, -2, 1, 0, 7]);
    const joined = concat(partition(data, 3));
    assert.ok(joined instanceof Int16Array);
    assert.deepEqual(joined, data);
    assert.notEqual(joined.buffer, data.buffer);
  });

  it('returns values that are not sequences as they are', () => {
    assert.deepEqual(concat([1, 'a', null]), [1, 'a', null]);
  });
});

describe('functionSource', () => {
  it('turns method shorthand into a function expression', () => {
    const src = functionSource(
      {
        f(x: number) {
          return x * 2;
        },
      }.f,
    );
    const f = compile(src) as (x: number) => number;
    assert.equal(typeof f, 'function');
    assert.equal(f(21), 42);
  });

  it('turns an async method into an async function expression', async () => {
    const src = functionSource(
      {
        async g(x: number) {
          return x + 1;
        },
      }.g,
    );
    assert.match(src, /^async function/);
    const g = compile(src) as (x: number) => Promise<number>;
    assert.equal(await g(1), 2);
  });

  it('turns a generator method into a generator function expression', () => {
    const src = functionSource(
      {
        *h(n: number) {
          for (let i = 0; i < n; i++) yield i;
        },
      }.h,
    );
    const h = compile(src) as (n: number) => Iterable<number>;
    assert.deepEqual([...h(3)], [0, 1, 2]);
  });

  it('turns an async generator method into an async generator expression', async () => {
    const src = functionSource(
      {
        async *k() {
          yield 1;
          yield 2;
        },
      }.k,
    );
    const k = compile(src) as () => AsyncIterable<number>;
    const got: number[] = [];
    for await (const v of k()) got.push(v);
    assert.deepEqual(got, [1, 2]);
  });

  it('turns a static class method into a function expression', () => {
    class Maths {
      static square(x: number): number {
        return x * x;
      }
    }
    const square = compile(functionSource(Maths.square)) as (x: number) => number;
    assert.equal(square(5), 25);
  });

  it('keeps arrows and function expressions as they are', () => {
    const fns = [
      (x: number) => x + 1,
      async (x: number) => x + 1,
      function named(x: number) {
        return x + 1;
      },
      function (x: number) {
        return x + 1;
      },
      async function asyncNamed(x: number) {
        return x + 1;
      },
      function* gen() {
        yield 1;
      },
    ];
    for (const fn of fns) {
      const src = functionSource(fn);
      assert.equal(src, fn.toString());
      assert.equal(typeof compile(src), 'function');
    }
  });

  it('refuses built-in functions, saying to wrap them', () => {
    assert.throws(() => functionSource(Math.max), {
      name: 'TypeError',
      message: /cannot send built-in or bound function max: wrap it/,
    });
  });

  it('refuses bound functions, saying to wrap them', () => {
    const bound = function add(this: number, x: number) {
      return this + x;
    }.bind(1);
    assert.throws(() => functionSource(bound), {
      name: 'TypeError',
      message: /bound function bound add: wrap it/,
    });
  });

  it('refuses classes and non-functions', () => {
    class Point {}
    assert.throws(() => functionSource(Point as never), { name: 'TypeError', message: /class/ });
    assert.throws(() => functionSource('x => x' as never), {
      name: 'TypeError',
      message: /expected a function, got string/,
    });
  });

  it('turns method shorthand named `async` or with a non-ASCII name into an expression', () => {
    const methods = {
      async(x: number) {
        return x;
      },
      café(x: number) {
        return x;
      },
    };
    for (const fn of [methods.async, methods.café]) {
      const f = compile(functionSource(fn)) as (x: number) => number;
      assert.equal(f(3), 3);
    }
  });
});

import assert from 'node:assert/strict';
import { ProtocolError, SerializationError } from '../../protocol/errors';
import { OUT_OF_BAND_THRESHOLD, decodeValue, encodeValue } from '../../protocol/serialize';

const roundTrip = <T>(value: T): T => decodeValue(encodeValue(value)) as T;

/** What the numeric typed-array constructors have in common, so one test covers them all. */
interface NumericArray extends ArrayBufferView {
  [index: number]: number;
  readonly length: number;
}
interface NumericArrayConstructor {
  new (length: number): NumericArray;
  readonly name: string;
  readonly BYTES_PER_ELEMENT: number;
}
interface BigIntArray extends ArrayBufferView {
  [index: number]: bigint;
  readonly length: number;
}
interface BigIntArrayConstructor {
  new (length: number): BigIntArray;
  readonly name: string;
  readonly BYTES_PER_ELEMENT: number;
}

const NUMERIC_KINDS: readonly NumericArrayConstructor[] = [
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
];
const BIGINT_KINDS: readonly BigIntArrayConstructor[] = [BigInt64Array, BigUint64Array];

/** Element counts below and at/above the out-of-band threshold. */
const sizes = (bytesPerElement: number): Array<[string, number]> => [
  ['small', 16],
  ['large', Math.ceil(OUT_OF_BAND_THRESHOLD / bytesPerElement) + 3],
];

function numeric(Kind: NumericArrayConstructor, length: number): NumericArray {
  const array = new Kind(length);
  for (let i = 0; i < length; i++) array[i] = (i * 7) % 101;
  return array;
}

function bigints(Kind: BigIntArrayConstructor, length: number): BigIntArray {
  const array = new Kind(length);
  for (let i = 0; i < length; i++) array[i] = BigInt(i) * 1_000_003n;
  return array;
}

/** Asserts how `value` was framed: inline (one frame) or with its bytes as frame 1, uncopied. */
function assertFraming(frames: Buffer[], view: ArrayBufferView, large: boolean): void {
  if (!large) {
    assert.equal(frames.length, 1);
    return;
  }
  assert.equal(frames.length, 2);
  assert.equal(frames[1].buffer, view.buffer, 'frame 1 must share the original memory');
  assert.equal(frames[1].byteOffset, view.byteOffset);
  assert.equal(frames[1].byteLength, view.byteLength);
}

/** The frame's bytes moved to an odd offset of a bigger buffer, as a receiver may hand them over. */
function atOddOffset(frame: Buffer): Buffer {
  const bigger = Buffer.alloc(frame.byteLength + 8);
  frame.copy(bigger, 1);
  return bigger.subarray(1, 1 + frame.byteLength);
}

function refusal(value: unknown, root?: string): SerializationError {
  let caught: unknown;
  try {
    encodeValue(value, root);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof SerializationError, `expected a SerializationError, got ${caught}`);
  assert.equal(caught.name, 'SerializationError');
  return caught;
}

const FUNCTION_ADVICE =
  'functions cannot travel between processes; send data, or define the function on the engine';
const SYMBOL_ADVICE = 'symbols are unique to one process; send a string instead';

describe('serialize: encodeValue/decodeValue round trip', () => {
  describe('primitives and plain data', () => {
    it('round-trips every primitive, keeping -0, NaN and BigInt', () => {
      const primitives: unknown[] = [
        0,
        -0,
        1.5,
        -42,
        Number.MAX_SAFE_INTEGER,
        NaN,
        Infinity,
        -Infinity,
        '',
        'text',
        'ünïcødé 🚀',
        true,
        false,
        null,
        undefined,
        123n,
        -(2n ** 100n),
      ];
      for (const value of primitives) assert.deepEqual(roundTrip(value), value);
      assert.ok(Object.is(roundTrip(-0), -0));
    });

    it('round-trips nested objects and arrays, keeping undefined properties', () => {
      const value = {
        a: 1,
        b: 'two',
        c: [1, 'x', null, undefined, { d: [[[]]] }],
        e: { f: { g: { h: true } } },
        u: undefined,
        'odd key': 0,
        42: 'numeric key',
      };
      const out = roundTrip(value);
      assert.deepEqual(out, value);
      assert.ok('u' in out);
    });

    it('round-trips sparse arrays, keeping holes and extra properties', () => {
      // eslint-disable-next-line no-sparse-arrays
      const sparse: unknown[] = [1, , 3];
      sparse[10] = 'ten';
      const out = roundTrip(sparse);
      assert.deepEqual(out, sparse);
      assert.equal(out.length, 11);
      assert.ok(!(1 in out) && !(5 in out));

      const huge: number[] = [];
      huge[1e9] = 7;
      const hugeOut = roundTrip(huge);
      assert.equal(hugeOut.length, 1e9 + 1);
      assert.equal(hugeOut[1e9], 7);
      assert.deepEqual(Object.keys(hugeOut), ['1000000000']);

      const named = Object.assign([1, 2], { label: 'extra' });
      assert.deepEqual(roundTrip(named), named);
    });

    it('round-trips Map, Set, Date, RegExp and boxed primitives', () => {
      const key = { id: 1 };
      const value = {
        map: new Map<unknown, unknown>([
          ['a', 1],
          [2, { b: [3] }],
          [key, new Set([key])],
        ]),
        set: new Set<unknown>([1, 'two', { three: 3 }]),
        date: new Date('2024-02-29T12:34:56.789Z'),
        regexp: /a+(b|c)\d*$/giu,
        boxed: [new Number(1), new String('s'), new Boolean(false), Object(5n) as object],
      };
      const out = roundTrip(value);
      assert.deepEqual(out, value);
      const [, , [outKey, outSet]] = [...out.map];
      assert.ok(outSet instanceof Set && outSet.has(outKey), 'identity within a Map is kept');
      assert.equal(out.regexp.flags, 'giu');
      assert.ok(Number.isNaN(roundTrip(new Date(NaN)).getTime()));
    });

    it('round-trips Error objects with their class, message, stack and cause', () => {
      const error = new TypeError('bad input', { cause: { code: 42 } });
      const out = roundTrip({ error, range: new RangeError('far'), plain: new Error('e') });
      assert.ok(out.error instanceof TypeError);
      assert.equal(out.error.message, 'bad input');
      assert.equal(out.error.stack, error.stack);
      assert.deepEqual(out.error.cause, { code: 42 });
      assert.ok(out.range instanceof RangeError);
      assert.equal(out.range.message, 'far');
      assert.ok(out.plain instanceof Error);
    });

    it('sends class instances as plain objects and ignores symbol keys', () => {
      class Point {
        constructor(
          readonly x: number,
          readonly y: number,
        ) {}
        norm(): number {
          return Math.hypot(this.x, this.y);
        }
      }
      assert.deepEqual(roundTrip(new Point(3, 4)), { x: 3, y: 4 });
      const withSymbols = { a: 1, [Symbol('fn')]: () => 1, [Symbol('s')]: Symbol('v') };
      assert.deepEqual(roundTrip(withSymbols), { a: 1 });
    });

    it('ignores what structured clone ignores on errors (other properties)', () => {
      const error = Object.assign(new Error('e'), { retry: () => 1 });
      const out = roundTrip(error);
      assert.equal(out.message, 'e');
      assert.ok(!('retry' in out));
    });
  });

  describe('cycles and shared references', () => {
    it('round-trips self and mutual references, keeping identity', () => {
      type Node = { name: string; self?: Node; peer?: Node; list: unknown[] };
      const a: Node = { name: 'a', list: [] };
      const b: Node = { name: 'b', peer: a, list: [a] };
      a.self = a;
      a.peer = b;
      a.list.push(a, b);
      const out = roundTrip(a);
      assert.equal(out.self, out);
      assert.equal(out.peer?.peer, out);
      assert.equal(out.list[0], out);
      assert.equal(out.list[1], out.peer);
      assert.equal(out.peer?.list[0], out);
    });

    it('round-trips a Map and an array that contain themselves', () => {
      const map = new Map<string, unknown>();
      map.set('me', map);
      const array: unknown[] = [];
      array.push(array, map);
      const out = roundTrip(array);
      assert.equal(out[0], out);
      const outMap = out[1] as Map<string, unknown>;
      assert.equal(outMap.get('me'), outMap);
    });

    it('round-trips a shared object referenced many times and deep nesting', () => {
      const shared = { n: 1 };
      const many = Array.from({ length: 5000 }, () => shared);
      const out = roundTrip(many);
      assert.ok(out.every((item) => item === out[0]));

      // Deeper than the scan recurses before deferring objects (v8 itself allows little more).
      type Link = { depth: number; next: Link | null };
      let deep: Link = { depth: 0, next: null };
      for (let i = 1; i <= 1200; i++) deep = { depth: i, next: deep };
      let depth = 1200;
      for (let link = roundTrip(deep) as Link | null; link !== null; link = link.next) {
        assert.equal(link.depth, depth--);
      }
      assert.equal(depth, -1);
    });
  });

  describe('binary data', () => {
    for (const Kind of NUMERIC_KINDS) {
      for (const [size, length] of sizes(Kind.BYTES_PER_ELEMENT)) {
        it(`round-trips a ${size} ${Kind.name}`, () => {
          const array = numeric(Kind, length);
          const frames = encodeValue(array);
          assertFraming(frames, array, size === 'large');
          const out = decodeValue(frames);
          assert.ok(out instanceof Kind);
          assert.deepEqual(out, array);
        });
      }
    }

    for (const Kind of BIGINT_KINDS) {
      for (const [size, length] of sizes(Kind.BYTES_PER_ELEMENT)) {
        it(`round-trips a ${size} ${Kind.name}`, () => {
          const array = bigints(Kind, length);
          const frames = encodeValue(array);
          assertFraming(frames, array, size === 'large');
          const out = decodeValue(frames);
          assert.ok(out instanceof Kind);
          assert.deepEqual(out, array);
        });
      }
    }

    for (const [size, length] of sizes(1)) {
      it(`round-trips a ${size} Buffer as a Buffer`, () => {
        const buffer = Buffer.alloc(length);
        for (let i = 0; i < length; i++) buffer[i] = (i * 13) % 256;
        const frames = encodeValue(buffer);
        assertFraming(frames, buffer, size === 'large');
        const out = decodeValue(frames);
        assert.ok(Buffer.isBuffer(out));
        assert.ok(out.equals(buffer));
      });

      it(`round-trips a ${size} DataView over part of a buffer`, () => {
        const backing = new ArrayBuffer(length + 24);
        const view = new DataView(backing, 8, length);
        for (let i = 0; i < length; i++) view.setUint8(i, (i * 31) % 256);
        const frames = encodeValue(view);
        assertFraming(frames, view, size === 'large');
        const out = decodeValue(frames);
        assert.ok(out instanceof DataView);
        assert.equal(out.byteLength, length);
        const bytes = (v: DataView): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
        assert.ok(bytes(out).equals(bytes(view)));
      });
    }

    it('sends only the bytes of a large subarray, from the original memory', () => {
      const whole = numeric(Float32Array, 100_000) as Float32Array;
      const part = whole.subarray(1000, 1000 + OUT_OF_BAND_THRESHOLD / 4);
      const frames = encodeValue({ part });
      assertFraming(frames, part, true);
      const out = decodeValue(frames) as { part: Float32Array };
      assert.deepEqual(out.part, part);
    });

    it('sends a 100 MB Float64Array without copying it on either side', function () {
      this.timeout(60_000);
      const array = new Float64Array((100 * 1024 * 1024) / 8);
      array[0] = Math.PI;
      array[1234567] = -1.5;
      array[array.length - 1] = 1e300;
      const frames = encodeValue(array);
      assert.equal(frames.length, 2);
      assert.ok(frames[0].byteLength < 64, 'the body holds no array data');
      assert.equal(frames[1].buffer, array.buffer, 'encoding must not copy');
      assert.equal(frames[1].byteLength, array.byteLength);

      const out = decodeValue(frames);
      assert.ok(out instanceof Float64Array);
      assert.equal(out.buffer, frames[1].buffer, 'decoding an aligned frame must not copy');
      assert.equal(out.length, array.length);
      assert.equal(out[0], Math.PI);
      assert.equal(out[1234567], -1.5);
      assert.equal(out[out.length - 1], 1e300);
      assert.equal(out[42], 0);
    });

    it('transfers a large ArrayBuffer as its own frame without copying', () => {
      const buffer = new ArrayBuffer(OUT_OF_BAND_THRESHOLD * 4);
      const bytes = new Uint8Array(buffer);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 256;
      const frames = encodeValue({ buffer, again: buffer });
      assert.equal(frames.length, 2);
      assert.equal(frames[1].buffer, buffer, 'encoding must not copy');

      const out = decodeValue(frames) as { buffer: ArrayBuffer; again: ArrayBuffer };
      assert.ok(out.buffer instanceof ArrayBuffer);
      assert.equal(out.buffer, frames[1].buffer, 'a whole-buffer frame is used as is');
      assert.equal(out.again, out.buffer);
      assert.deepEqual(new Uint8Array(out.buffer), bytes);
    });

    it('keeps a small ArrayBuffer inline', () => {
      const buffer = new Uint8Array([1, 2, 3, 4]).buffer;
      const frames = encodeValue(buffer);
      assert.equal(frames.length, 1);
      assert.deepEqual(
        new Uint8Array(decodeValue(frames) as ArrayBuffer),
        new Uint8Array([1, 2, 3, 4]),
      );
    });

    it('sends views of a transferred ArrayBuffer once, still sharing its memory', () => {
      const buffer = new ArrayBuffer(OUT_OF_BAND_THRESHOLD * 2);
      const floats = new Float64Array(buffer, 8, OUT_OF_BAND_THRESHOLD / 8);
      const bytes = new Uint8Array(buffer, 3, 5);
      floats[0] = 2.5;
      bytes[0] = 9;
      const frames = encodeValue({ floats, bytes, buffer });
      assert.equal(frames.length, 2, 'the views do not add frames');

      const out = decodeValue(frames) as {
        floats: Float64Array;
        bytes: Uint8Array;
        buffer: ArrayBuffer;
      };
      assert.equal(out.floats.buffer, out.buffer);
      assert.equal(out.bytes.buffer, out.buffer);
      assert.equal(out.floats.byteOffset, 8);
      assert.equal(out.floats[0], 2.5);
      assert.equal(out.bytes[0], 9);
      out.floats[1] = 7;
      assert.equal(new Float64Array(out.buffer, 16, 1)[0], 7);
    });

    it('keeps the identity of a large typed array referenced twice, in one frame', () => {
      const array = numeric(Int32Array, OUT_OF_BAND_THRESHOLD);
      const frames = encodeValue([array, array]);
      assert.equal(frames.length, 2);
      const [first, second] = decodeValue(frames) as Int32Array[];
      assert.equal(first, second);
      assert.deepEqual(first, array);
    });

    it('decodes frames that arrive at an odd byteOffset', () => {
      const floats = numeric(Float64Array, OUT_OF_BAND_THRESHOLD);
      const frames = encodeValue(floats);
      const shifted = atOddOffset(frames[1]);
      assert.equal(shifted.byteOffset % 8, 1);
      const out = decodeValue([frames[0], shifted]);
      assert.ok(out instanceof Float64Array);
      assert.deepEqual(out, floats);
      assert.equal(out.byteOffset % 8, 0);

      // Byte-sized elements need no alignment: no copy even at an odd offset.
      const bytes = numeric(Uint8Array, OUT_OF_BAND_THRESHOLD);
      const byteFrames = encodeValue(bytes);
      const shiftedBytes = atOddOffset(byteFrames[1]);
      const outBytes = decodeValue([byteFrames[0], shiftedBytes]) as Uint8Array;
      assert.deepEqual(outBytes, bytes);
      assert.equal(outBytes.buffer, shiftedBytes.buffer);

      // An ArrayBuffer frame that is a slice of a bigger buffer is copied out whole.
      const buffer = numeric(Uint16Array, OUT_OF_BAND_THRESHOLD).buffer;
      const bufferFrames = encodeValue(buffer);
      const outBuffer = decodeValue([bufferFrames[0], atOddOffset(bufferFrames[1])]);
      assert.ok(outBuffer instanceof ArrayBuffer);
      assert.deepEqual(new Uint8Array(outBuffer), new Uint8Array(buffer));
    });

    it('rejects frames that do not match the body with a ProtocolError', () => {
      const frames = encodeValue({ data: numeric(Float64Array, OUT_OF_BAND_THRESHOLD) });
      assert.throws(() => decodeValue([frames[0]]), ProtocolError);
      assert.throws(() => decodeValue([frames[0], frames[1].subarray(8)]), ProtocolError);
      assert.throws(() => decodeValue([]), ProtocolError);
      assert.throws(() => decodeValue([Buffer.from('not a value')]), ProtocolError);
    });
  });

  describe('refusals', () => {
    it('refuses a nested function with its path and advice', () => {
      const error = refusal({ opts: { callback: () => 1 } }, 'args[1]');
      assert.equal(error.path, 'args[1].opts.callback');
      assert.equal(
        error.message,
        `cannot send a function at args[1].opts.callback: ${FUNCTION_ADVICE}`,
      );
      assert.ok(error instanceof Error);
    });

    it('names the root "value" by default and accepts other roots', () => {
      assert.equal(refusal({ f() {} }).path, 'value.f');
      const top = refusal(() => 1, 'result');
      assert.equal(top.path, 'result');
      assert.equal(top.message, `cannot send a function at result: ${FUNCTION_ADVICE}`);
    });

    it('refuses a symbol nested in arrays', () => {
      const error = refusal([1, [2, Symbol('s')]]);
      assert.equal(error.path, 'value[1][1]');
      assert.equal(error.message, `cannot send a symbol at value[1][1]: ${SYMBOL_ADVICE}`);
    });

    it('refuses functions and symbols inside Maps and Sets', () => {
      const fn = (): number => 1;
      assert.equal(refusal(new Map([['k', { cb: fn }]])).path, 'value.get("k").cb');
      assert.equal(refusal({ m: new Map([[7, [fn]]]) }).path, 'value.m.get(7)[0]');
      assert.equal(refusal(new Map([[fn, 1]])).path, 'value.keys()[0]');
      assert.equal(refusal(new Map([[{}, Symbol('v')]])).path, 'value.values()[0]');
      assert.equal(refusal({ s: new Set([1, fn]) }).path, 'value.s.values()[1]');
    });

    it('quotes keys that are not identifiers', () => {
      assert.equal(refusal({ 'my key': { 0: Symbol('s') } }).path, 'value["my key"][0]');
    });

    it('finds functions that only v8 sees: array properties and error causes', () => {
      const fn = (): number => 1;
      assert.equal(refusal({ list: Object.assign([1, 2], { cb: fn }) }).path, 'value.list.cb');
      assert.equal(refusal({ e: new Error('x', { cause: fn }) }).path, 'value.e.cause');
    });

    it('refuses a function inside a cyclic value', () => {
      const a: Record<string, unknown> = {};
      a.self = a;
      a.list = [a, { f: () => 1 }];
      assert.equal(refusal(a).path, 'value.list[1].f');
    });

    it('refuses other uncloneable objects by name', () => {
      const cases: Array<[unknown, string, string]> = [
        [{ p: Promise.resolve(1) }, 'value.p', 'a Promise'],
        [{ w: new WeakMap() }, 'value.w', 'a WeakMap'],
        [{ w: new WeakSet() }, 'value.w', 'a WeakSet'],
        [{ r: new WeakRef({}) }, 'value.r', 'a WeakRef'],
        [{ x: new Proxy({}, {}) }, 'value.x', 'a Proxy'],
        [{ sab: new SharedArrayBuffer(8) }, 'value.sab', 'a SharedArrayBuffer'],
        [{ s: Object(Symbol('boxed')) as object }, 'value.s', 'a Symbol object'],
        [[new Intl.NumberFormat()], 'value[0]', 'an Intl.NumberFormat'],
      ];
      for (const [value, path, what] of cases) {
        const error = refusal(value);
        assert.equal(error.path, path);
        assert.ok(error.message.startsWith(`cannot send ${what} at ${path}: `), error.message);
      }
    });
  });
});

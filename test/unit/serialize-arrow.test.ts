import assert from 'node:assert/strict';
import { RecordBatch, Table, tableFromArrays } from 'apache-arrow';
import { ProtocolError, SerializationError } from '../../protocol/errors';
import { OUT_OF_BAND_THRESHOLD, decodeValue, encodeValue } from '../../protocol/serialize';

const roundTrip = <T>(value: T): T => decodeValue(encodeValue(value)) as T;

/** Rows as JSON (bigints marked), so two tables compare by content. */
const rows = (t: Table | RecordBatch): string =>
  JSON.stringify(t.toArray(), (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));

/** Field names, types and nullability. */
const schemaOf = (t: Table | RecordBatch): string[] =>
  t.schema.fields.map((f) => `${f.name}: ${String(f.type)}${f.nullable ? '?' : ''}`);

function assertSameTable(out: unknown, expected: Table): void {
  assert.ok(out instanceof Table, `expected a Table, got ${Object.prototype.toString.call(out)}`);
  assert.deepEqual(schemaOf(out), schemaOf(expected));
  assert.equal(out.numRows, expected.numRows);
  assert.equal(rows(out), rows(expected));
}

/** Every column type tableFromArrays infers, with nulls where the type allows them. */
function everyType(n: number): Table {
  const pick = <T>(values: T[], i: number): T => values[i % values.length];
  const at = Array.from({ length: n }, (_, i) => i);
  return tableFromArrays({
    int8: Int8Array.from(at, (i) => (i % 256) - 128),
    int16: Int16Array.from(at, (i) => -i),
    int32: Int32Array.from(at, (i) => i * 7),
    uint8: Uint8Array.from(at, (i) => i % 256),
    uint16: Uint16Array.from(at, (i) => i % 65536),
    uint32: Uint32Array.from(at, (i) => i * 3),
    float32: Float32Array.from(at, (i) => i / 4),
    float64: Float64Array.from(at, (i) => i / 3),
    int64: BigInt64Array.from(at, (i) => BigInt(i) * -1_000_000_007n),
    uint64: BigUint64Array.from(at, (i) => BigInt(i) << 40n),
    utf8: at.map((i) => pick(['alpha', 'béta', null, '', 'γάμμα'], i)),
    number: at.map((i) => (i % 5 === 0 ? null : i * 1.5)),
    bool: at.map((i) => pick([true, false, null], i)),
    date: at.map((i) => (i % 4 === 0 ? null : new Date(Date.UTC(2024, 0, 1 + i)))),
    bigint: at.map((i) => (i % 6 === 0 ? null : BigInt(i) ** 3n)),
    list: at.map((i) =>
      i % 7 === 0 ? null : Array.from({ length: 1 + (i % 3) }, (_, k) => k * i),
    ),
    struct: at.map((i) => ({ a: i, b: pick(['x', 'y'], i) })),
  });
}

describe('serialize: Arrow tables and record batches', () => {
  it('round-trips every column type tableFromArrays makes', () => {
    const table = everyType(37);
    assert.deepEqual(schemaOf(table), [
      'int8: Int8',
      'int16: Int16',
      'int32: Int32',
      'uint8: Uint8',
      'uint16: Uint16',
      'uint32: Uint32',
      'float32: Float32',
      'float64: Float64',
      'int64: Int64',
      'uint64: Uint64',
      'utf8: Dictionary<Int32, Utf8>?',
      'number: Float64?',
      'bool: Bool?',
      'date: Timestamp<MILLISECOND>?',
      'bigint: Int64?',
      'list: List<Float64>?',
      'struct: Struct<{a:Float64, b:Dictionary<Int32, Utf8>}>?',
    ]);
    assertSameTable(roundTrip(table), table);
  });

  it('round-trips a RecordBatch as a RecordBatch', () => {
    const batch = everyType(10).batches[0];
    const out = roundTrip(batch);
    assert.ok(out instanceof RecordBatch);
    assert.deepEqual(schemaOf(out), schemaOf(batch));
    assert.equal(rows(out), rows(batch));
  });

  it('round-trips an empty table with its schema', () => {
    const table = everyType(3).slice(0, 0);
    assertSameTable(roundTrip(table), table);
    assertSameTable(roundTrip(new Table()), new Table());
  });

  it('round-trips a table of several batches, and row slices that start mid-byte', () => {
    const table = everyType(50).concat(everyType(21));
    assert.equal(table.batches.length, 2);
    assertSameTable(roundTrip(table), table);
    // scatter sends slices: validity bitmaps, booleans and offsets then start inside a byte.
    for (const [begin, end] of [
      [3, 45],
      [49, 52],
      [13, 71],
    ]) {
      assertSameTable(roundTrip(table.slice(begin, end)), table.slice(begin, end));
    }
  });

  it('finds tables inside arrays, objects, Maps and Sets, and sends a repeated one once', () => {
    const table = everyType(5);
    const batch = table.batches[0];
    const value = { args: [1, table], byName: new Map([['t', table]]), set: new Set([batch]) };
    const frames = encodeValue(value);
    const out = decodeValue(frames) as typeof value;
    assertSameTable(out.args[1], table);
    assert.equal(out.byName.get('t'), out.args[1], 'the same table decodes to one object');
    assert.ok([...out.set][0] instanceof RecordBatch);
    assert.equal(out.args[0], 1);
    // The caller's containers are left as they were.
    assert.equal(value.args[1], table);
  });

  it('sends large columns as frames over their memory, and reads them from the frames', () => {
    const n = 1 << 17;
    const x = Float64Array.from({ length: n }, (_, i) => i * 0.5);
    const table = tableFromArrays({ x, small: Int8Array.from(x, (v) => v % 100) });
    const column = table.getChild('x')!.data[0].values as Float64Array;
    assert.ok(column.byteLength >= OUT_OF_BAND_THRESHOLD);
    const frames = encodeValue(table);
    const frame = frames.find((f) => f.buffer === column.buffer);
    assert.ok(frame, 'the column is a frame over the table memory');
    assert.equal(frame.byteOffset, column.byteOffset);
    const out = decodeValue(frames) as Table;
    const values = out.getChild('x')!.data[0].values as Float64Array;
    assert.equal(values.buffer, frame.buffer, 'the decoded column is a view over the frame');
    assert.deepEqual(values, x);
  });

  it('refuses a table inside a cyclic structure, naming it', () => {
    const node: { table: Table; self?: unknown } = { table: everyType(2) };
    node.self = node;
    assert.throws(
      () => encodeValue(node, 'args'),
      (e: unknown) => {
        assert.ok(e instanceof SerializationError);
        assert.match(e.message, /Arrow table inside a cyclic structure at args/);
        return true;
      },
    );
  });

  it('rejects a truncated or missing stream with ProtocolError', () => {
    const n = 1 << 15;
    const frames = encodeValue(tableFromArrays({ x: new Float64Array(n) }));
    // The body, a header (schema and batch) frame, the column's frame, the end of the stream.
    assert.equal(frames.length, 4);
    const [body, header, column, end] = frames;
    assert.throws(() => decodeValue([body, header, column.subarray(8), end]), ProtocolError);
    assert.throws(() => decodeValue([body, header.subarray(0, 20), column, end]), ProtocolError);
    assert.throws(() => decodeValue([body]), ProtocolError);
  });
});

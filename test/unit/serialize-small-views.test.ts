import assert from 'node:assert/strict';
import { decodeValue, encodeValue } from '../../protocol/serialize';

describe('small binary views after a round trip', () => {
  it('own their memory, from offset 0, as a structured clone gives them', () => {
    const [view, ints, buf] = decodeValue(
      encodeValue([
        new DataView(new ArrayBuffer(4)),
        new Int32Array([1, 2, 3]).subarray(1),
        Buffer.from('ab'),
      ]),
    ) as [DataView, Int32Array, Buffer];
    assert.deepEqual([view.byteOffset, view.buffer.byteLength], [0, 4]);
    assert.deepEqual([ints.byteOffset, ints.buffer.byteLength, [...ints]], [0, 8, [2, 3]]);
    assert.equal(buf.toString(), 'ab');
  });
});

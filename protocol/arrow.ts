/**
 * Arrow tables and record batches as frames, in Arrow's IPC stream format. The only module that
 * imports apache-arrow; `serialize.ts` loads it on the first table it meets, so processes that
 * never see one do not pay for loading Arrow.
 *
 * The frames, joined, are exactly the IPC stream. Column buffers of `largeBytes` or more are
 * frames of their own over the table's memory (no copy); the small pieces between them (message
 * headers, padding, small buffers) are copied together into one frame each. The reader loads
 * columns straight from the frames, so the receiver does not copy them either (joining 12 MB of
 * frames to hand Arrow's own reader one array measured 31 ms; this reads the same in ~1 ms).
 */
import {
  Message,
  MetadataVersion,
  RecordBatch,
  RecordBatchStreamWriter,
  Schema,
  Struct,
  Table,
  Vector,
  makeData,
  type Data,
  type DataType,
  type Field,
} from 'apache-arrow';
import type * as metadata from 'apache-arrow/ipc/metadata/message';
import type { ArrayBufferViewInput } from 'apache-arrow/util/buffer';
import { VectorLoader } from 'apache-arrow/visitor/vectorloader';
import type { ArrowKind } from './arrow-kind';
import { ProtocolError } from './errors';

/** The Arrow values that travel. */
export type ArrowValue = Table | RecordBatch;

/** A stream writer that keeps the chunks it writes, as views, instead of queueing them. */
class ChunkWriter extends RecordBatchStreamWriter {
  readonly frames: Buffer[] = [];
  private small: Uint8Array[] = [];

  constructor(private readonly largeBytes: number) {
    super();
  }

  protected override _write(chunk: ArrayBufferViewInput): this {
    // Only typed arrays reach here: the writer's own headers, padding and the column buffers.
    const view = chunk as ArrayBufferView;
    if (view.byteLength >= this.largeBytes) {
      this.flushSmall();
      this.frames.push(Buffer.from(view.buffer, view.byteOffset, view.byteLength));
    } else if (view.byteLength > 0) {
      this.small.push(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
    }
    return this;
  }

  flushSmall(): void {
    if (this.small.length > 0) this.frames.push(Buffer.concat(this.small));
    this.small = [];
  }
}

/**
 * The IPC stream of `value` as frames (see the file's comment). The frames share memory with
 * the table's columns: do not change them until the frames are sent.
 */
export function encodeArrow(value: ArrowValue, largeBytes: number): Buffer[] {
  const writer = new ChunkWriter(largeBytes);
  writer.writeAll(value instanceof Table ? value : [value]); // writes the end of stream too
  writer.flushSmall();
  return writer.frames;
}

/**
 * The table or record batch whose IPC stream `frames` are. Column buffers are views over the
 * frames (no copy) unless a buffer straddles two frames, which {@link encodeArrow} never makes.
 *
 * @throws {@link ProtocolError} for a stream this module did not write (compressed, truncated).
 */
export function decodeArrow(frames: readonly Buffer[], kind: ArrowKind): ArrowValue {
  const stream = new FrameStream(frames);
  let schema: Schema | undefined;
  const dictionaries = new Map<number, Vector>();
  const batches: RecordBatch[] = [];
  for (let message = stream.message(); message !== undefined; message = stream.message()) {
    const body = { start: stream.take(message.bodyLength), length: message.bodyLength };
    if (message.isSchema()) {
      schema = message.header();
      continue;
    }
    if (schema === undefined) throw new ProtocolError('Arrow stream has a batch before its schema');
    if (message.isRecordBatch()) {
      const header = message.header();
      const children = load(stream, body, header, dictionaries, schema, schema.fields);
      const data = makeData({ type: new Struct(schema.fields), length: header.length, children });
      batches.push(new RecordBatch(schema, data, message.metadata));
    } else if (message.isDictionaryBatch()) {
      const { id, isDelta, data: header } = message.header();
      const type = schema.dictionaries.get(id);
      if (type === undefined) throw new ProtocolError(`Arrow stream has no dictionary ${id}`);
      const vector = new Vector(load(stream, body, header, dictionaries, schema, [type]));
      const before = dictionaries.get(id);
      dictionaries.set(id, (isDelta && before ? before.concat(vector) : vector).memoize());
    }
  }
  if (schema === undefined) throw new ProtocolError('Arrow stream has no schema');
  if (kind === 'table') return new Table(schema, batches);
  return batches[0] ?? new RecordBatch(schema);
}

/** Where a message's body lies in its stream. */
interface Body {
  readonly start: number;
  readonly length: number;
}

/** The columns of one record batch whose body is `body` in `stream`. */
function load(
  stream: FrameStream,
  body: Body,
  header: metadata.RecordBatch,
  dictionaries: Map<number, Vector>,
  schema: Schema,
  types: (Field | DataType)[],
): Data[] {
  if (header.compression !== null) {
    throw new ProtocolError('Arrow stream is compressed; tsparallel never sends compressed ones');
  }
  const loader = new FrameLoader(stream, body, header, dictionaries, schema.metadataVersion);
  return loader.visitMany(types);
}

/** Arrow's loader, reading each buffer from the frames instead of one body array. */
class FrameLoader extends VectorLoader {
  constructor(
    private readonly stream: FrameStream,
    private readonly body: Body,
    header: metadata.RecordBatch,
    dictionaries: Map<number, Vector>,
    version: MetadataVersion,
  ) {
    super(EMPTY, header.nodes, header.buffers, dictionaries, version, header.variadicBufferCounts);
  }

  protected override readData<T extends DataType>(
    _type: T,
    { length, offset }: metadata.BufferRegion = this.nextBufferRange(),
  ): Uint8Array {
    if (offset < 0 || length < 0 || offset + length > this.body.length) {
      throw new ProtocolError('Arrow buffer lies outside its message body');
    }
    return this.stream.bytes(this.body.start + offset, length);
  }
}

const EMPTY = new Uint8Array(0);
const CONTINUATION = -1;

/** The frames as one byte stream, read front to back, without joining them. */
class FrameStream {
  private readonly starts: number[] = [];
  private readonly end: number;
  private at = 0;

  constructor(private readonly frames: readonly Buffer[]) {
    let start = 0;
    for (const f of frames) {
      this.starts.push(start);
      start += f.byteLength;
    }
    this.end = start;
  }

  /** The next message's metadata, or undefined at the end-of-stream marker. */
  message(): Message | undefined {
    const prefix = this.int32(this.take(4));
    const length = prefix === CONTINUATION ? this.int32(this.take(4)) : prefix;
    if (length === 0) return undefined;
    return Message.decode(this.bytes(this.take(length), length));
  }

  /** Skips `length` bytes; returns where they start. */
  take(length: number): number {
    const start = this.at;
    if (!Number.isSafeInteger(length) || length < 0 || start + length > this.end) {
      throw new ProtocolError('Arrow stream is truncated');
    }
    this.at += length;
    return start;
  }

  /**
   * `length` bytes at `start`: a view when one frame holds them 8-byte aligned, else a copy.
   * Arrow makes typed arrays over them, which need their element size's alignment; a frame may
   * arrive at any offset (packed in a batch with other messages' frames).
   */
  bytes(start: number, length: number): Uint8Array {
    if (start < 0 || length < 0 || start + length > this.end) {
      throw new ProtocolError('Arrow buffer lies outside its stream');
    }
    let i = this.frameAt(start);
    const frame = this.frames[i];
    const offset = start - this.starts[i];
    if (offset + length <= frame.byteLength && (frame.byteOffset + offset) % 8 === 0) {
      return frame.subarray(offset, offset + length);
    }
    const copy = new Uint8Array(length);
    for (let done = 0; done < length; i++) {
      const from = this.frames[i].subarray(done === 0 ? offset : 0);
      const piece = from.subarray(0, length - done);
      copy.set(piece, done);
      done += piece.byteLength;
    }
    return copy;
  }

  private int32(start: number): number {
    const b = this.bytes(start, 4);
    return new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true);
  }

  /** The index of the frame holding byte `start` (the last frame starting at or before it). */
  private frameAt(start: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= start) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

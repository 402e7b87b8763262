/**
 * Values (task arguments and results) as ZeroMQ frames, with structured clone semantics.
 *
 * `frames[0]` is a `node:v8` serialization of the value; large binary data rides in the frames
 * after it, each a view over the original memory, so a 100 MB typed array is never copied by
 * the encoder and, when its frame arrives aligned, never copied by the decoder either.
 *
 * Body layout: v8 header, varint `transferCount`, then the value. ArrayBuffers `0 ..
 * transferCount - 1` travel through v8's transfer mechanism as frames `1 .. transferCount`; large
 * ArrayBufferViews follow as further frames, referenced from their host-object records. Arrow
 * tables and record batches travel as Arrow IPC streams in frames of their own (`arrow.ts`).
 */

import { types } from 'node:util';
import * as v8 from 'node:v8';
import type * as ArrowCodec from './arrow';
import { arrowKind, type ArrowKind } from './arrow-kind';
import { ProtocolError, SerializationError } from './errors';

/** Byte length at or above which an ArrayBuffer or typed array travels as its own frame. */
export const OUT_OF_BAND_THRESHOLD = 64 * 1024;

/**
 * Encodes `value` into frames: `frames[0]` is the v8-serialized body, the rest are out-of-band
 * binary frames.
 *
 * The binary frames share memory with `value` (no copy): do not mutate its ArrayBuffers and typed
 * arrays until the frames have been sent.
 *
 * @param value - anything structured clone accepts.
 * @param root - how error paths name `value`, e.g. `'args[1]'` or `'result'`.
 * @throws {@link SerializationError} before producing any frame if something inside `value`
 *   cannot be cloned (a function, symbol, Promise, WeakMap, ...); `path` says where, e.g.
 *   `args[1].opts.callback`.
 */
export function encodeValue(value: unknown, root = 'value'): Buffer[] {
  let found: ScanResult;
  try {
    found = scan(value);
  } catch (err) {
    // A throwing getter or a revoked proxy.
    throw explain(value, root, err);
  }
  if (found.refused) throw explain(value, root);
  if (found.arrow !== undefined) value = withArrowSlots(value, found.arrow, root);

  const { transfers } = found;
  const frames: Buffer[] = [EMPTY];
  let transferIds: Map<ArrayBufferLike, number> | undefined;
  if (transfers.length > 0) {
    transferIds = new Map();
    for (let i = 0; i < transfers.length; i++) {
      transferIds.set(transfers[i], i);
      frames.push(Buffer.from(transfers[i]));
    }
  }
  const serializer = new OutOfBandSerializer(frames, transferIds);
  serializer.writeHeader();
  serializer.writeUint32(transfers.length);
  for (let i = 0; i < transfers.length; i++) serializer.transferArrayBuffer(i, transfers[i]);
  try {
    serializer.writeValue(value);
  } catch (err) {
    throw explain(value, root, err);
  }
  frames[0] = serializer.releaseBuffer();
  return frames;
}

/**
 * Decodes frames produced by {@link encodeValue}.
 *
 * Large typed arrays and ArrayBuffers in the result are built over the frames' memory when
 * alignment allows (no copy), so the frames must not be reused afterwards.
 *
 * @throws {@link ProtocolError} if the frames are not a valid encoding.
 */
export function decodeValue(frames: readonly Buffer[]): unknown {
  if (frames.length === 0) throw new ProtocolError('cannot decode a value from zero frames');
  try {
    const deserializer = new OutOfBandDeserializer(frames);
    deserializer.readHeader();
    const transferCount = deserializer.readUint32();
    if (transferCount >= frames.length) {
      throw new ProtocolError(
        `value expects ${transferCount} transferred buffers, got ${frames.length - 1} frames`,
      );
    }
    for (let id = 0; id < transferCount; id++) {
      const buffer = wholeArrayBuffer(frames[id + 1]);
      deserializer.transfers.push(buffer);
      deserializer.transferArrayBuffer(id, buffer);
    }
    return deserializer.readValue();
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError(`cannot decode value: ${errorMessage(err)}`, 'malformed', {
      cause: err,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Host objects: how ArrayBufferViews are written and read.

// Host-object record tags; each record starts with one.
/** Node's own record follows (the bytes are copied into the body). */
const TAG_INLINE = 0;
/** `kind, frameIndex, byteLength`: the bytes are the whole frame. */
const TAG_FRAME = 1;
/** `kind, transferId, byteOffset, byteLength`: a view over a transferred ArrayBuffer. */
const TAG_OVER_TRANSFER = 2;
/** `arrowKind, firstFrame, frameCount`: an Arrow table or record batch, as its IPC stream. */
const TAG_ARROW = 3;

/** How to rebuild one kind of view over some memory. */
interface ViewKind {
  readonly bytesPerElement: number;
  readonly make: (
    buffer: ArrayBufferLike,
    byteOffset: number,
    byteLength: number,
  ) => ArrayBufferView;
}

type TypedArrayConstructor = {
  readonly BYTES_PER_ELEMENT: number;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): ArrayBufferView;
};

const typed = (C: TypedArrayConstructor): ViewKind => ({
  bytesPerElement: C.BYTES_PER_ELEMENT,
  make: (buffer, byteOffset, byteLength) =>
    new C(buffer, byteOffset, byteLength / C.BYTES_PER_ELEMENT),
});

/** Indexed like Node's lib/v8.js (10 is Buffer), so records read like Node's own. */
const VIEW_KINDS: readonly ViewKind[] = [
  typed(Int8Array),
  typed(Uint8Array),
  typed(Uint8ClampedArray),
  typed(Int16Array),
  typed(Uint16Array),
  typed(Int32Array),
  typed(Uint32Array),
  typed(Float32Array),
  typed(Float64Array),
  { bytesPerElement: 1, make: (b, o, n) => new DataView(b, o, n) },
  { bytesPerElement: 1, make: (b, o, n) => Buffer.from(b, o, n) },
  typed(BigInt64Array),
  typed(BigUint64Array),
];

const BUFFER_KIND = 10;
const KIND_BY_CONSTRUCTOR = new Map<unknown, number>([
  [Int8Array, 0],
  [Uint8Array, 1],
  [Uint8ClampedArray, 2],
  [Int16Array, 3],
  [Uint16Array, 4],
  [Int32Array, 5],
  [Uint32Array, 6],
  [Float32Array, 7],
  [Float64Array, 8],
  [DataView, 9],
  [Buffer, BUFFER_KIND],
  [BigInt64Array, 11],
  [BigUint64Array, 12],
]);
const KIND_BY_TAG = new Map<string, number>(
  [...KIND_BY_CONSTRUCTOR].flatMap(([C, kind]) =>
    kind === BUFFER_KIND ? [] : [[`[object ${(C as { name: string }).name}]`, kind] as const],
  ),
);

/** Node's kind index for `view`, or -1 for kinds this Node does not know (super will refuse). */
function viewKind(view: ArrayBufferView): number {
  // The constructor answers for nearly every view; subclasses fall back to the brand tag, as
  // Node's own `arrayBufferViewTypeToIndex` does.
  return (
    KIND_BY_CONSTRUCTOR.get(view.constructor) ??
    KIND_BY_TAG.get(Object.prototype.toString.call(view)) ??
    -1
  );
}

/**
 * A view of `kind` over `buffer`; copied once into fresh memory if `byteOffset` is not a multiple
 * of the element size (typed arrays require alignment; frames may arrive at any offset).
 */
function makeView(
  kind: number,
  buffer: ArrayBufferLike,
  byteOffset: number,
  byteLength: number,
): ArrayBufferView {
  const spec = VIEW_KINDS[kind];
  if (spec === undefined) throw new ProtocolError(`unknown array buffer view kind ${kind}`);
  if (
    !Number.isSafeInteger(byteOffset) ||
    !Number.isSafeInteger(byteLength) ||
    byteOffset < 0 ||
    byteLength < 0 ||
    byteLength % spec.bytesPerElement !== 0 ||
    byteOffset + byteLength > buffer.byteLength
  ) {
    throw new ProtocolError('array buffer view does not fit its memory');
  }
  if (byteOffset % spec.bytesPerElement === 0) return spec.make(buffer, byteOffset, byteLength);
  const aligned = new Uint8Array(byteLength);
  aligned.set(new Uint8Array(buffer, byteOffset, byteLength));
  return spec.make(aligned.buffer, 0, byteLength);
}

/**
 * The v8 host-object hooks. @types/node does not declare them because Node calls them by name
 * from C++; typing them here lets the overrides call the originals without `any`.
 */
interface SerializerHooks {
  _writeHostObject(this: v8.Serializer, view: ArrayBufferView): void;
}
interface DeserializerHooks {
  _readHostObject(this: v8.Deserializer): ArrayBufferView;
}
const superWriteHostObject = (v8.DefaultSerializer.prototype as unknown as SerializerHooks)
  ._writeHostObject;
const superReadHostObject = (v8.DefaultDeserializer.prototype as unknown as DeserializerHooks)
  ._readHostObject;

/**
 * DefaultSerializer already routes every ArrayBufferView through `_writeHostObject` (it copies
 * the view's bytes into the body); large views instead become frames over the same memory.
 */
class OutOfBandSerializer extends v8.DefaultSerializer {
  constructor(
    private readonly frames: Buffer[],
    private readonly transferIds: ReadonlyMap<ArrayBufferLike, number> | undefined,
  ) {
    super();
  }

  /** Called by v8 (by name) for each ArrayBufferView in the value. */
  _writeHostObject(view: ArrayBufferView): void {
    if (view instanceof ArrowSlot) {
      const frames = arrow().encodeArrow(view.value, OUT_OF_BAND_THRESHOLD);
      this.writeUint32(TAG_ARROW);
      this.writeUint32(ARROW_KINDS.indexOf(view.kind));
      this.writeUint32(this.frames.length);
      this.writeUint32(frames.length);
      this.frames.push(...frames);
      return;
    }
    const transferId = this.transferIds?.get(view.buffer);
    const kind = viewKind(view);
    if (kind !== -1 && transferId !== undefined) {
      // Its ArrayBuffer travels anyway: point into it, which also keeps the two sharing memory.
      this.writeUint32(TAG_OVER_TRANSFER);
      this.writeUint32(kind);
      this.writeUint32(transferId);
      this.writeDouble(view.byteOffset);
      this.writeDouble(view.byteLength);
    } else if (kind !== -1 && view.byteLength >= OUT_OF_BAND_THRESHOLD) {
      this.writeUint32(TAG_FRAME);
      this.writeUint32(kind);
      this.writeUint32(this.frames.length);
      this.writeDouble(view.byteLength);
      this.frames.push(Buffer.from(view.buffer, view.byteOffset, view.byteLength));
    } else {
      this.writeUint32(TAG_INLINE);
      superWriteHostObject.call(this, view);
    }
  }
}

/** Reads what {@link OutOfBandSerializer} wrote, over the received frames' memory. */
class OutOfBandDeserializer extends v8.DefaultDeserializer {
  /** The transferred ArrayBuffers, by transfer id. */
  readonly transfers: ArrayBuffer[] = [];

  constructor(private readonly frames: readonly Buffer[]) {
    super(frames[0]);
  }

  /** Called by v8 (by name) for each host object in the body. */
  _readHostObject(): object {
    const tag = this.readUint32();
    // Node's reader makes small views over the message body itself; a copy keeps the rest of the
    // message out of reach (view.buffer) and gives the view offset 0, as a structured clone does.
    if (tag === TAG_INLINE) return ownCopy(superReadHostObject.call(this));
    const kind = this.readUint32();
    if (tag === TAG_ARROW) {
      const first = this.readUint32();
      const count = this.readUint32();
      const arrowKind = ARROW_KINDS[kind];
      if (arrowKind === undefined || first < 1 || count < 1 || first + count > this.frames.length) {
        throw new ProtocolError('Arrow value refers to missing frames');
      }
      return arrow().decodeArrow(this.frames.slice(first, first + count), arrowKind);
    }
    if (tag === TAG_FRAME) {
      const frameIndex = this.readUint32();
      const byteLength = this.readDouble();
      const frame = frameIndex > 0 ? this.frames[frameIndex] : undefined;
      if (frame === undefined || frame.byteLength !== byteLength) {
        throw new ProtocolError(`binary frame ${frameIndex} is missing or has the wrong length`);
      }
      return makeView(kind, frame.buffer, frame.byteOffset, byteLength);
    }
    if (tag === TAG_OVER_TRANSFER) {
      const buffer = this.transfers[this.readUint32()];
      const byteOffset = this.readDouble();
      const byteLength = this.readDouble();
      if (buffer === undefined) throw new ProtocolError('view refers to a missing transfer');
      return makeView(kind, buffer, byteOffset, byteLength);
    }
    throw new ProtocolError(`unknown host object tag ${tag}`);
  }
}

const EMPTY = Buffer.alloc(0);

// ---------------------------------------------------------------------------------------------
// Arrow tables and record batches: found by the scan, encoded by `arrow.ts`.

/** Wire codes of the Arrow kinds, by index. */
const ARROW_KINDS: readonly ArrowKind[] = ['table', 'batch'];

let arrowCodec: typeof ArrowCodec | undefined;

/** Loads apache-arrow on the first table: most processes never meet one. */
function arrow(): typeof ArrowCodec {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  arrowCodec ??= require('./arrow') as typeof ArrowCodec;
  return arrowCodec;
}

/**
 * Stands in for an Arrow value while v8 serializes: v8 hands ArrayBufferViews to
 * `_writeHostObject`, and no other kind of object, so the table rides in an empty view.
 */
class ArrowSlot extends Uint8Array {
  constructor(
    readonly value: ArrowCodec.ArrowValue,
    readonly kind: ArrowKind,
  ) {
    super(0);
  }
}

/**
 * `value` with each Arrow value in `found` replaced by an {@link ArrowSlot}; the containers on
 * the way to one are copied (as v8 would write them: arrays, Maps, Sets, objects by their own
 * enumerable properties), everything else is shared. The same table twice is one slot, so it
 * travels once.
 */
function withArrowSlots(value: unknown, found: ReadonlySet<object>, root: string): unknown {
  const slots = new Map<object, ArrowSlot>();
  for (const o of found) {
    slots.set(o, new ArrowSlot(o as ArrowCodec.ArrowValue, arrowKind(o) as ArrowKind));
  }
  const copies = new Map<object, unknown>();
  const IN_PROGRESS = Symbol('in progress');
  const reentered = new Set<object>();
  const replace = (v: unknown): unknown => {
    if (typeof v !== 'object' || v === null || ArrayBuffer.isView(v)) return v;
    const slot = slots.get(v);
    if (slot !== undefined) return slot;
    const known = copies.get(v);
    if (known === IN_PROGRESS) {
      reentered.add(v);
      return v;
    }
    if (known !== undefined) return known;
    copies.set(v, IN_PROGRESS);
    const out = copyWith(v, replace);
    if (out !== v && reentered.has(v)) {
      throw new SerializationError(
        `cannot send an Arrow table inside a cyclic structure at ${root}; send the table on its own`,
        root,
      );
    }
    copies.set(v, out);
    return out;
  };
  return replace(value);
}

/** `o` with its children passed through `replace`: `o` itself when none changed, else a copy. */
function copyWith(o: object, replace: (v: unknown) => unknown): object {
  if (Array.isArray(o)) {
    const items = o.map(replace);
    return items.some((x, i) => x !== o[i]) ? items : o;
  }
  if (types.isMap(o)) {
    const entries = [...(o as Map<unknown, unknown>)];
    const replaced = entries.map(([k, v]) => [replace(k), replace(v)] as const);
    const changed = replaced.some(([k, v], i) => k !== entries[i][0] || v !== entries[i][1]);
    return changed ? new Map(replaced) : o;
  }
  if (types.isSet(o)) {
    const items = [...(o as Set<unknown>)];
    const replaced = items.map(replace);
    return replaced.some((x, i) => x !== items[i]) ? new Set(replaced) : o;
  }
  if (
    types.isAnyArrayBuffer(o) ||
    types.isNativeError(o) ||
    types.isDate(o) ||
    types.isRegExp(o) ||
    types.isBoxedPrimitive(o)
  ) {
    return o;
  }
  const keys = Object.keys(o);
  const values = keys.map((k) => replace((o as Record<string, unknown>)[k]));
  if (values.every((x, i) => x === (o as Record<string, unknown>)[keys[i]])) return o;
  return Object.fromEntries(keys.map((k, i) => [k, values[i]]));
}

/** The frame's bytes as a whole ArrayBuffer: its own memory when it owns all of it, else a copy. */
function wholeArrayBuffer(frame: Buffer): ArrayBuffer {
  const { buffer } = frame;
  if (
    frame.byteOffset === 0 &&
    frame.byteLength === buffer.byteLength &&
    types.isArrayBuffer(buffer) &&
    !isResizable(buffer)
  ) {
    return buffer;
  }
  // A slice of a larger (e.g. pooled) buffer: the ArrayBuffer must hold exactly the frame's bytes.
  const copy = new Uint8Array(frame.byteLength);
  copy.set(frame);
  return copy.buffer;
}

/** `resizable` is ES2024, newer than this project's lib. */
function isResizable(buffer: ArrayBuffer): boolean {
  return (buffer as { resizable?: boolean }).resizable === true;
}

// ---------------------------------------------------------------------------------------------
// The scan before serializing: collect large ArrayBuffers to transfer, spot functions and symbols.

/** Arrays with more holes than this are walked by their keys, as v8 serializes sparse arrays. */
const MAX_HOLES_SCANNED = 1024;
/**
 * Without a visited set, a scan this deep is probably in a cycle, and this many visits may be
 * repeats of shared objects: past either, the scan goes on with a set. The depth also bounds
 * recursion: deeper objects are deferred and scanned from the top.
 */
const MAX_DEPTH = 1024;
const MAX_TREE_VISITS = 1 << 20;

/**
 * What {@link scan} found: large ArrayBuffers to send as frames, and whether it met a function or
 * symbol (then serializing is pointless and {@link explain} produces the error).
 */
interface ScanResult {
  readonly transfers: ArrayBuffer[];
  readonly refused: boolean;
  /** Arrow tables and record batches met (not walked into), if any. */
  readonly arrow: ReadonlySet<object> | undefined;
}

/**
 * Walks what v8 will write (own enumerable properties, array elements, Map and Set entries, an
 * Error's cause; not typed arrays' contents).
 *
 * Most values are trees, so the scan starts without a visited set (one makes the scan several
 * times slower) and only adds one when depth or visit count suggests a cycle or heavy sharing;
 * objects met again after that are visited at most once more.
 */
function scan(value: unknown): ScanResult {
  const state = new Scan();
  state.child(value);
  for (let o = state.deferred?.pop(); o !== undefined; o = state.deferred?.pop()) {
    state.depth = 0;
    state.object(o);
  }
  return {
    transfers: state.transfers ? [...state.transfers] : [],
    refused: state.refused,
    arrow: state.arrow,
  };
}

/** The scan's state and its recursive walk (recursion is much faster than an explicit stack). */
class Scan {
  refused = false;
  depth = 0;
  transfers: Set<ArrayBuffer> | undefined;
  arrow: Set<object> | undefined;
  deferred: object[] | undefined;
  private seen: Set<object> | undefined;
  private visits = 0;

  child(v: unknown): void {
    if (typeof v === 'object') {
      if (v !== null) this.object(v);
    } else if (typeof v === 'function' || typeof v === 'symbol') {
      this.refused = true;
    }
  }

  object(o: object): void {
    if (this.refused) return;
    if (this.seen !== undefined) {
      if (this.seen.has(o)) return;
      this.seen.add(o);
    } else if (++this.visits > MAX_TREE_VISITS || this.depth >= MAX_DEPTH) {
      this.seen = new Set([o]);
    }
    if (this.depth >= MAX_DEPTH) {
      (this.deferred ??= []).push(o);
      this.seen?.delete(o); // so that it is visited when taken from `deferred`
      return;
    }
    if (ArrayBuffer.isView(o)) return;
    this.depth++;
    if (Array.isArray(o)) {
      this.array(o);
    } else {
      const proto: unknown = Object.getPrototypeOf(o);
      if (proto === Object.prototype || proto === null) this.keys(o);
      else this.special(o);
    }
    this.depth--;
  }

  private array(a: readonly unknown[]): void {
    let holes = 0;
    for (let i = 0; i < a.length && !this.refused; i++) {
      const element = a[i];
      if (element === undefined && !(i in a) && ++holes > MAX_HOLES_SCANNED) {
        this.keys(a);
        return;
      }
      this.child(element);
    }
  }

  private keys(o: object): void {
    const keys = Object.keys(o);
    for (let i = 0; i < keys.length && !this.refused; i++) {
      this.child((o as Record<string, unknown>)[keys[i]]);
    }
  }

  private special(o: object): void {
    if (types.isArrayBuffer(o)) {
      if (o.byteLength >= OUT_OF_BAND_THRESHOLD && !isResizable(o)) {
        (this.transfers ??= new Set()).add(o);
      }
    } else if (types.isMap(o)) {
      (o as Map<unknown, unknown>).forEach(Scan.mapEntry, this);
    } else if (types.isSet(o)) {
      (o as Set<unknown>).forEach(this.child, this);
    } else if (types.isNativeError(o)) {
      // v8 writes name, message, stack and cause; other properties are dropped, not refused.
      if (Object.hasOwn(o, 'cause')) this.child((o as Error).cause);
    } else if (arrowKind(o) !== undefined) {
      (this.arrow ??= new Set()).add(o);
    } else if (!(types.isDate(o) || types.isRegExp(o) || types.isBoxedPrimitive(o))) {
      // Anything else travels as its own enumerable properties (class instances) or makes v8
      // throw (a Promise, a WeakMap, ...), which explain() then reports.
      this.keys(o);
    }
  }

  private static mapEntry(this: Scan, value: unknown, key: unknown): void {
    this.child(key);
    this.child(value);
  }
}

// ---------------------------------------------------------------------------------------------
// Errors: find exactly what cannot travel, and where.

/** Why a value cannot travel. `segments` are collected innermost first, on the way out. */
interface Failure {
  readonly what: string;
  readonly reason: string;
  readonly segments: string[];
}

const FUNCTION_REASON =
  'functions cannot travel between processes; send data, or define the function on the engine';
const SYMBOL_REASON = 'symbols are unique to one process; send a string instead';

const fail = (what: string, reason: string): Failure => ({ what, reason, segments: [] });

function at(failure: Failure, segment: string): Failure {
  failure.segments.push(segment);
  return failure;
}

/**
 * Builds the error for a value that v8 refused (or the scan found a function or symbol in, or
 * threw on, e.g. a getter). Only runs on failure, so it may be slow: a recursive walk with paths
 * that names functions, symbols and well-known uncloneables directly, and asks v8 about each
 * object of any other kind whose contents are all acceptable.
 */
function explain(value: unknown, root: string, cause?: unknown): SerializationError {
  let failure: Failure | undefined;
  try {
    failure = locate(value, new Set());
  } catch {
    // Too deep to walk recursively: fall back to v8's message without a precise path.
    failure = undefined;
  }
  if (failure !== undefined) {
    const path = root + failure.segments.reverse().join('');
    const message = `cannot send ${failure.what} at ${path}: ${failure.reason}`;
    return new SerializationError(message, path, cause === undefined ? undefined : { cause });
  }
  const reason = cause === undefined ? 'it cannot be cloned' : errorMessage(cause);
  return new SerializationError(`cannot send ${root}: ${reason}`, root, { cause });
}

function locate(v: unknown, seen: Set<object>): Failure | undefined {
  if (typeof v === 'function') return fail('a function', FUNCTION_REASON);
  if (typeof v === 'symbol') return fail('a symbol', SYMBOL_REASON);
  if (typeof v !== 'object' || v === null || seen.has(v) || arrowKind(v) !== undefined) {
    return undefined;
  }
  seen.add(v);
  const refused = refusal(v);
  if (refused !== undefined) return refused;
  for (const [segment, read] of children(v)) {
    let child: unknown;
    try {
      child = read();
    } catch (readError) {
      return at(fail('a property', `reading it threw: ${errorMessage(readError)}`), segment);
    }
    const failure = locate(child, seen);
    if (failure !== undefined) return at(failure, segment);
  }
  if (alwaysCloneable(v)) return undefined;
  const error = probe(v);
  return error === undefined
    ? undefined
    : fail(describe(v), `it cannot be cloned (${errorMessage(error)})`);
}

/** Well-known objects structured clone refuses, with advice; undefined for anything else. */
function refusal(o: object): Failure | undefined {
  if (types.isProxy(o)) {
    return fail('a Proxy', 'proxies cannot be copied; send the target object or a plain copy');
  }
  if (types.isPromise(o)) {
    return fail(
      'a Promise',
      'promises cannot travel between processes; await it and send the result',
    );
  }
  if (types.isWeakMap(o) || types.isWeakSet(o)) {
    const name = types.isWeakMap(o) ? 'WeakMap' : 'WeakSet';
    return fail(`a ${name}`, 'weak collections cannot be copied; send a Map or Set instead');
  }
  if (o instanceof WeakRef || o instanceof FinalizationRegistry) {
    const name = o instanceof WeakRef ? 'WeakRef' : 'FinalizationRegistry';
    return fail(`a ${name}`, 'weak references cannot be copied; send the value itself');
  }
  if (types.isSymbolObject(o)) return fail('a Symbol object', SYMBOL_REASON);
  if (types.isSharedArrayBuffer(o)) {
    return fail(
      'a SharedArrayBuffer',
      'memory cannot be shared with another process; copy it into an ArrayBuffer',
    );
  }
  if (types.isGeneratorObject(o)) {
    return fail('a generator', 'generators cannot be copied; send the values as an array');
  }
  if (types.isArgumentsObject(o)) {
    return fail('an arguments object', 'it cannot be copied; send Array.from(arguments)');
  }
  return undefined;
}

/** Kinds v8 always accepts once their contents are acceptable. */
function alwaysCloneable(o: object): boolean {
  if (Array.isArray(o) || ArrayBuffer.isView(o)) return true;
  const proto: unknown = Object.getPrototypeOf(o);
  if (proto === Object.prototype || proto === null) return !types.isModuleNamespaceObject(o);
  return (
    types.isArrayBuffer(o) ||
    types.isMap(o) ||
    types.isSet(o) ||
    types.isNativeError(o) ||
    types.isDate(o) ||
    types.isRegExp(o) ||
    types.isBoxedPrimitive(o)
  );
}

/** The error v8 raises when serializing `v`, or undefined if it serializes. */
function probe(v: object): unknown {
  try {
    const serializer = new OutOfBandSerializer([], undefined);
    serializer.writeHeader();
    serializer.writeValue(v);
    return undefined;
  } catch (err) {
    return err;
  }
}

/** The parts of `o` v8 serializes, as path segment and reader. */
function* children(o: object): Generator<[string, () => unknown]> {
  if (ArrayBuffer.isView(o) || types.isAnyArrayBuffer(o) || types.isDate(o) || types.isRegExp(o)) {
    return;
  }
  if (types.isMap(o)) {
    let i = 0;
    for (const [key, value] of o as Map<unknown, unknown>) {
      yield [`.keys()[${i}]`, () => key];
      yield [mapValueSegment(key, i), () => value];
      i++;
    }
  } else if (types.isSet(o)) {
    let i = 0;
    for (const value of o as Set<unknown>) yield [`.values()[${i++}]`, () => value];
  } else if (types.isNativeError(o)) {
    if (Object.hasOwn(o, 'cause')) yield ['.cause', () => (o as Error).cause];
  } else if (!types.isBoxedPrimitive(o)) {
    // Arrays too: their keys include named properties, which v8 also writes.
    for (const key of Object.keys(o)) {
      yield [keySegment(key), () => (o as Record<string, unknown>)[key]];
    }
  }
}

/** `a WeakRef`, `an Intl.NumberFormat`, `a Foo object`. */
function describe(o: object): string {
  let name = Object.prototype.toString.call(o).slice(8, -1);
  if (name === 'Object') {
    const ctor: unknown = (o as { constructor?: unknown }).constructor;
    const ctorName = typeof ctor === 'function' ? ctor.name : '';
    name = ctorName && ctorName !== 'Object' ? `${ctorName} object` : 'object';
  }
  return `${/^[aeiou]/i.test(name) ? 'an' : 'a'} ${name}`;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const INDEX = /^(?:0|[1-9]\d*)$/;

/** `.name`, `[3]` or `["odd key"]`. */
function keySegment(key: string): string {
  if (IDENTIFIER.test(key)) return `.${key}`;
  if (INDEX.test(key)) return `[${key}]`;
  return `[${JSON.stringify(key)}]`;
}

/** `.get("key")` for primitive keys, else `.values()[i]` (the i-th entry, in insertion order). */
function mapValueSegment(key: unknown, i: number): string {
  switch (typeof key) {
    case 'string':
      return `.get(${JSON.stringify(key)})`;
    case 'number':
      return `.get(${Object.is(key, -0) ? '-0' : String(key)})`;
    case 'bigint':
      return `.get(${key}n)`;
    case 'boolean':
    case 'undefined':
      return `.get(${String(key)})`;
    default:
      return key === null ? '.get(null)' : `.values()[${i}]`;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The same view over memory of its own. */
function ownCopy(view: ArrayBufferView): ArrayBufferView {
  if (view instanceof DataView) {
    return new DataView(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
  }
  // Buffer's own slice() shares memory; Buffer.from copies.
  return Buffer.isBuffer(view) ? Buffer.from(view) : (view as Uint8Array).slice();
}

/**
 * Large values between a client and an engine of one host through files in `/dev/shm`, instead
 * of through the sockets (and the hub) they would otherwise cross as frames.
 *
 * The sender writes a value's frames into a segment and sends its {@link Segment} in the
 * message's signed metadata with no buffers; the receiver reads the frames back into memory of
 * its own. Buffers are not covered by the signature, the metadata is, so a segment name is only
 * ever taken from a signed message, and then only if it has this cluster's pattern.
 *
 * A segment's life: the client's task arguments stay until the task ends (an engine that dies
 * mid-task leaves them for the retry); a result, until the client has read it. Then the segment
 * goes back to the process that wrote it (a result's reader renames it for reader 0), which
 * writes its next large value into it, since writing over a tmpfs file's pages costs about half
 * of allocating new ones, and removes it after 2 s unused. Names carry the creator's
 * and the reader's pids, so that a sweep removes what a killed process left: see
 * {@link sweepSharedMemory}.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { ProtocolError, SharedMemoryError } from './errors';

/**
 * Total bytes of a value's frames at or above which it travels through shared memory. Below 1 MB
 * too: a direct task's arguments on the socket cross it twice, to the engine and in the copy the
 * hub is told of, and each receiver takes them into new memory, whose page faults cost more than
 * the segment's few system calls from about this size (a 1 MB scatter's two halves: a fifth less
 * CPU over all processes).
 */
export const SHARED_MEMORY_THRESHOLD = 256 * 1024;

/**
 * glibc's allocator settings for a process that receives large values (`GLIBC_TUNABLES`, joined
 * by colons): engines the local launcher starts, and the notebook kernel. A value received goes
 * into new memory, whose page faults cost more than the copy on a VM (20-30 us per 4 KB page on
 * a 2-core one, 256 of them for 1 MB, as wall time that the process's CPU time does not show):
 * - `hugetlb=1`: large allocations in transparent huge pages, a fault per 2 MB instead of per
 *   4 KB (100 MB from /dev/shm into new memory: 250-400 ms -> 20-40 ms on that VM);
 * - `mmap_threshold` at its most (32 MiB): values under it come from the heap, which grows in
 *   huge pages, rather than from a mapping of their own in 4 KB pages, unmapped when freed;
 * - `trim_threshold` of 128 MiB: the heap keeps that much that freed values left for the next
 *   ones, rather than faulting it in again. V8 frees them in batches, at its collections, and
 *   with 64 MiB repeated 1 MB gathers ran at 110 MB/s and pulls at 130-260, with 128 MiB at 270
 *   and 300-400 (one script, the two settings in turn).
 * 1 MB pushes: the engine's faults per push 220-260 -> 10-15.
 */
export const RECEIVER_TUNABLES: readonly string[] = [
  'glibc.malloc.hugetlb=1',
  `glibc.malloc.mmap_threshold=${32 * 1024 * 1024}`,
  `glibc.malloc.trim_threshold=${128 * 1024 * 1024}`,
];

/** A tmpfs that every process of a host (or container) shares. */
const SHM_DIR = '/dev/shm';
const PREFIX = 'tsparallel-';
/** `tsparallel-<cluster tag>-<creator pid>-<reader pid or 0>-<random>`. */
const SEGMENT_NAME = /^tsparallel-([0-9a-f]{12})-(\d{1,10})-(\d{1,10})-([0-9a-f]{16})$/;

/** A value's frames, laid end to end in one file of `/dev/shm`. */
export interface Segment {
  name: string;
  lengths: number[];
}

/** Where a process takes values back through shared memory: its host and pid. */
export interface Reader {
  host: string;
  pid: number;
  /**
   * The result is awaited at once (a pull, a gather): one its engine keeps comes with the reply
   * too, which spares the round trip of fetching it.
   */
  awaited?: true;
}

/** Metadata keys: the segment holding a message's value, and where its answer may go. */
const SEGMENT_KEY = 'shm_segment';
const READER_KEY = 'shm_reader';

/** True when a message's `metadata` says its value is in a segment, not in its buffers. */
export function hasSegment(metadata: Record<string, unknown>): boolean {
  return metadata[SEGMENT_KEY] !== undefined;
}

/** Segments this large are read in parallel parts of `READ_PART` bytes, smaller ones at once. */
const PARALLEL_READS = 8 * 1024 * 1024;
const READ_PART = 16 * 1024 * 1024;
/** At most this many frames per segment, as a bound on what a descriptor may ask for. */
const MAX_FRAMES = 1 << 20;

let host: string | undefined | null = null;

/**
 * This host's shared memory, as processes compare it: two processes share `/dev/shm` (and so may
 * exchange segments) when they see the same boot, the same `/dev/shm` mount and the same pid
 * namespace (pids in segment names must mean the same process). Undefined where there is no
 * `/dev/shm` (not Linux).
 */
export function sharedMemoryHost(): string | undefined {
  if (host === null) {
    try {
      const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      const { dev } = fs.statSync(SHM_DIR);
      const seen = `${boot}/${dev}/${fs.readlinkSync('/proc/self/ns/pid')}`;
      // Short, as it rides in every apply request's metadata.
      host = createHash('sha256').update(seen).digest('hex').slice(0, 16);
    } catch {
      host = undefined;
    }
  }
  return host;
}

/**
 * One process's side of the shared-memory path for one cluster (named by its key, so that a
 * segment of another cluster is never read). With `enabled` false, nothing goes through it, but
 * segments sent anyway are still read.
 */
export class SharedMemory {
  /** This host (see {@link sharedMemoryHost}) when this process may use shared memory. */
  readonly host: string | undefined;
  private readonly tag: string;
  /**
   * Segments this process wrote, by their random part, so that the next value written reuses
   * one: writing into pages a file already has costs about half of writing a new file.
   */
  private readonly written = new Map<string, Written>();
  private expiry: NodeJS.Timeout | undefined;

  constructor(key: string, enabled = true) {
    this.host = enabled ? sharedMemoryHost() : undefined;
    this.tag = clusterTag(key);
  }

  /**
   * Metadata for a request to engines that see `peerHost`: where its result may come back through
   * shared memory, when they see this host's; `awaited`: see {@link Reader}.
   */
  readerMetadata(peerHost: string | undefined, awaited = false): Record<string, Reader> {
    return this.host === undefined || peerHost !== this.host
      ? {}
      : { [READER_KEY]: { host: this.host, pid: process.pid, ...(awaited && { awaited }) } };
  }

  /** Where the request with `metadata` asks its result to go, if it can go through memory. */
  readerOf(metadata: Record<string, unknown>): Reader | undefined {
    const r = metadata[READER_KEY] as Partial<Reader> | undefined;
    if (r === undefined || r.host !== this.host || this.host === undefined) return undefined;
    return typeof r.pid === 'number' && Number.isSafeInteger(r.pid) && r.pid > 0
      ? (r as Reader)
      : undefined;
  }

  /**
   * Writes `frames` into a segment when they are large enough and `peerHost` is this host, and
   * returns the metadata that names it (then the message carries no buffers); undefined when the
   * value goes on the socket, which is also the way out when `/dev/shm` is full. `readerPid` is
   * the process that reads it and gives it back (see `release`), 0 when this one frees it.
   */
  write(
    frames: readonly Buffer[],
    peerHost: string | undefined,
    readerPid = 0,
  ): Record<string, Segment> | undefined {
    if (this.host === undefined || peerHost !== this.host) return undefined;
    let total = 0;
    for (const f of frames) total += f.byteLength;
    if (total < SHARED_MEMORY_THRESHOLD) return undefined;
    const reused = this.reuse(total, readerPid);
    const id = reused ?? randomBytes(8).toString('hex');
    const name = this.name(process.pid, readerPid, id);
    let fd: number | undefined;
    try {
      fd = fs.openSync(join(SHM_DIR, name), reused ? REUSE_FLAGS : CREATE_FLAGS, 0o600);
      // writev takes at most IOV_MAX buffers and may write less than asked: go on from there.
      for (let rest = frames.slice(), at = 0; at < total; ) {
        const n = fs.writevSync(fd, rest.slice(0, 1024), at);
        if (n === 0) throw new Error('no progress');
        at += n;
        rest = advance(rest, n);
      }
      fs.closeSync(fd);
    } catch {
      if (fd !== undefined) fs.closeSync(fd);
      unlink(name);
      this.written.delete(id);
      return undefined;
    }
    const size = Math.max(total, this.written.get(id)?.size ?? 0);
    this.written.set(id, { size, reader: readerPid, idleSince: undefined });
    this.expireLater();
    return { [SEGMENT_KEY]: { name, lengths: frames.map((f) => f.byteLength) } };
  }

  /** The segment a message's `metadata` names, checked; undefined when it names none. */
  segmentOf(metadata: Record<string, unknown>): Segment | undefined {
    const s = metadata[SEGMENT_KEY];
    if (s === undefined) return undefined;
    const { name, lengths } = (s ?? {}) as Partial<Segment>;
    if (typeof name !== 'string' || this.parse(name) === undefined) {
      throw new ProtocolError(
        `refusing to read shared memory ${JSON.stringify(name)}: a segment is named ` +
          `${PREFIX}${this.tag}-<pid>-<pid>-<16 hex digits> in ${SHM_DIR}, and this is not one ` +
          "of this cluster's; the message was forged or comes from another cluster",
      );
    }
    if (
      !Array.isArray(lengths) ||
      lengths.length === 0 ||
      lengths.length > MAX_FRAMES ||
      !lengths.every((n) => Number.isSafeInteger(n) && n >= 0)
    ) {
      throw new ProtocolError(`shared memory segment ${name} has malformed frame lengths`);
    }
    return { name, lengths };
  }

  /**
   * The frames of a value that arrived with `buffers` and `metadata`: read from the segment the
   * metadata names (into memory of their own, each frame in its own ArrayBuffer, so decoding
   * copies nothing), or `buffers` when it names none.
   * @throws {@link ProtocolError} for a segment name outside this cluster's pattern;
   *   {@link SharedMemoryError} when the segment cannot be read.
   */
  async read(buffers: Buffer[], metadata: Record<string, unknown>): Promise<Buffer[]> {
    const segment = this.segmentOf(metadata);
    if (segment === undefined) return buffers;
    if (buffers.length > 0) {
      throw new ProtocolError('a message carries both buffers and a shared memory segment');
    }
    return readSegment(segment);
  }

  /**
   * Done with the segment `metadata` names, if any: one this process wrote waits a moment for
   * the next value it writes; one it read goes back to its writer for the same, or is removed
   * when the writer is gone.
   */
  release(metadata: Record<string, unknown>): void {
    const name = (metadata[SEGMENT_KEY] as Partial<Segment> | undefined)?.name;
    const parsed = typeof name === 'string' ? this.parse(name) : undefined;
    if (parsed === undefined) return;
    const { creator, id } = parsed;
    const mine = creator === process.pid ? this.written.get(id) : undefined;
    if (mine !== undefined) {
      mine.idleSince = Date.now();
      this.expireLater();
    } else if (creator !== process.pid && isAlive(creator)) {
      rename(name as string, this.name(creator, 0, id));
    } else {
      unlink(name as string);
    }
  }

  /** Removes the segments this process wrote that wait to be reused: for a closing client. */
  close(): void {
    clearTimeout(this.expiry);
    this.expiry = undefined;
    for (const [id, w] of this.written) if (w.reader === 0) unlink(this.name(process.pid, 0, id));
    this.written.clear();
  }

  /** Removes every segment of this cluster, whoever made it: for a cluster that stopped. */
  removeAll(): void {
    for (const name of segmentNames()) if (this.parse(name) !== undefined) unlink(name);
  }

  /**
   * The random part of a segment this process wrote that is free now and fits `total` bytes
   * without wasting most of it, renamed for `readerPid`; undefined when none is.
   */
  private reuse(total: number, readerPid: number): string | undefined {
    const fits = [...this.written]
      .filter(([, w]) => w.size >= total && w.size <= 2 * total)
      .sort(([, a], [, b]) => a.size - b.size);
    for (const [id, w] of fits) {
      // A segment its reader gave back is named for reader 0 (see `release`).
      if (w.reader !== 0 && this.given(id) === undefined) continue;
      if (w.reader === 0 && w.idleSince === undefined) continue; // its task still runs
      if (
        readerPid === 0 ||
        rename(this.name(process.pid, 0, id), this.name(process.pid, readerPid, id))
      ) {
        return id;
      }
    }
    return undefined;
  }

  /** Whether the reader of segment `id` gave it back, and since when we know. */
  private given(id: string): number | undefined {
    const w = this.written.get(id);
    if (w === undefined || w.reader === 0) return w?.idleSince;
    if (!fs.existsSync(join(SHM_DIR, this.name(process.pid, 0, id)))) return undefined;
    w.reader = 0;
    w.idleSince = Date.now();
    return w.idleSince;
  }

  /**
   * Removes what waited longer than `IDLE_MS` to be reused, and forgets segments their reader
   * removed; checks again while any segment is out.
   */
  private expireLater(): void {
    if (this.expiry !== undefined) return;
    this.expiry = setTimeout(() => {
      this.expiry = undefined;
      const now = Date.now();
      for (const [id, w] of this.written) {
        const lent = w.reader !== 0 ? this.name(process.pid, w.reader, id) : undefined;
        const since = this.given(id);
        if (since !== undefined && now - since >= IDLE_MS) {
          unlink(this.name(process.pid, 0, id));
          this.written.delete(id);
        } else if (
          lent !== undefined &&
          since === undefined &&
          !fs.existsSync(join(SHM_DIR, lent))
        ) {
          this.written.delete(id);
        }
      }
      if (this.written.size > 0) this.expireLater();
    }, IDLE_MS / 2).unref();
  }

  private name(creator: number, reader: number, id: string): string {
    return `${PREFIX}${this.tag}-${creator}-${reader}-${id}`;
  }

  /** A segment name's parts, if it is one of this cluster's. */
  private parse(name: string): { creator: number; reader: number; id: string } | undefined {
    const m = SEGMENT_NAME.exec(name);
    if (m === null || m[1] !== this.tag) return undefined;
    return { creator: Number(m[2]), reader: Number(m[3]), id: m[4] };
  }
}

/** A segment this process wrote: for `reader` (0: this process frees it), and since when free. */
interface Written {
  size: number;
  reader: number;
  idleSince: number | undefined;
}

/**
 * Removes the segments, of any cluster, that no process will read or free: those whose reader
 * is dead, and those freed by their creator (reader 0) whose creator is dead. Run where a
 * process starts (cluster, engine, client) and when a cluster stops, so that what a `kill -9`
 * left is gone by the next start at the latest.
 */
export function sweepSharedMemory(): void {
  for (const name of segmentNames()) {
    const m = SEGMENT_NAME.exec(name);
    if (m === null) continue;
    const [creator, reader] = [Number(m[2]), Number(m[3])];
    if (!isAlive(reader === 0 ? creator : reader)) unlink(name);
  }
}

// ---------------------------------------------------------------------------------------------

const { O_CREAT, O_EXCL, O_WRONLY, O_RDONLY, O_NOFOLLOW } = fs.constants;
const CREATE_FLAGS = O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW;
const REUSE_FLAGS = O_WRONLY | O_NOFOLLOW;
/** How long a segment waits to be reused before it is removed. */
const IDLE_MS = 2000;

/**
 * The segment's frames, each read into an ArrayBuffer of its own: small segments at once (a trip
 * through libuv's thread pool costs more than the copy), large ones in parts read in parallel.
 */
async function readSegment(segment: Segment): Promise<Buffer[]> {
  const { name, lengths } = segment;
  let fd: number;
  try {
    // O_NOFOLLOW: a name of the right pattern that is a link elsewhere is still refused.
    fd = fs.openSync(join(SHM_DIR, name), O_RDONLY | O_NOFOLLOW);
  } catch (e) {
    throw new SharedMemoryError(
      `cannot open shared memory segment ${name}: ${(e as Error).message}. A segment is freed ` +
        'once its value is delivered, so a task resubmitted or a result fetched again from the ' +
        'controller finds it gone; send the value again',
      { cause: e },
    );
  }
  try {
    const stat = fs.fstatSync(fd);
    const total = lengths.reduce((a, b) => a + b, 0);
    if (!stat.isFile() || stat.size < total || stat.uid !== process.getuid?.()) {
      throw new SharedMemoryError(
        `shared memory segment ${name} is not a file of this user holding ${total} bytes`,
      );
    }
    const frames = lengths.map((n) => Buffer.allocUnsafeSlow(n));
    const reads: Promise<void>[] = [];
    let at = 0;
    for (const frame of frames) {
      for (let part = 0; part < frame.byteLength; part += READ_PART) {
        const length = Math.min(READ_PART, frame.byteLength - part);
        if (total < PARALLEL_READS) readSync(fd, frame, part, length, at + part);
        else reads.push(readAsync(fd, frame, part, length, at + part));
      }
      at += frame.byteLength;
    }
    // Every read ends before the descriptor is closed, and its number given to another file.
    const failed = (await Promise.allSettled(reads)).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return frames;
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads `length` bytes at file `position` into `into` at `offset`. */
function readSync(
  fd: number,
  into: Buffer,
  offset: number,
  length: number,
  position: number,
): void {
  for (let done = 0; done < length; ) {
    const n = fs.readSync(fd, into, offset + done, length - done, position + done);
    if (n === 0) throw new SharedMemoryError('shared memory segment ended early');
    done += n;
  }
}

/** `readSync` on libuv's thread pool. */
async function readAsync(
  fd: number,
  into: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<void> {
  for (let done = 0; done < length; ) {
    const n = await new Promise<number>((resolve, reject) =>
      fs.read(fd, into, offset + done, length - done, position + done, (e, read) =>
        e ? reject(e) : resolve(read),
      ),
    );
    if (n === 0) throw new SharedMemoryError('shared memory segment ended early');
    done += n;
  }
}

/** `frames` after the first `n` bytes. */
function advance(frames: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < frames.length && n >= frames[i].byteLength) n -= frames[i++].byteLength;
  const rest = frames.slice(i);
  if (n > 0) rest[0] = rest[0].subarray(n);
  return rest;
}

/** 12 hex digits naming a cluster by its key, which every process of it holds. */
function clusterTag(key: string): string {
  return createHash('sha256').update(`tsparallel shared memory ${key}`).digest('hex').slice(0, 12);
}

function segmentNames(): string[] {
  try {
    return fs.readdirSync(SHM_DIR).filter((n) => n.startsWith(PREFIX));
  } catch {
    return [];
  }
}

function unlink(name: string): void {
  try {
    fs.unlinkSync(join(SHM_DIR, name));
  } catch {
    // Gone already, or another user's.
  }
}

/** Renames `from` to `to` in `/dev/shm`; false when `from` is not there. */
function rename(from: string, to: string): boolean {
  try {
    fs.renameSync(join(SHM_DIR, from), join(SHM_DIR, to));
    return true;
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Large values between a client and an engine of one host through files in `/dev/shm`, instead
 * of through the sockets (and the hub) they would otherwise cross as frames.
 *
 * The sender writes a value's frames into a new segment and sends its {@link Segment} in the
 * message's signed metadata with no buffers; the receiver reads the frames back into memory of
 * its own. Buffers are not covered by the signature, the metadata is, so a segment name is only
 * ever taken from a signed message, and then only if it has this cluster's pattern.
 *
 * Who frees a segment: the client, always. Its task arguments it frees when the task ends (an
 * engine that dies mid-task leaves them for the retry); a result it frees once read. Segment
 * names carry the creator's and the reader's pids (`0` when the creator frees it), so that a
 * sweep can remove what a killed process left: see {@link sweepSharedMemory}.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { ProtocolError, SharedMemoryError } from './errors';

/** Total bytes of a value's frames at or above which it travels through shared memory. */
export const SHARED_MEMORY_THRESHOLD = 1024 * 1024;

/** A tmpfs that every process of a host (or container) shares. */
const SHM_DIR = '/dev/shm';
const PREFIX = 'tsparallel-';
/** `tsparallel-<cluster tag>-<creator pid>-<reader pid or 0>-<random>`. */
const SEGMENT_NAME = /^tsparallel-([0-9a-f]{12})-(\d{1,10})-(\d{1,10})-[0-9a-f]{16}$/;

/** A value's frames, laid end to end in one file of `/dev/shm`. */
export interface Segment {
  name: string;
  lengths: number[];
}

/** Where a process takes values back through shared memory: its host and pid. */
export interface Reader {
  host: string;
  pid: number;
}

/** Metadata keys: the segment holding a message's value, and where its answer may go. */
const SEGMENT_KEY = 'shm_segment';
const READER_KEY = 'shm_reader';

/** True when a message's `metadata` says its value is in a segment, not in its buffers. */
export function hasSegment(metadata: Record<string, unknown>): boolean {
  return metadata[SEGMENT_KEY] !== undefined;
}

/** Reads of one frame larger than this are split in parts read in parallel. */
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
      host = `${boot}/${dev}/${fs.readlinkSync('/proc/self/ns/pid')}`;
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

  constructor(key: string, enabled = true) {
    this.host = enabled ? sharedMemoryHost() : undefined;
    this.tag = clusterTag(key);
  }

  /** Metadata for a request whose result may come back through shared memory. */
  readerMetadata(): Record<string, Reader> {
    return this.host === undefined ? {} : { [READER_KEY]: { host: this.host, pid: process.pid } };
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
   * Writes `frames` into a new segment when they are large enough and `peerHost` is this host,
   * and returns the metadata that names it (then the message carries no buffers); undefined when
   * the value goes on the socket, which is also the way out when `/dev/shm` is full.
   * `readerPid` is the process that will free the segment after reading it, 0 for this one.
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
    const name = `${PREFIX}${this.tag}-${process.pid}-${readerPid}-${randomBytes(8).toString('hex')}`;
    const path = join(SHM_DIR, name);
    let fd: number | undefined;
    try {
      fd = fs.openSync(path, CREATE_FLAGS, 0o600);
      let written = 0;
      // writev takes at most IOV_MAX buffers and may write less than asked: go on from there.
      for (let rest = frames.slice(); written < total; ) {
        const n = fs.writevSync(fd, rest.slice(0, 1024));
        if (n === 0) throw new Error('no progress');
        written += n;
        rest = advance(rest, n);
      }
      fs.closeSync(fd);
    } catch {
      if (fd !== undefined) fs.closeSync(fd);
      unlink(name);
      return undefined;
    }
    return { [SEGMENT_KEY]: { name, lengths: frames.map((f) => f.byteLength) } };
  }

  /** The segment a message's `metadata` names, checked; undefined when it names none. */
  segmentOf(metadata: Record<string, unknown>): Segment | undefined {
    const s = metadata[SEGMENT_KEY];
    if (s === undefined) return undefined;
    const { name, lengths } = (s ?? {}) as Partial<Segment>;
    if (typeof name !== 'string' || !this.isOurs(name)) {
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

  /** Removes the segment `metadata` names (one this process wrote or read), if it is ours. */
  free(metadata: Record<string, unknown>): void {
    const name = (metadata[SEGMENT_KEY] as Partial<Segment> | undefined)?.name;
    if (typeof name === 'string' && this.isOurs(name)) unlink(name);
  }

  /** Removes every segment of this cluster, whoever made it: for a cluster that stopped. */
  removeAll(): void {
    for (const name of segmentNames()) {
      if (SEGMENT_NAME.exec(name)?.[1] === this.tag) unlink(name);
    }
  }

  private isOurs(name: string): boolean {
    return SEGMENT_NAME.exec(name)?.[1] === this.tag;
  }
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

/** The segment's frames, each read into an ArrayBuffer of its own; big ones in parallel parts. */
async function readSegment(segment: Segment): Promise<Buffer[]> {
  const { name, lengths } = segment;
  let fd: fs.promises.FileHandle;
  try {
    // O_NOFOLLOW: a name of the right pattern that is a link elsewhere is still refused.
    fd = await fs.promises.open(join(SHM_DIR, name), O_RDONLY | O_NOFOLLOW);
  } catch (e) {
    throw new SharedMemoryError(
      `cannot open shared memory segment ${name}: ${(e as Error).message}. A segment is freed ` +
        'once its value is delivered, so a task resubmitted or a result fetched again from the ' +
        'controller finds it gone; send the value again',
      { cause: e },
    );
  }
  try {
    const stat = await fd.stat();
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
        reads.push(readFully(fd, frame, part, Math.min(READ_PART, frame.byteLength - part), at));
      }
      at += frame.byteLength;
    }
    await Promise.all(reads);
    return frames;
  } finally {
    await fd.close();
  }
}

/** Reads `length` bytes at `position + offset` into `into` at `offset`. */
async function readFully(
  fd: fs.promises.FileHandle,
  into: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<void> {
  for (let done = 0; done < length; ) {
    const { bytesRead } = await fd.read(
      into,
      offset + done,
      length - done,
      position + offset + done,
    );
    if (bytesRead === 0) throw new SharedMemoryError('shared memory segment ended early');
    done += bytesRead;
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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

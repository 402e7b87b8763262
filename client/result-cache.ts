/**
 * The result cache behind `withOptions({ cache })`: a content-addressed directory on disk, one
 * file per result, named by the SHA-256 of the function's source and its arguments' serialized
 * bytes, in two-hex-character subdirectories (`ab/ab12…`). It survives the client, the cluster
 * and the notebook kernel, and any number of processes may share it:
 * - a write goes to a temporary file in the same directory and is then `rename`d into place, so
 *   a reader sees a whole entry or none, and two writers of one key leave one whole entry;
 * - each entry carries the SHA-256 of its payload, checked on every read, so a corrupt or
 *   truncated entry is a miss with a warning (and is removed), never a wrong value;
 * - with `maxBytes`, the least recently used entries (by mtime, touched on every hit) are
 *   removed once the directory holds more than that.
 * Reads and writes are synchronous: a hit is known when `apply` returns, and a result is stored
 * before anyone awaiting its task sees it, so the next identical call hits.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { tsparallelDir } from '../protocol/connection';

/** What `withOptions({ cache })` takes: on (the default directory), a directory, or both and a size. */
export type CacheOption = boolean | string | { dir?: string; maxBytes?: number };

/** What `rc.cacheInfo()` tells of one cache directory. */
export interface CacheInfo {
  /** Results on disk now, from every process that uses the directory. */
  entries: number;
  /** Their size on disk. */
  bytes: number;
  /** This client's lookups of the directory that found a result. */
  hits: number;
  /** This client's lookups that found none (the task ran). */
  misses: number;
  dir: string;
}

/** A cache's directory and its size limit, as `resolveCache` makes them from the option. */
export interface CacheSettings {
  dir: string;
  /** Bytes the directory may hold before the least recently used entries go. */
  maxBytes: number;
}

/** `$TSPARALLEL_DIR/cache`, where `cache: true` keeps results. */
export function defaultCacheDir(): string {
  return join(tsparallelDir(), 'cache');
}

/** The cache directory `dir` names, or the default one. */
export function cacheDir(dir?: string): string {
  return dir === undefined ? defaultCacheDir() : resolve(dir);
}

/** The directory and size limit `option` stands for; `false` stands for no cache. */
export function resolveCache(option: CacheOption): CacheSettings | undefined {
  if (option === false) return undefined;
  if (option === true || typeof option === 'string') {
    return { dir: cacheDir(option === true ? undefined : option), maxBytes: Infinity };
  }
  return { dir: cacheDir(option.dir), maxBytes: option.maxBytes ?? Infinity };
}

/**
 * The key of a call: SHA-256 over the function's source and the frames of its arguments, each
 * length-prefixed, so that no two different calls can spell the same bytes.
 */
export function cacheKey(source: string, argFrames: readonly Buffer[]): string {
  const hash = createHash('sha256');
  const length = (n: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
  };
  const src = Buffer.from(source, 'utf8');
  hash.update(length(src.length)).update(src).update(length(argFrames.length));
  for (const f of argFrames) hash.update(length(f.length)).update(f);
  return hash.digest('hex');
}

/** An entry's first bytes, its format's version in the last one. */
const MAGIC = Buffer.from('TSPCACH1');
const CHECKSUM_BYTES = 32;
const HEADER_BYTES = MAGIC.length + CHECKSUM_BYTES;
/** This process among the cache's writers, also on other hosts sharing the directory. */
const WRITER = `${process.pid}-${randomBytes(4).toString('hex')}`;
/** Temporary files of writers that died before renaming are removed after this long. */
const STALE_TEMP_MS = 60 * 60 * 1000;

/** One cache directory, with this client's lookup counts; see the file's comment. */
export class ResultCache {
  private hits = 0;
  private misses = 0;
  /** Numbers this process's temporary files. */
  private writes = 0;
  /** Bytes on disk as last scanned plus what this process wrote since; checked against `maxBytes`. */
  private estimate: number | undefined;

  constructor(readonly dir: string) {}

  /**
   * The frames stored under `key`, or undefined (a miss). A corrupt or truncated entry is a
   * miss: it is reported with `process.emitWarning` and removed, so the rerun stores it anew.
   */
  get(key: string): Buffer[] | undefined {
    const file = this.path(key);
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch {
      this.misses++;
      return undefined;
    }
    const frames = decodeEntry(bytes);
    if (frames === undefined) {
      process.emitWarning(
        `tsparallel cache: entry ${file} is corrupt or truncated (${bytes.length} bytes); ` +
          'it is removed and its task runs again',
        { code: 'TSPARALLEL_CACHE_CORRUPT' },
      );
      rmSync(file, { force: true });
      this.misses++;
      return undefined;
    }
    this.hits++;
    // The hit makes the entry the most recently used one; the value read is whole even if
    // another process evicted the entry meanwhile.
    markUsed(file);
    return frames;
  }

  /** Stores `frames` under `key`, atomically; then evicts entries past `maxBytes`. */
  put(key: string, frames: readonly Buffer[], maxBytes = Infinity): void {
    const file = this.path(key);
    const dir = join(file, '..');
    const temp = join(dir, `.${key}.${WRITER}.${++this.writes}.tmp`);
    const entry = encodeEntry(frames);
    try {
      try {
        writeFileSync(temp, entry);
      } catch (e) {
        // The subdirectory's first entry (or the directory's): made only then, as it costs.
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        mkdirSync(dir, { recursive: true });
        writeFileSync(temp, entry);
      }
      renameSync(temp, file);
    } catch (e) {
      rmSync(temp, { force: true });
      throw e;
    }
    markUsed(file);
    if (maxBytes === Infinity) return;
    this.estimate = (this.estimate ?? this.scan().bytes) + entry.length;
    if (this.estimate > maxBytes) this.evict(maxBytes);
  }

  /** Entries and bytes on disk now, and this client's hits and misses. */
  info(): CacheInfo {
    const { entries, bytes } = this.scan();
    return { entries: entries.length, bytes, hits: this.hits, misses: this.misses, dir: this.dir };
  }

  /** Removes every entry (the counts of this client's lookups stay). */
  clear(): void {
    for (const sub of subdirs(this.dir))
      rmSync(join(this.dir, sub), { recursive: true, force: true });
    this.estimate = 0;
  }

  /** Removes the least recently used entries until the directory holds at most `maxBytes`. */
  private evict(maxBytes: number): void {
    const { entries, bytes } = this.scan();
    entries.sort((a, b) => a.mtime - b.mtime);
    let total = bytes;
    for (const e of entries) {
      if (total <= maxBytes) break;
      try {
        unlinkSync(e.path);
      } catch {
        // Another process evicted it first.
      }
      total -= e.size;
    }
    this.estimate = total;
  }

  /** Every entry with its size and mtime; removes writers' temporary files left long ago. */
  private scan(): { entries: { path: string; size: number; mtime: number }[]; bytes: number } {
    const entries: { path: string; size: number; mtime: number }[] = [];
    let bytes = 0;
    const now = Date.now();
    for (const sub of subdirs(this.dir)) {
      let names: string[];
      try {
        names = readdirSync(join(this.dir, sub));
      } catch {
        continue;
      }
      for (const name of names) {
        const path = join(this.dir, sub, name);
        let s: { size: number; mtimeMs: number };
        try {
          s = statSync(path);
        } catch {
          continue; // removed while scanning
        }
        if (name.startsWith('.')) {
          if (now - s.mtimeMs > STALE_TEMP_MS) rmSync(path, { force: true });
          continue;
        }
        entries.push({ path, size: s.size, mtime: s.mtimeMs });
        bytes += s.size;
      }
    }
    this.estimate = bytes;
    return { entries, bytes };
  }

  private path(key: string): string {
    return join(this.dir, key.slice(0, 2), key);
  }
}

/** The two-hex-character subdirectories of a cache directory (none when it does not exist). */
function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => /^[0-9a-f]{2}$/.test(n));
  } catch {
    return [];
  }
}

/** `MAGIC`, SHA-256 of the payload, payload: frame count, each frame's length, the frames. */
function encodeEntry(frames: readonly Buffer[]): Buffer {
  const lengths = Buffer.alloc(4 + 4 * frames.length);
  lengths.writeUInt32LE(frames.length, 0);
  frames.forEach((f, i) => lengths.writeUInt32LE(f.length, 4 + 4 * i));
  const checksum = createHash('sha256').update(lengths);
  for (const f of frames) checksum.update(f);
  return Buffer.concat([MAGIC, checksum.digest(), lengths, ...frames]);
}

/** The frames of an entry, or undefined when it is not whole and exactly as written. */
function decodeEntry(bytes: Buffer): Buffer[] | undefined {
  if (bytes.length < HEADER_BYTES + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    return undefined;
  }
  const payload = bytes.subarray(HEADER_BYTES);
  const expected = bytes.subarray(MAGIC.length, HEADER_BYTES);
  if (!createHash('sha256').update(payload).digest().equals(expected)) return undefined;
  const count = payload.readUInt32LE(0);
  let at = 4 + 4 * count;
  if (at > payload.length) return undefined;
  const frames: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const n = payload.readUInt32LE(4 + 4 * i);
    frames.push(payload.subarray(at, at + n));
    at += n;
  }
  return at === payload.length ? frames : undefined;
}

/**
 * Marks cache file `file` used now, to the microsecond: the times the file system sets itself are
 * as coarse as the kernel's clock tick (4 ms here), and entries written or hit within one tick
 * must still be evicted least recently used first.
 */
function markUsed(file: string): void {
  const now = (performance.timeOrigin + performance.now()) / 1000;
  try {
    utimesSync(file, now, now);
  } catch {
    // Evicted by another process meanwhile: nothing to mark.
  }
}

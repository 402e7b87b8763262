import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProtocolError, SharedMemoryError } from '../../protocol/errors';
import {
  SHARED_MEMORY_THRESHOLD,
  SharedMemory,
  sharedMemoryHost,
  sweepSharedMemory,
} from '../../protocol/shared-memory';

const SHM = '/dev/shm';

/** The segment name `metadata` carries. */
const nameIn = (metadata: Record<string, unknown>): string =>
  (metadata.shm_segment as { name: string }).name;

/** The pid of a process that has ended. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid as number;
}

describe('shared memory segments', function () {
  const host = sharedMemoryHost();
  const shm = new SharedMemory('a key');
  before(function () {
    if (host === undefined) this.skip(); // no /dev/shm here
  });

  it('gives back the frames byte-exact, each in an ArrayBuffer of its own', async () => {
    const frames = [Buffer.from('body'), Buffer.alloc(SHARED_MEMORY_THRESHOLD, 7), Buffer.alloc(0)];
    const metadata = shm.write(frames, host) as Record<string, unknown>;
    const back = await shm.read([], metadata);
    assert.deepEqual(back, frames);
    for (const f of back) assert.equal(f.buffer.byteLength, f.byteLength);
    shm.release(metadata);
    shm.close();
    assert.equal(existsSync(join(SHM, nameIn(metadata))), false);
  });

  it('writes the next value into a segment freed before, not a new one', async () => {
    const big = Buffer.alloc(SHARED_MEMORY_THRESHOLD, 1);
    const first = shm.write([big], host) as Record<string, unknown>;
    const busy = shm.write([big], host) as Record<string, unknown>;
    assert.notEqual(nameIn(busy), nameIn(first), 'a segment in use is not written over');
    shm.release(first);
    const again = shm.write([Buffer.alloc(SHARED_MEMORY_THRESHOLD, 2)], host) as Record<
      string,
      unknown
    >;
    assert.equal(nameIn(again), nameIn(first));
    assert.deepEqual(await shm.read([], again), [Buffer.alloc(SHARED_MEMORY_THRESHOLD, 2)]);
    // A result's reader gives the segment back under reader 0; the writer takes it up from there.
    const reader = process.pid + 1;
    const lent = shm.write([big], host, reader) as Record<string, unknown>;
    assert.match(nameIn(lent), new RegExp(`-${process.pid}-${reader}-`));
    shm.release(again);
    shm.release(busy);
    renameSync(join(SHM, nameIn(lent)), join(SHM, nameIn(lent).replace(`-${reader}-`, '-0-')));
    const [a, b, c] = [0, 0, 0].map(
      () => shm.write([big], host, reader) as Record<string, unknown>,
    );
    // All three taken up again: the two this process freed, and the one given back.
    const id = (m: Record<string, unknown>): string => nameIn(m).slice(-16);
    assert.deepEqual([a, b, c].map(id).sort(), [lent, again, busy].map(id).sort());
    for (const m of [a, b, c]) unlinkSync(join(SHM, nameIn(m)));
    shm.close();
  });

  it('keeps small values, other hosts and a turned-off side on the socket', () => {
    assert.equal(shm.write([Buffer.alloc(SHARED_MEMORY_THRESHOLD - 1)], host), undefined);
    assert.equal(shm.write([Buffer.alloc(SHARED_MEMORY_THRESHOLD)], 'another host'), undefined);
    const off = new SharedMemory('a key', false);
    assert.equal(off.write([Buffer.alloc(SHARED_MEMORY_THRESHOLD)], host), undefined);
    assert.deepEqual(off.readerMetadata(host), {});
    assert.deepEqual(shm.readerMetadata('another host'), {});
    assert.deepEqual(shm.readerMetadata(host), { shm_reader: { host, pid: process.pid } });
  });

  it("refuses names outside this cluster's pattern before opening anything", async () => {
    const theirs = new SharedMemory('another key');
    const metadata = theirs.write([Buffer.alloc(SHARED_MEMORY_THRESHOLD)], host) as Record<
      string,
      unknown
    >;
    try {
      for (const name of [nameIn(metadata), '/etc/passwd', '../../etc/passwd', 'tsparallel-']) {
        await assert.rejects(shm.read([], { shm_segment: { name, lengths: [1] } }), {
          name: ProtocolError.name,
          message: /refusing to read shared memory/,
        });
      }
    } finally {
      theirs.release(metadata);
      theirs.close();
    }
  });

  it('refuses a link with a segment name, and a file shorter than its frames', async () => {
    const real = shm.write([Buffer.alloc(SHARED_MEMORY_THRESHOLD)], host) as Record<
      string,
      unknown
    >;
    const name = nameIn(real).replace(/[0-9a-f]{16}$/, '0'.repeat(16));
    symlinkSync('/etc/hostname', join(SHM, name));
    try {
      await assert.rejects(
        shm.read([], { shm_segment: { name, lengths: [1] } }),
        SharedMemoryError,
      );
      const long = { shm_segment: { name: nameIn(real), lengths: [SHARED_MEMORY_THRESHOLD + 1] } };
      await assert.rejects(shm.read([], long), SharedMemoryError);
    } finally {
      unlinkSync(join(SHM, name));
      shm.release(real);
      shm.close();
    }
  });

  it('sweeps segments no live process will read or free, and only those', () => {
    const dead = deadPid();
    const names = {
      deadCreator: `tsparallel-${'a'.repeat(12)}-${dead}-0-${'1'.repeat(16)}`,
      deadReader: `tsparallel-${'a'.repeat(12)}-${process.pid}-${dead}-${'2'.repeat(16)}`,
      liveCreator: `tsparallel-${'a'.repeat(12)}-${process.pid}-0-${'3'.repeat(16)}`,
      liveReader: `tsparallel-${'a'.repeat(12)}-${dead}-${process.pid}-${'4'.repeat(16)}`,
    };
    for (const n of Object.values(names)) writeFileSync(join(SHM, n), '');
    sweepSharedMemory();
    const left = Object.entries(names)
      .filter(([, n]) => existsSync(join(SHM, n)))
      .map(([k]) => k);
    for (const n of Object.values(names)) if (existsSync(join(SHM, n))) unlinkSync(join(SHM, n));
    assert.deepEqual(left, ['liveCreator', 'liveReader']);
  });
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
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
    shm.free(metadata);
    assert.equal(existsSync(join(SHM, nameIn(metadata))), false);
  });

  it('keeps small values, other hosts and a turned-off side on the socket', () => {
    assert.equal(shm.write([Buffer.alloc(SHARED_MEMORY_THRESHOLD - 1)], host), undefined);
    assert.equal(shm.write([Buffer.alloc(SHARED_MEMORY_THRESHOLD)], 'another host'), undefined);
    const off = new SharedMemory('a key', false);
    assert.equal(off.write([Buffer.alloc(SHARED_MEMORY_THRESHOLD)], host), undefined);
    assert.deepEqual(off.readerMetadata(), {});
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
      theirs.free(metadata);
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
      shm.free(real);
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

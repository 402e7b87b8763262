import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as zmq from 'zeromq';
import { connectTo } from '../../protocol/channel';

/** Nothing listens there: a connect only hands the address to ZeroMQ's I/O thread. */
const NOWHERE = 'tcp://127.0.0.1:9';

describe('connectTo', () => {
  it('connects while signals keep arriving, where a plain connect fails with EINTR', async () => {
    const ignore = (): void => {};
    process.on('SIGUSR2', ignore);
    // Signals this process as fast as a shell can (as child processes ending do, with SIGCHLD)
    // until `stop` exists. It says when it stopped on stdout: its exit may go unnoticed, as
    // Node's own signal handling drops signals in such a flood.
    const stop = join(mkdtempSync(join(tmpdir(), 'tsp-signals-')), 'stop');
    const sender = spawn(
      'bash',
      ['-c', `while [ ! -e ${stop} ] && kill -USR2 ${process.pid}; do :; done; echo stopped`],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const stopped = once(sender.stdout, 'data');
    try {
      await new Promise((r) => setTimeout(r, 100));
      let interrupted = 0;
      for (let i = 0; i < 5000 && (interrupted === 0 || i < 500); i++) {
        const plain = new zmq.Dealer({ linger: 0 });
        try {
          plain.connect(NOWHERE);
        } catch (e) {
          assert.equal((e as { code?: string }).code, 'EINTR');
          interrupted++;
        }
        plain.close();
        const retried = new zmq.Dealer({ linger: 0 });
        connectTo(retried, NOWHERE);
        retried.close();
      }
      assert.ok(interrupted > 0, 'no signal interrupted a plain connect: the test showed nothing');
    } finally {
      writeFileSync(stop, '');
      await stopped;
      rmSync(dirname(stop), { recursive: true });
      process.off('SIGUSR2', ignore);
    }
  });
});

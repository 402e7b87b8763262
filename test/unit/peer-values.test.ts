import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { PeerValues } from '../../engine/kept-values';
import { DependencyError } from '../../protocol/errors';
import { Session } from '../../protocol/session';
import { SharedMemory } from '../../protocol/shared-memory';

/** A TCP port on loopback that nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('fetching a value kept on another engine', () => {
  it('fails with a DependencyError naming the address when that engine cannot be reached', async () => {
    const peers = new PeerValues(new Session('k'), new SharedMemory('k', false), () => {}, 200);
    const address = `tcp://127.0.0.1:${await deadPort()}`;
    try {
      await assert.rejects(peers.fetch('task-1', 4, { address }), (e: unknown) => {
        assert.ok(e instanceof DependencyError);
        assert.match(e.message, /engine 4 keeps the value of task task-1/);
        assert.match(e.message, new RegExp(`could not connect to its direct socket at ${address}`));
        return true;
      });
    } finally {
      peers.close();
    }
  });

  it('fails at once when that engine has no direct socket', async () => {
    const peers = new PeerValues(new Session('k'), new SharedMemory('k', false), () => {});
    await assert.rejects(peers.fetch('task-2', 5, undefined), /has no direct socket/);
  });
});

import assert from 'node:assert/strict';
import { Client } from '../../client/client';
import { figures, useCluster } from './fixture';

/** Tasks each of the four clients submits: 100,000 in all. */
const PER_CLIENT = 25_000;

describe('several clients sharing one cluster under load', () => {
  // A deeper engine queue keeps both engines busy while the clients' replies travel; a long
  // heartbeat deadline, as a load test on a shared machine may starve an engine's beats.
  const t = useCluster(2, { hwm: 16, heartbeatPeriod: 500, heartbeatDeadline: 30_000 });

  it('returns exactly one result for each of 100,000 tiny tasks from 4 clients, while a fifth leaves mid-way', async function () {
    this.timeout(15 * 60_000);
    const connect = (): Promise<Client> => Client.connect({ connectionFile: t.cluster.clientFile });
    const clients = await Promise.all([connect(), connect(), connect(), connect()]);
    const leaver = await connect();

    // The fifth client submits, waits for a few results, and closes with the rest in flight.
    const leaving = leaver.loadBalancedView();
    const abandoned = Array.from({ length: 2000 }, (_, i) => leaving.apply((x: number) => x, i));
    const left = (async () => {
      await Promise.all(abandoned.slice(0, 50).map((ar) => ar.get()));
      leaver.close();
    })();

    const counts = await Promise.all(
      clients.map(async (rc, c) => {
        const lv = rc.loadBalancedView();
        const results = Array.from({ length: PER_CLIENT }, (_, i) =>
          lv.apply((k: number, x: number) => [k, x * 2], c, i),
        );
        figures.tasksSubmitted += results.length;
        const seen = new Set<number>();
        for (const [k, doubled] of await Promise.all(results.map((ar) => ar.get()))) {
          assert.equal(k, c, 'a result reached the client that asked for it');
          seen.add(doubled / 2);
        }
        return seen.size;
      }),
    );
    await left;
    const lost = 4 * PER_CLIENT - counts.reduce((a, b) => a + b, 0);
    figures.tasksLost += lost;
    assert.equal(lost, 0);
    assert.deepEqual(counts, [PER_CLIENT, PER_CLIENT, PER_CLIENT, PER_CLIENT]);
    // The cluster serves on, and nothing is left waiting for an engine.
    assert.equal(await clients[0].loadBalancedView().apply(() => 'next'), 'next');
    assert.equal((await clients[0].queueStatus()).unassigned, 0);
    for (const rc of clients) rc.close();
  });
});

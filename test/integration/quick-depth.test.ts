import assert from 'node:assert/strict';
import { useCluster } from './fixture';
import type { Client } from '../../client/client';

/** The deepest any engine's queue got while `tasks` ran, from queue status polled until they end. */
async function deepest(rc: Client, tasks: Promise<unknown>[]): Promise<number> {
  let done = false;
  const all = Promise.all(tasks).finally(() => (done = true));
  let depth = 0;
  while (!done) {
    const status = await rc.queueStatus();
    for (const id of rc.ids) depth = Math.max(depth, status[id]?.queue ?? 0);
  }
  await all;
  return depth;
}

describe('quick depth (tiny load-balanced tasks queue beyond hwm)', () => {
  const t = useCluster(2, { hwm: 1 });

  it('queues a stream of tasks each running under 1 ms beyond hwm on real engines', async () => {
    const lv = t.rc.loadBalancedView();
    const tiny = (x: number): number => x + 1;
    // Each engine runs it once, and tells the hub it ran quick.
    await Promise.all([lv.apply(tiny, 0), lv.apply(tiny, 1)]);
    const tasks = Array.from({ length: 3000 }, (_, i) => lv.apply(tiny, i).get());
    assert.ok((await deepest(t.rc, tasks)) > 1, 'no engine held more than hwm tasks');
  });

  it('keeps a stream of slow tasks at hwm', async () => {
    const lv = t.rc.loadBalancedView();
    const slow = (ms: number): Promise<number> => new Promise((r) => setTimeout(() => r(ms), ms));
    await Promise.all([lv.apply(slow, 20), lv.apply(slow, 20)]);
    const tasks = Array.from({ length: 12 }, () => lv.apply(slow, 50).get());
    assert.equal(await deepest(t.rc, tasks), 1);
  });
});

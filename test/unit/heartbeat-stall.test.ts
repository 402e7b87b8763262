import assert from 'node:assert/strict';
import { HeartMonitor } from '../../controller/heartbeat';

/** Resolves after the monitor's timer has had `n` chances to run. */
const ticks = (n: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, n * 60));

describe('HeartMonitor', () => {
  it('does not count time the controller itself was stalled against an engine', async () => {
    const dead: number[] = [];
    const monitor = new HeartMonitor(100, 300, (id) => dead.push(id));
    monitor.add(7);
    monitor.start();
    // The controller's own thread is blocked for longer than the deadline (a huge message).
    const until = performance.now() + 800;
    while (performance.now() < until);
    await ticks(2); // the late check runs before the engine's queued beat is read ...
    monitor.beat(7); // ... which arrives now
    await ticks(2);
    assert.deepEqual(dead, []);
    monitor.stop();
  });

  it('still declares an engine dead that stays silent past the deadline', async () => {
    const dead: number[] = [];
    const monitor = new HeartMonitor(20, 100, (id) => dead.push(id));
    monitor.add(3);
    monitor.start();
    while (dead.length === 0) await ticks(1);
    assert.deepEqual(dead, [3]);
    monitor.stop();
  });
});

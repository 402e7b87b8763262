import assert from 'node:assert/strict';
import { HeartMonitor } from '../../controller/heartbeat';
import { ManualClock } from './manual-clock';

describe('HeartMonitor', () => {
  it('does not count time the controller itself was stalled against an engine', () => {
    const clock = new ManualClock();
    const dead: number[] = [];
    const monitor = new HeartMonitor(100, 300, (ids) => dead.push(...ids), clock);
    monitor.add(7);
    monitor.start();
    // The controller's own thread is blocked for longer than the deadline (a huge message).
    clock.stall(800);
    clock.advance(50); // the late check runs before the engine's queued beat is read ...
    monitor.beat(7); // ... which arrives now
    clock.advance(200);
    assert.deepEqual(dead, []);
    monitor.stop();
  });

  it('declares an engine dead that stays silent past the deadline, not before', () => {
    const clock = new ManualClock();
    const dead: number[] = [];
    const monitor = new HeartMonitor(20, 100, (ids) => dead.push(...ids), clock);
    monitor.add(3);
    monitor.add(4);
    monitor.start();
    for (let t = 0; t < 200; t += 10) {
      monitor.beat(4);
      clock.advance(10);
      if (t < 100) assert.deepEqual(dead, [], `dead after ${t + 10} ms`);
    }
    assert.deepEqual(dead, [3]);
    monitor.stop();
  });

  it('gives a new engine its grace before its first beat', () => {
    const clock = new ManualClock();
    const dead: number[] = [];
    const monitor = new HeartMonitor(20, 100, (ids) => dead.push(...ids), clock);
    monitor.add(5, 1000);
    monitor.start();
    clock.advance(1000);
    assert.deepEqual(dead, []);
    clock.advance(200);
    assert.deepEqual(dead, [5]);
    monitor.stop();
  });
});

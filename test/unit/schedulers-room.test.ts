import assert from 'node:assert/strict';
import fc from 'fast-check';

import { EngineRegistry, type RegisteredEngine } from '../../controller/engine-registry';
import {
  newRoom,
  schemeNames,
  type EngineLoad,
  type Room,
  type Scheme,
} from '../../controller/schedulers/load-balanced';

/** An engine whose load the test changes by hand, as `RegisteredEngine.take` and `release` do. */
interface Engine extends EngineLoad {
  load: number;
  lastAssigned: number;
  live: boolean;
}

/** What leastload and lru must pick, by a pass over every engine with room (the old way). */
const oracle: Partial<Record<Scheme, (room: Engine[]) => Engine | undefined>> = {
  leastload: (room) =>
    room.reduce<Engine | undefined>(
      (best, e) =>
        !best ||
        e.load < best.load ||
        (e.load === best.load &&
          (e.lastAssigned < best.lastAssigned ||
            (e.lastAssigned === best.lastAssigned && e.id < best.id)))
          ? e
          : best,
      undefined,
    ),
  lru: (room) =>
    room.reduce<Engine | undefined>(
      (best, e) =>
        !best ||
        e.lastAssigned < best.lastAssigned ||
        (e.lastAssigned === best.lastAssigned && e.id < best.id)
          ? e
          : best,
      undefined,
    ),
};

/** A step of the scheduler's life: an engine joins, is given a task, finishes one, or dies. */
type Step =
  | { kind: 'join' }
  | { kind: 'take'; pick: boolean; which: number }
  | { kind: 'release'; which: number }
  | { kind: 'drop'; which: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.constant<Step>({ kind: 'join' }),
  fc.record({ kind: fc.constant('take' as const), pick: fc.boolean(), which: fc.nat() }),
  fc.record({ kind: fc.constant('release' as const), which: fc.nat() }),
  fc.record({ kind: fc.constant('drop' as const), which: fc.nat() }),
);

/**
 * Runs `steps` against a room kept as the task queue keeps it (set while live with room, deleted
 * otherwise), calling `check` after each with the engines that have room.
 */
function replay(
  scheme: Scheme,
  hwm: number,
  steps: Step[],
  check: (room: Room<Engine>, withRoom: Engine[]) => void,
): void {
  const room = newRoom<Engine>(scheme);
  const engines: Engine[] = [];
  let order = 0;
  const changed = (e: Engine): void => (e.live && e.load < hwm ? room.set(e) : room.delete(e));
  for (const s of steps) {
    const live = engines.filter((e) => e.live);
    if (s.kind === 'join') {
      const e: Engine = { id: engines.length, load: 0, lastAssigned: 0, live: true };
      engines.push(e);
      changed(e);
    } else if (live.length > 0) {
      // A take goes where the room says (as the queue's), or to any live engine (a direct task).
      const e = s.kind === 'take' && s.pick ? room.pick() : live[s.which % live.length];
      if (e === undefined) continue;
      if (s.kind === 'take') {
        e.load++;
        e.lastAssigned = ++order;
      } else if (s.kind === 'release') {
        if (e.load === 0) continue;
        e.load--;
      } else {
        e.live = false;
      }
      changed(e);
    }
    check(
      room,
      engines.filter((e) => e.live && e.load < hwm),
    );
  }
}

describe('scheduler rooms', () => {
  for (const scheme of ['leastload', 'lru'] as const) {
    it(`${scheme} picks what a pass over every engine would, through any changes`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 4 }),
          fc.array(step, { maxLength: 300 }),
          (hwm, steps) =>
            replay(scheme, hwm, steps, (room, withRoom) => {
              assert.equal(room.size, withRoom.length);
              assert.equal(room.pick(), oracle[scheme]?.(withRoom));
            }),
        ),
        { numRuns: 200 },
      );
    });
  }

  for (const scheme of schemeNames) {
    it(`${scheme} only picks an engine that has room, and always one when some has`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 3 }),
          fc.array(step, { maxLength: 200 }),
          (hwm, steps) =>
            replay(scheme, hwm, steps, (room, withRoom) => {
              assert.equal(room.size, withRoom.length);
              const picked = room.pick();
              if (withRoom.length === 0) assert.equal(picked, undefined);
              else
                assert.ok(picked && withRoom.includes(picked), `picked ${JSON.stringify(picked)}`);
            }),
        ),
        { numRuns: 100 },
      );
    });
  }

  it('random spreads picks over every engine with room', () => {
    const room = newRoom<Engine>('random');
    const es = [0, 1, 2, 3].map((id) => ({ id, load: 0, lastAssigned: 0, live: true }));
    for (const e of es) room.set(e);
    room.delete(es[2]);
    const counts = new Map<number, number>();
    for (let i = 0; i < 3000; i++) {
      const id = (room.pick() as Engine).id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    assert.deepEqual([...counts.keys()].sort(), [0, 1, 3]);
    for (const n of counts.values()) assert.ok(n > 800 && n < 1200, `picked ${n} of 3000 times`);
  });

  it('weighted picks engines in proportion to 1 / (1 + load)', () => {
    const room = newRoom<Engine>('weighted');
    const idle = { id: 0, load: 0, lastAssigned: 0, live: true };
    const busy = { id: 1, load: 0, lastAssigned: 0, live: true };
    room.set(idle);
    room.set(busy);
    busy.load = 3; // filed again under its new load, as a take does
    room.set(busy);
    let idlePicks = 0;
    const n = 4000;
    for (let i = 0; i < n; i++) if (room.pick() === idle) idlePicks++;
    // Weights 1 and 1/4: the idle engine is picked 80% of the time.
    assert.ok(idlePicks > 0.75 * n && idlePicks < 0.85 * n, `idle picked ${idlePicks} of ${n}`);
  });

  it('follows a registry: engines joining, taking and finishing tasks, and dropped', () => {
    const registry = new EngineRegistry();
    const hwm = 2;
    const room = newRoom<RegisteredEngine>('leastload');
    registry.watch((e, live) => (live && e.load < hwm ? room.set(e) : room.delete(e)));
    let nextId = 0;
    const join = (n: number): RegisteredEngine[] =>
      Array.from({ length: n }, (_, i) => {
        const identity = Buffer.from(`engine-${nextId}-${i}`);
        registry.register(
          [identity],
          { uuid: `u${i}`, pid: 1, hostname: 'h' },
          () => nextId++,
          new Date().toISOString(),
        );
        return registry.join(identity) as RegisteredEngine;
      });
    const engines = join(1000);
    // A thousand tasks: each engine once, in the order they joined.
    for (let t = 0; t < 1000; t++) {
      const e = room.pick() as RegisteredEngine;
      assert.equal(e.id, t);
      registry.assign(e, `task-${t}`, 'balanced');
    }
    // Every engine holds one; the next picks go round again, least recently given first.
    assert.equal(room.pick(), engines[0]);
    engines[500].release('task-500', true);
    assert.equal(room.pick(), engines[500]);
    registry.drop(500, 'test');
    assert.equal(room.pick(), engines[0]);
    // Full engines leave the room; a finished task brings one back.
    for (const e of engines) if (e.id !== 500) registry.assign(e, `more-${e.id}`, 'balanced');
    assert.equal(room.size, 0);
    engines[7].release('task-7', true);
    assert.equal(room.pick(), engines[7]);
    assert.equal(room.size, 1);
    // An engine joining later has never been given a task: it goes first.
    const [late] = join(1);
    assert.equal(room.pick(), late);
  });
});

import assert from 'node:assert/strict';

import { schemeNames, schemes, type EngineLoad } from '../../controller/schedulers/load-balanced';

const engine = (id: number, load: number, lastAssigned: number): EngineLoad => ({
  id,
  load,
  lastAssigned,
});

describe('load-balancing schemes', () => {
  it('are all listed in schemeNames', () => {
    assert.deepEqual([...schemeNames].sort(), Object.keys(schemes).sort());
  });

  describe('leastload', () => {
    it('picks the engine with the lowest load', () => {
      const cs = [engine(0, 3, 1), engine(1, 1, 9), engine(2, 2, 0)];
      assert.equal(schemes.leastload(cs).id, 1);
    });

    it('breaks ties by the engine that waited longest', () => {
      const cs = [engine(0, 1, 7), engine(1, 0, 5), engine(2, 0, 2), engine(3, 0, 4)];
      assert.equal(schemes.leastload(cs).id, 2);
    });

    it('lets idle engines that were never used take turns in order', () => {
      const cs = [engine(4, 0, 0), engine(5, 0, 0), engine(6, 0, 3)];
      assert.equal(schemes.leastload(cs).id, 4);
    });

    it('returns the only candidate', () => {
      const only = engine(9, 5, 5);
      assert.equal(schemes.leastload([only]), only);
    });
  });

  describe('lru', () => {
    it('picks the engine assigned least recently, whatever its load', () => {
      const cs = [engine(0, 0, 8), engine(1, 4, 2), engine(2, 0, 6)];
      assert.equal(schemes.lru(cs).id, 1);
    });

    it('prefers an engine never given a task', () => {
      const cs = [engine(0, 0, 3), engine(1, 2, 0), engine(2, 0, 1)];
      assert.equal(schemes.lru(cs).id, 1);
    });
  });

  for (const name of schemeNames) {
    it(`${name} only ever returns one of the candidates`, () => {
      const cs = [engine(3, 0, 2), engine(7, 1, 0), engine(11, 4, 1)];
      const seen = new Set<number>();
      for (let i = 0; i < 300; i++) {
        const picked = schemes[name](cs);
        assert.ok(cs.includes(picked), `${name} returned ${JSON.stringify(picked)}`);
        seen.add(picked.id);
      }
      // The random schemes must spread work; a deterministic one always picks the same engine.
      if (name === 'random' || name === 'weighted') assert.equal(seen.size, 3);
    });
  }

  it('weighted favours an idle engine over a busy one', () => {
    const idle = engine(0, 0, 0);
    const busy = engine(1, 5, 0);
    let idlePicks = 0;
    const n = 2000;
    for (let i = 0; i < n; i++) if (schemes.weighted([busy, idle]) === idle) idlePicks++;
    assert.ok(idlePicks > 0.7 * n, `idle engine picked ${idlePicks} of ${n} times`);
    assert.ok(idlePicks < n, 'the busy engine was never picked');
  });

  it('random picks engines about equally', () => {
    const cs = [engine(0, 0, 0), engine(1, 9, 0)];
    let first = 0;
    const n = 2000;
    for (let i = 0; i < n; i++) if (schemes.random(cs) === cs[0]) first++;
    assert.ok(first > 0.35 * n && first < 0.65 * n, `first engine picked ${first} of ${n} times`);
  });
});

/** What an engine's held tasks occupy of its resources, as the scheduler and `queueStatus` see it. */
import assert from 'node:assert/strict';
import { EngineRegistry } from '../../controller/engine-registry';

describe("an engine's resources in use", () => {
  function engineHolding(resources: Record<string, number>) {
    const registry = new EngineRegistry();
    const { engine } = registry.register(
      [Buffer.from('e0')],
      { uuid: 'e0', pid: 1, hostname: 'h', resources },
      () => 0,
      '',
    );
    return { registry, engine };
  }

  it('counts what each task asks until it ends, fractions included', () => {
    const { registry, engine } = engineHolding({ gpu: 1, mem: 8e9 });
    assert.deepEqual(engine.resources, { cpu: 1, gpu: 1, mem: 8e9 });
    registry.assign(engine, 'a', 'balanced', { gpu: 0.1, mem: 2e9 });
    registry.assign(engine, 'b', 'balanced', { gpu: 0.2 });
    registry.assign(engine, 'c', 'named');
    assert.deepEqual(engine.counts.resources_in_use, { gpu: 0.1 + 0.2, mem: 2e9 });
    assert.deepEqual(engine.notFree({ gpu: 0.7 }), []);
    assert.deepEqual(engine.notFree({ gpu: 0.8, mem: 7e9, tpu: 1 }), ['gpu', 'mem', 'tpu']);
    engine.release('a', true);
    engine.release('b', false);
    // 0.1 + 0.2 - 0.1 - 0.2 is not 0 in floating point; the engine is free all the same.
    assert.equal(engine.counts.resources_in_use, undefined);
    assert.deepEqual(engine.notFree({ gpu: 1, cpu: 1, mem: 8e9 }), []);
  });

  it('holds one CPU for an engine that declares nothing', () => {
    const registry = new EngineRegistry();
    const { engine } = registry.register(
      [Buffer.from('e1')],
      { uuid: 'e1', pid: 1, hostname: 'h' },
      () => 1,
      '',
    );
    assert.deepEqual(engine.info.resources, { cpu: 1 });
  });
});

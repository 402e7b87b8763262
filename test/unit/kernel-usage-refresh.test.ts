import { strict as assert } from 'node:assert';
import type { KernelState, PanelEngine } from '../../kernel-ext/comm-messages';
import { usageMoves } from '../../kernel-ext/panel';

const engine = (id: number, status: PanelEngine['status'], cpu = 0): PanelEngine => ({
  id,
  host: 'localhost',
  pid: 1000 + id,
  status,
  queue: status === 'busy' ? 1 : 0,
  completed: 0,
  currentTask: null,
  replacedBy: null,
  cpu,
  memory: 0,
  resources: { cpu: 1 },
  resourcesInUse: {},
});

const state = (...engines: PanelEngine[]): KernelState => ({
  time: new Date().toISOString(),
  cluster: {
    controller: 'tcp://127.0.0.1:5555',
    launcher: 'local',
    started: null,
    uptime: 1,
  },
  engines,
  tasks: [],
  targets: 'all',
  views: [],
  maps: [],
});

describe("kernel: the panel's usage refresh", () => {
  it('keeps CPU and memory moving while an engine works, or while the panel is in use', () => {
    assert.equal(usageMoves(state(engine(0, 'idle'), engine(1, 'busy')), false), true);
    assert.equal(usageMoves(state(engine(0, 'idle')), true), true);
  });

  it("keeps refreshing after work until the engines' CPU has fallen back", () => {
    assert.equal(usageMoves(state(engine(0, 'idle', 85), engine(1, 'idle')), false), true);
    assert.equal(usageMoves(state(engine(0, 'idle', 0.4), engine(1, 'dead', 90)), false), false);
  });

  it('polls nothing for an idle cluster nobody looks at, nor without a cluster', () => {
    assert.equal(usageMoves(state(engine(0, 'idle'), engine(1, 'dead')), false), false);
    assert.equal(usageMoves({ ...state(), cluster: null }, true), false);
  });
});

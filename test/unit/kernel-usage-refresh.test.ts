import { strict as assert } from 'node:assert';
import type { KernelState, PanelEngine } from '../../kernel-ext/comm-messages';
import { usageMoves } from '../../kernel-ext/panel';

const engine = (id: number, status: PanelEngine['status']): PanelEngine => ({
  id,
  host: 'localhost',
  pid: 1000 + id,
  status,
  queue: status === 'busy' ? 1 : 0,
  completed: 0,
  currentTask: null,
  replacedBy: null,
  cpu: 0,
  memory: 0,
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

  it('polls nothing for an idle cluster nobody looks at, nor without a cluster', () => {
    assert.equal(usageMoves(state(engine(0, 'idle'), engine(1, 'dead')), false), false);
    assert.equal(usageMoves({ ...state(), cluster: null }, true), false);
  });
});

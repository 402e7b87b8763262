/** Resources as the command line spells them, and the checks code and the wire share. */
import assert from 'node:assert/strict';
import { resolveOptions, toArgv } from '../../options/schema';
import { engineOptions } from '../../engine/options';
import { validateMessage } from '../../protocol/messages';
import {
  declaredResources,
  formatResources,
  parseResources,
  resourcesProblem,
  shortOf,
} from '../../protocol/resources';

describe('resources', () => {
  it('parse name=amount pairs, with K, M, G and T for thousands to trillions', () => {
    assert.deepEqual(parseResources('cpu=4,gpu=1,mem=8G'), { cpu: 4, gpu: 1, mem: 8e9 });
    assert.deepEqual(parseResources(' gpu = 0.5 , disk=1.5t, net=2k, x=3M'), {
      gpu: 0.5,
      disk: 1.5e12,
      net: 2000,
      x: 3e6,
    });
    assert.deepEqual(parseResources(''), {});
  });

  it('leave what is not an amount as written, for the check to name', () => {
    const parsed = parseResources('gpu=x,mem=8Q');
    assert.deepEqual(parsed, { gpu: 'x', mem: '8Q' });
    assert.match(String(resourcesProblem(parsed)), /^has gpu=x; an amount must be a number >= 0/);
    for (const text of ['gpu', 'gpu=1=2', 'gpu=1,gpu=2']) assert.equal(parseResources(text), text);
  });

  it('name bad names and amounts given in code', () => {
    assert.equal(resourcesProblem({ gpu: 1, 'mem.host': 2, 'a-b_c': 0 }), undefined);
    assert.match(String(resourcesProblem({ '1gpu': 1 })), /resource name "1gpu"/);
    assert.match(String(resourcesProblem({ gpu: -1 })), /gpu=-1/);
    assert.match(String(resourcesProblem({ gpu: Infinity })), /gpu=Infinity/);
    assert.match(String(resourcesProblem([1])), /^must be resources by name/);
  });

  it('travel to a child engine as the command line spells them and come back the same', () => {
    const resources = { cpu: 2, gpu: 0.5, mem: 8e9 };
    const argv = toArgv(engineOptions, { resources });
    assert.deepEqual(argv, ['--resources', 'cpu=2,gpu=0.5,mem=8000000000']);
    assert.deepEqual(parseResources(argv[1]), resources);
    assert.equal(formatResources({}), '');
  });

  it('default to one CPU, which naming cpu replaces', () => {
    assert.deepEqual(resolveOptions(engineOptions, { log: () => undefined }).resources, { cpu: 1 });
    assert.deepEqual(declaredResources({ gpu: 1 }), { cpu: 1, gpu: 1 });
    assert.deepEqual(declaredResources({ cpu: 0, gpu: 1 }), { cpu: 0, gpu: 1 });
    assert.deepEqual(declaredResources(), { cpu: 1 });
  });

  it('fit where every amount asked is held; an unnamed resource counts as none', () => {
    assert.deepEqual(shortOf({ cpu: 1, gpu: 1 }, { gpu: 1 }), []);
    assert.deepEqual(shortOf({ cpu: 1, gpu: 1 }, { gpu: 2, cpu: 1, tpu: 1 }), ['gpu', 'tpu']);
    assert.deepEqual(shortOf({ cpu: 1 }, {}), []);
  });

  it('are checked at the gate, in task options and in registrations', () => {
    const header = (msg_type: string) => ({
      msg_id: 'm',
      msg_type,
      session: 's',
      username: 'u',
      date: '',
      version: '5.3',
    });
    const message = (msg_type: string, content: object) => ({
      header: header(msg_type),
      parent_header: {},
      metadata: {},
      content,
    });
    const task = (resources: unknown) =>
      message('apply_request', {
        source: '() => 1',
        mode: 'call',
        refs: [],
        options: { balanced: true, resources },
      });
    validateMessage(task({ gpu: 1 }));
    assert.throws(
      () => validateMessage(task({ gpu: '1' })),
      /^TypeError: apply_request: .*content\.options\.resources is not resources \(it has gpu=1; an amount must be/,
    );
    const registration = (resources: unknown) =>
      message('registration_request', { uuid: 'u', pid: 1, hostname: 'h', resources });
    validateMessage(registration(undefined));
    assert.throws(
      () => validateMessage(registration({ '': 1 })),
      /content\.resources is not resources \(it has resource name ""/,
    );
  });
});

import assert from 'node:assert/strict';
import { controllerOptions, controllerSettings } from '../../controller/options';
import { flagName, resolveOptions, toArgv } from '../../options/schema';

describe('option schemas', () => {
  it('fill in defaults, derived ones from the values given', () => {
    const o = resolveOptions(controllerOptions, { heartbeatPeriod: 2000 });
    assert.equal(o.hwm, 1);
    assert.equal(o.db, 'memory');
    assert.equal(o.heartbeatDeadline, 6000, 'three periods when periods are long');
    assert.equal(resolveOptions(controllerOptions, {}).heartbeatDeadline, 3000);
  });

  it('refuse a wrong type with TypeError and a wrong value with RangeError, naming the option', () => {
    const refused = (given: object, error: ErrorConstructor, pattern: RegExp): void =>
      assert.throws(
        () => resolveOptions(controllerOptions, given),
        (e: unknown) => e instanceof error && pattern.test((e as Error).message),
      );
    refused(
      { hwm: '2' },
      TypeError,
      /^controller option hwm must be a positive integer, got string$/,
    );
    refused(
      { hwm: 1.5 },
      RangeError,
      /^controller option hwm must be a positive integer, got 1.5$/,
    );
    refused({ scheme: 'fastest' }, RangeError, /scheme must be one of leastload, lru/);
    refused({ db: 'postgres' }, RangeError, /db "postgres" is not a task store/);
    refused({ profile: '../x' }, RangeError, /profile "..\/x" may hold only letters/);
    refused({ hwmm: 2 }, TypeError, /^unknown controller option hwmm; its options are ip, scheme/);
    refused(
      { heartbeatPeriod: 500, heartbeatDeadline: 400 },
      RangeError,
      /^heartbeatDeadline \(400\) must be longer than heartbeatPeriod \(500\)/,
    );
    refused({ ip: '0.0.0.0' }, RangeError, /without encryption.*add curve \(or insecure/);
  });

  it('spell the checks across options as the caller names them', () => {
    assert.throws(
      () => resolveOptions(controllerSettings, { heartbeatDeadline: 900 }, flagName),
      /RangeError: --heartbeat-deadline \(900\) must be longer than --heartbeat-period \(1000\)/,
    );
  });

  it('give a child process the options that are not at their default, as flags', () => {
    assert.deepEqual(
      toArgv(controllerSettings, {
        ip: '127.0.0.1',
        hwm: 4,
        curve: true,
        insecure: false,
        heartbeatPeriod: 100,
      }),
      ['--hwm', '4', '--curve', '--heartbeat-period', '100'],
    );
  });
});

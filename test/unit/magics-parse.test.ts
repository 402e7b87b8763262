import { strict as assert } from 'node:assert';
import { MagicUsageError, pickTargets } from '../../kernel-ext/magic-options';
import { parseMagic, splitCell } from '../../kernel-ext/magics';

describe('magics: parsing', () => {
  it('splits a cell into magic lines and TypeScript, or one cell magic', () => {
    assert.deepEqual(splitCell('%cluster start -n 2\nconst a = 1;\n%px a'), [
      { kind: 'magic', name: 'cluster', args: 'start -n 2', body: undefined },
      { kind: 'code', code: 'const a = 1;' },
      { kind: 'magic', name: 'px', args: 'a', body: undefined },
    ]);
    assert.deepEqual(splitCell('\n%%px --targets 0\nx % 2\n%px y'), [
      { kind: 'magic', name: '%px', args: '--targets 0', body: 'x % 2\n%px y' },
    ]);
  });

  it('parses every %%px option', () => {
    const m = parseMagic(
      '%px',
      '--targets ::2 --noblock --no-stream --timeout 1.5 --local --group-outputs engine --out r --progress-after 0 --signal-on-interrupt TERM --data',
    );
    assert.deepEqual(m, {
      magic: 'px',
      code: '',
      options: {
        targets: '::2',
        block: false,
        stream: false,
        timeout: 1.5,
        groupOutputs: 'engine',
        progressAfter: 0,
        signalOnInterrupt: 'SIGTERM',
        local: true,
        out: 'r',
        data: true,
      },
    });
  });

  it('keeps the code of %px after its options, spacing and all', () => {
    assert.deepEqual(parseMagic('px', '--targets 1   console.log("a  b")'), {
      magic: 'px',
      code: 'console.log("a  b")',
      options: { targets: '1' },
    });
  });

  it('refuses bad options with one sentence', () => {
    const cases: [string, string, RegExp][] = [
      ['%px', '--bogus', /^%%px: unknown option '--bogus'; %%px\? shows the options\.$/],
      ['%px', '--timeout 0', /--timeout needs a positive number of seconds, got '0'\./],
      ['%px', '--block --noblock', /cannot be used with option/],
      [
        '%px',
        '--group-outputs size',
        /argument 'size' is invalid: allowed choices are type, engine, order;/,
      ],
      ['%px', '--signal-on-interrupt NOPE', /needs a signal name/],
      ['%px', '--out 1x', /--out needs a variable name/],
      ['cluster', 'launch', /%cluster needs start, stop, connect, status or scale/],
      ['cluster', 'scale', /missing required argument 'n'/],
      ['cluster', 'scale -1', /needs a whole number of engines of at least 0, got '-1'/],
      ['cluster', 'start -n 0', /-n needs a whole number of engines of at least 1/],
      ['cluster', 'start --launcher pbx', /allowed choices are local, mpi, ssh, slurm/],
      ['cluster', 'start --resources gpu=lots', /--resources has gpu=lots; an amount must be/],
      [
        'pxresult',
        'extra',
        /^%pxresult: too many arguments: expected 0 arguments but got 1; %pxresult\? shows the options\.$/,
      ],
      ['nope', '', /there is no magic %nope/],
    ];
    for (const [name, args, message] of cases) {
      assert.throws(
        () => parseMagic(name, args),
        (e: Error) => {
          assert.ok(e instanceof MagicUsageError, `${name} ${args}`);
          assert.match(e.message, message);
          return true;
        },
      );
    }
  });

  it('parses %cluster scale N', () => {
    assert.deepEqual(parseMagic('cluster', 'scale 3'), { magic: 'cluster scale', engines: 3 });
  });

  it("parses %cluster start's engines, launcher and resources", () => {
    assert.deepEqual(parseMagic('cluster', 'start -n 2 --resources gpu=1,mem=8G'), {
      magic: 'cluster start',
      engines: 2,
      launcher: 'local',
      resources: { gpu: 1, mem: 8e9 },
    });
  });

  it('resolves targets against the live engines', () => {
    const ids = [0, 1, 2, 3, 5];
    assert.deepEqual(pickTargets('all', ids), ids);
    assert.deepEqual(pickTargets('1:3', ids), [1, 2]);
    assert.deepEqual(pickTargets('::2', ids), [0, 2, 5]);
    assert.deepEqual(pickTargets('-2:', ids), [3, 5]);
    assert.deepEqual(pickTargets('0,5', ids), [0, 5]);
    assert.throws(
      () => pickTargets('4', ids),
      /engine 4 is not running; live engines: 0, 1, 2, 3, 5/,
    );
  });
});

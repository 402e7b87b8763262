/**
 * The example notebook, run as a newcomer runs it: `jupyter nbconvert --to notebook --execute`
 * on the installed kernelspec, then its outputs are checked.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { installKernel, PYTHON, ROOT, run, type KernelEnv } from './kernel-fixture';

/** The file keeps multi-line strings as lists of lines. */
type Lines = string | string[];
interface Output {
  output_type: string;
  text?: Lines;
  data?: Record<string, Lines>;
}
interface Cell {
  cell_type: string;
  source: Lines;
  outputs?: Output[];
}
const joined = (l: Lines | undefined): string => (Array.isArray(l) ? l.join('') : (l ?? ''));

describe('example notebook (nbconvert --execute)', function () {
  this.timeout(600_000);
  let k: KernelEnv;
  let cells: Cell[];

  before(async () => {
    k = await installKernel();
    const out = join(k.dir, 'quickstart.out.ipynb');
    await run(
      PYTHON,
      [
        '-m',
        'nbconvert',
        '--to',
        'notebook',
        '--execute',
        '--ExecutePreprocessor.timeout=300',
        join(ROOT, 'examples', 'quickstart.ipynb'),
        '--output',
        out,
      ],
      { env: k.env, cwd: join(ROOT, 'examples') },
    );
    cells = (JSON.parse(readFileSync(out, 'utf8')) as { cells: Cell[] }).cells.filter(
      (c) => c.cell_type === 'code',
    );
  });
  after(() => k?.cleanup());

  // One output per line: a slow cell's progress line (its own display) ends where output starts.
  const text = (c: Cell): string =>
    (c.outputs ?? []).map((o) => joined(o.text ?? o.data?.['text/plain'])).join('\n');
  const cell = (start: string): Cell => {
    const found = cells.find((c) => joined(c.source).startsWith(start));
    assert.ok(found, `no cell starting ${start}`);
    return found;
  };

  it('ran every cell without an error output', () => {
    for (const c of cells) {
      assert.ok(!(c.outputs ?? []).some((o) => o.output_type === 'error'), joined(c.source));
    }
  });

  it('%cluster start and %%px show each engine’s output', () => {
    assert.match(text(cell('%cluster start')), /Started a cluster with 2 engines/);
    const px = text(cell('%%px'));
    assert.match(px, /^\[stdout:0\] engine pid \d+ ready$/m);
    assert.match(px, /^\[stdout:1\] engine pid \d+ ready$/m);
    assert.match(text(cell('%px 6 * 7')), /Out\[0:\d+\]: 42[\s\S]*Out\[1:\d+\]: 42/);
  });

  it('views from code: a direct view on both engines, a load-balanced Monte-Carlo π', () => {
    assert.equal(text(cell('const dv')), '2');
    assert.match(text(cell('const samples')), /^pi is about 3\.1\d\n$/);
    assert.match(text(cell('%cluster status')), /engine 0: idle[\s\S]*engine 1: idle/);
    assert.match(text(cell('%cluster stop')), /Stopped the cluster/);
  });
});

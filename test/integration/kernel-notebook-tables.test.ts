/**
 * The Arrow tables example, run as a newcomer runs it: `jupyter nbconvert --to notebook
 * --execute` on the installed kernelspec. Its mapBatches cell must keep a readable progress bar:
 * nbconvert applies the kernel's `update_display_data` to the bar's output in place.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { installKernel, PYTHON, ROOT, run, type KernelEnv } from './kernel-fixture';

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

describe('Arrow tables example notebook (nbconvert --execute)', function () {
  this.timeout(600_000);
  let k: KernelEnv;
  let cells: Cell[];

  before(async () => {
    k = await installKernel();
    const out = join(k.dir, 'tables.out.ipynb');
    await run(
      PYTHON,
      [
        '-m',
        'nbconvert',
        '--to',
        'notebook',
        '--execute',
        '--ExecutePreprocessor.timeout=300',
        join(ROOT, 'examples', 'tables.ipynb'),
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

  const cell = (start: string): Cell => {
    const found = cells.find((c) => joined(c.source).startsWith(start));
    assert.ok(found, `no cell starting ${start}`);
    return found;
  };
  const text = (c: Cell): string =>
    (c.outputs ?? []).map((o) => joined(o.text ?? o.data?.['text/plain'])).join('\n');

  it('ran every cell without an error output', () => {
    for (const c of cells) {
      assert.ok(!(c.outputs ?? []).some((o) => o.output_type === 'error'), joined(c.source));
    }
  });

  it('reads the table and maps its batches, keeping the row order', () => {
    assert.match(text(cell('const trips')), /^1000000 trips, columns km, minutes\n$/);
    // Mean of (1 + (i % 97) / 10) / (5 + (i % 55)) * 60 over a million rows, as computed here.
    let sum = 0;
    for (let i = 0; i < 1_000_000; i++) sum += ((1 + (i % 97) / 10) / (5 + (i % 55))) * 60;
    const mean = (sum / 1_000_000).toFixed(2);
    assert.equal(text(cell('const kmh')), `1000000 speeds, mean ${mean} km/h\n`);
  });

  it('leaves the mapBatches cell a finished progress bar, as text and as HTML', () => {
    const bars = (cell('const speeds').outputs ?? []).filter(
      (o) => o.output_type === 'display_data',
    );
    assert.equal(bars.length, 1, JSON.stringify(cell('const speeds').outputs));
    const data = bars[0].data!;
    assert.match(
      joined(data['text/plain']),
      /^\[#{30}\] 16\/16 tasks, done in \d+\.\d s\nengine 0: \d+ done, engine 1: \d+ done$/,
    );
    assert.match(joined(data['text/html']), /<progress value="16" max="16"><\/progress>/);
  });
});

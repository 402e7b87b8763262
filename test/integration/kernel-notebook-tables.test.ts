/**
 * The Arrow tables example, run as a newcomer runs it: `jupyter nbconvert --to notebook
 * --execute` on the installed kernelspec. Its mapBatches cell must keep a readable progress bar:
 * nbconvert applies the kernel's `update_display_data` to the bar's output in place. Run twice,
 * its cached step must come from the cache the second time.
 */
import { strict as assert } from 'node:assert';
import { useExample, joined, outputText as text } from './kernel-fixture';

describe('Arrow tables example notebook (nbconvert --execute)', function () {
  this.timeout(600_000);
  /** Run 1 has run 0's TSPARALLEL_DIR, and so its cache. */
  const cell = useExample('tables.ipynb', 2);

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

  it('computes the expensive step on an engine, and serves it from the cache on a re-run', () => {
    const line = /^1000000 rows, fastest \d+(\.\d+)? km\/h: (.+) in \d+ ms$/m;
    const first = line.exec(text(cell('const cached')));
    const second = line.exec(text(cell('const cached', 1)));
    assert.equal(first?.[2], 'computed on an engine', text(cell('const cached')));
    assert.equal(second?.[2], 'from the cache', text(cell('const cached', 1)));
    // The same value either way.
    assert.equal(first[0].split(':')[0], second[0].split(':')[0]);
  });
});

/**
 * The task-graph example notebook, run as a newcomer runs it: `jupyter nbconvert --to notebook
 * --execute` on the installed kernelspec. Its pending results are the arguments of later cells'
 * tasks and of an actor's calls, which must come back in call order.
 */
import { strict as assert } from 'node:assert';
import { useExample, outputText as text } from './kernel-fixture';

describe('task graph example notebook (nbconvert --execute)', function () {
  this.timeout(600_000);
  const cell = useExample('pipeline.ipynb');

  it('sums the cleaned shards, and the actor counts them in call order', () => {
    const kept = [0, 1, 2, 3].map((s) => {
      let n = 0;
      let sum = 0;
      for (let j = 0; j < 1_000_000; j++) {
        const r = ((s * 1_000_003 + j * 7919) % 10_007) / 100;
        if (r > 90) continue;
        n++;
        sum += r;
      }
      return { n, sum };
    });
    const count = kept.reduce((a, b) => a + b.n, 0);
    const mean = kept.reduce((a, b) => a + b.sum, 0) / count;
    // Awaited for over a second, a cell also shows a progress bar above its own lines.
    assert.match(
      text(cell('const { count')),
      new RegExp(`^kept ${count} readings, mean ${mean.toFixed(3)}\n$`, 'm'),
    );
    const totals = kept.map((_, i) => kept.slice(0, i + 1).reduce((a, b) => a + b.n, 0));
    assert.match(
      text(cell('class Histogram')),
      new RegExp(`^histogram on engine \\d+ counted ${totals.join(', ')}\\n$`, 'm'),
    );
  });
});

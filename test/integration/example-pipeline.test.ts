/**
 * examples/pipeline.ts, run as a user runs it: a graph built at once on a default local cluster.
 * Its figures are checked against the same arithmetic done here in plain loops.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import './fixture';

describe('the pipeline example (a task graph and an actor)', function () {
  this.timeout(120_000);

  it('prints the summary and the histogram the data give, holding no shard itself', () => {
    const example = join(__dirname, '../../examples/pipeline.js');
    const run = spawnSync(process.execPath, [example], { encoding: 'utf8', timeout: 110_000 });
    assert.equal(run.status, 0, run.stderr);

    let count = 0;
    let sum = 0;
    let max = -Infinity;
    const bins: number[] = [];
    for (let s = 0; s < 4; s++) {
      for (let j = 0; j < 1_000_000; j++) {
        const r = ((s * 1_000_003 + j * 7919) % 10_007) / 100;
        if (r > 90) continue;
        count++;
        sum += r;
        max = Math.max(max, r);
        const bin = Math.floor(r / 10);
        bins[bin] = (bins[bin] ?? 0) + 1;
      }
    }
    const fullest = Math.max(...bins);
    const from = bins.indexOf(fullest) * 10;
    const lines = run.stdout.trimEnd().split('\n');
    assert.equal(
      lines[0],
      `4 shards of 1000000 readings: kept ${count}, mean ${(sum / count).toFixed(3)}, max ${max.toFixed(2)}`,
    );
    assert.match(
      lines[1],
      new RegExp(`^histogram on engine \\d+: fullest bin ${from}–${from + 10} with ${fullest}$`),
    );
    // Four 8 MB shards and their cleaned copies never came here.
    const held = /this process holds (\d+) MB of array buffers/.exec(lines[2]);
    assert.ok(held && Number(held[1]) < 16, lines[2]);
  });
});

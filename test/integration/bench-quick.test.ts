import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chart } from '../../bench/chart';
import { grid } from '../../bench/grid';
import { PEERS, table, type BenchReport } from '../../bench/report';

const RUN = join(__dirname, '..', '..', 'bench', 'run.js');

// A smoke test: the quick grid runs end to end on every system and reports every figure. It
// checks no timings, only that each one was measured or its system reported absent.
describe('npm run bench -- --quick', function () {
  this.timeout(240_000);
  const dir = mkdtempSync(join(tmpdir(), 'tsparallel-bench-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('measures the quick grid on tsparallel and each peer, or says the peer is absent', async () => {
    const out = join(dir, 'results.json');
    const { stdout } = await promisify(execFile)(process.execPath, [RUN, '--quick', '--out', out], {
      env: { ...process.env, TSPARALLEL_DIR: dir },
      maxBuffer: 16 * 1024 * 1024,
    });
    const report = JSON.parse(readFileSync(out, 'utf8')) as BenchReport;
    assert.deepEqual(
      report.workloads.map((w) => w.id),
      grid(true).map((w) => w.id),
    );
    const notOn = (id: string): readonly string[] =>
      grid(true).find((w) => w.id === id)?.notOn ?? [];
    for (const w of report.workloads) {
      assert.ok(w.tsparallel.median > 0, `${w.id} measured on tsparallel`);
      for (const peer of PEERS) {
        const without = report.absent[peer] !== undefined || notOn(w.id).includes(peer);
        if (without) assert.equal(w.peers[peer], null);
        else assert.ok((w.peers[peer]?.median ?? 0) > 0, `${w.id} measured on ${peer}`);
      }
    }
    assert.ok(report.floor.crossProcessMs.median > 0 && report.floor.largeHopMBs.median > 0);
    assert.ok(report.targets.length > 0);
    for (const peer of PEERS) {
      const absent = report.absent[peer];
      assert.match(stdout, new RegExp(absent === undefined ? `\\| ${peer}` : `${peer}: absent`));
    }
    assert.match(stdout, /round trip, direct/);
    // Beside the JSON: RESULTS.md with the same table, and the chart it shows.
    assert.ok(readFileSync(join(dir, 'RESULTS.md'), 'utf8').includes(table(report)));
    const svg = readFileSync(join(dir, 'chart.svg'), 'utf8');
    assert.equal(svg, chart(report));
    assert.match(svg, /class="bar" data-peer="ipyparallel|ipyparallel: absent/);
  });
});

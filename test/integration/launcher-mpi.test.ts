import assert from 'node:assert/strict';
import { isAlive } from './fixture';
import { runIsolated } from './launchers/netns';

interface Report {
  info: { id: number; mpi: { rank: number; size: number }; set: string }[];
  ranks: { rank: number; size: number }[];
  squares: number[];
  grown: number[];
  grownInfo: { id: number; mpi: { rank: number; size: number }; set: string }[];
  shrunk: number[];
  mpiexecAfterShrink: number;
  aliveAfterStop: number[];
  pids: number[];
}

describe('the mpi launcher (Open MPI mpiexec, in a network namespace)', () => {
  let report: Report;
  before(async function () {
    this.timeout(120_000);
    report = await runIsolated<Report>('mpi-scenario', 110_000);
  });

  it('starts engines as the ranks of one mpiexec job, which know their rank and size', () => {
    assert.deepEqual(
      report.info.map((e) => e.mpi).sort((a, b) => a.rank - b.rank),
      [
        { rank: 0, size: 2 },
        { rank: 1, size: 2 },
      ],
    );
    assert.equal(new Set(report.info.map((e) => e.set)).size, 1, 'one engine set');
    assert.deepEqual(
      report.ranks,
      report.info.map((e) => e.mpi),
      'the namespace holds the same place as the engine list',
    );
  });

  it('runs tasks', () => {
    assert.deepEqual(report.squares, [1, 4, 9, 16, 25]);
  });

  it('scales up with another mpiexec job, and down by stopping engines', () => {
    assert.deepEqual(report.grown, [0, 1, 2]);
    const added = report.grownInfo.find((e) => e.id === 2);
    assert.deepEqual(added?.mpi, { rank: 0, size: 1 });
    assert.notEqual(added?.set, report.info[0].set);
    assert.equal(report.shrunk.length, 1);
    // The job of one engine ended with it; the first job keeps its remaining rank.
    assert.equal(report.mpiexecAfterShrink, 1);
  });

  it('stops leaving no process behind', () => {
    assert.ok(report.pids.length >= 5, 'controller, 2 mpiexec, 3 engines');
    assert.deepEqual(report.aliveAfterStop, []);
    assert.deepEqual(report.pids.filter(isAlive), []);
  });
});

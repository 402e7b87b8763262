/**
 * `npm run bench [-- --quick] [-- --out FILE] [-- --no-scale] [-- --soak N] [-- --from FILE]
 * [-- --only REGEX]`:
 * the grid on tsparallel, ipyparallel, dask.distributed and Ray in one run, the raw ZeroMQ floor,
 * and (without `--quick`) the scale scenario, with a soak of N tiny tasks when asked (the issue's
 * is 1000000); prints a table of medians and ratios and writes the figures as JSON
 * (bench/RESULTS.json, or bench/quick/RESULTS.json for `--quick`) with RESULTS.md and chart.svg
 * beside it. `--from FILE` only redraws RESULTS.md and chart.svg from a saved JSON. `--only`
 * runs the workloads whose id matches (e.g. `'^(push|pull)\.100MB$'`) on every system.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { chart } from './chart';
import { zmqFloor } from './floor';
import { ENGINES, grid, type Workload } from './grid';
import {
  markdown,
  PEERS,
  stats,
  table,
  fmt,
  type BenchReport,
  type Peer,
  type Stats,
} from './report';
import { runScale } from './scale';
import { runTsparallel } from './tsparallel';

/** The Python each peer runs on: Debian's for its packages, Ray's own venv (.ci/ray-venv). */
const ROOT = join(__dirname, '..', '..');
const PYTHON: Record<Peer, string> = {
  ipyparallel: '/usr/bin/python3',
  dask: '/usr/bin/python3',
  ray: join(ROOT, '.venv-ray', 'bin', 'python'),
};

/** One peer's run: its samples by workload, or why it is absent. */
type PeerRun = { version: string; results: Record<string, number[]> } | { absent: string };

/**
 * Runs the grid on `peer` in its own process group with a scratch directory, and afterwards
 * kills whatever is left in the group and removes the directory: a peer that dies hard (Ray's
 * agents outlive a killed driver) leaves nothing behind. A signal to the bench reaches the peer as
 * SIGTERM, on which it stops its system before the bench exits.
 */
async function runPeer(peer: Peer, workloads: Workload[]): Promise<PeerRun> {
  const python = PYTHON[peer];
  if (!existsSync(python)) {
    return {
      absent:
        peer === 'ray'
          ? `no Ray venv (${python}): .ci/ray-venv makes it, and says why it could not`
          : `${python} cannot be run`,
    };
  }
  const scratch = mkdtempSync(join(tmpdir(), 'tsp-peer-'));
  const child = spawn(python, [join(ROOT, 'bench', 'peers.py'), peer, scratch], {
    stdio: ['pipe', 'pipe', 'inherit'],
    detached: true,
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  // How it ended, or null when the interpreter could not be started.
  const exited = new Promise<string | null>((resolve) => {
    child.on('exit', (code, signal) =>
      resolve(signal === null ? `exit code ${code}` : `killed by ${signal}`),
    );
    child.on('error', () => resolve(null));
  });
  const killGroup = (signal: NodeJS.Signals): void => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // The group is gone already.
    }
  };
  const onSignal = (): void => {
    child.kill('SIGTERM');
    void exited.then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  child.stdin.on('error', () => {}); // a missing interpreter closes the pipe early
  child.stdin.end(JSON.stringify(workloads));
  const end = await exited;
  process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  killGroup('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
  if (end === null) return { absent: `${python} cannot be run` };
  try {
    return JSON.parse(out) as PeerRun;
  } catch {
    throw new Error(`the ${peer} benchmark failed (${end}); its errors are above`);
  }
}

function ratio(w: Workload, ts: Stats, peer: Stats | null): number | null {
  if (!peer) return null;
  return w.better === 'higher' ? ts.median / peer.median : peer.median / ts.median;
}

/** The targets, judged from this run's figures. */
function targets(r: BenchReport): BenchReport['targets'] {
  const out: BenchReport['targets'] = [];
  const byId = new Map(r.workloads.map((w) => [w.id, w]));
  const check = (target: string, value: string, met: boolean): void => {
    out.push({ target, value, met });
  };
  for (const mode of ['direct', 'lb', 'lease']) {
    const w = byId.get(`rtt.${mode}`);
    if (!w) continue;
    const ipp = w.ratio.ipyparallel;
    if (ipp !== null) {
      check(`${w.label} ≤ 1/10 of ipyparallel's`, `${fmt(ipp)}× faster`, ipp >= 10);
    }
    const floor = w.tsparallel.median / r.floor.crossProcessMs.median;
    check(
      `${w.label} ≤ 2× the raw ZeroMQ round trip (to a process)`,
      `${fmt(floor)}× (${fmt(w.tsparallel.median)} ms vs ${fmt(r.floor.crossProcessMs.median)} ms; ` +
        `${fmt(w.tsparallel.median / r.floor.inProcessMs.median)}× the in-process one)`,
      floor <= 2,
    );
  }
  for (const w of r.workloads) {
    const { ipyparallel: ipp, dask } = w.ratio;
    if (w.id.startsWith('graph.') && dask !== null) {
      check(`${w.label}: ≥ 5× Dask's tasks/s (futures as arguments)`, `${fmt(dask)}×`, dask >= 5);
    }
    if (ipp === null) continue;
    if (/^apply\.20000/.test(w.id)) {
      check(`${w.label}: ≥ 25× ipyparallel's throughput`, `${fmt(ipp)}×`, ipp >= 25);
    } else if (w.id.startsWith('map.')) {
      check(`${w.label}: ≥ 2× ipyparallel`, `${fmt(ipp)}×`, ipp >= 2);
    } else if (w.id === 'execute.all') {
      check(`${w.label}: ≤ 1/3 of ipyparallel's time`, `${fmt(ipp)}× faster`, ipp >= 3);
    } else if (/^(push|pull)\.100MB$/.test(w.id)) {
      check(`${w.label}: ≥ 2.5× ipyparallel`, `${fmt(ipp)}×`, ipp >= 2.5);
      // Both directions against one figure: Ray's `put` of 100 MB used by a task (its push).
      const put = byId.get('push.100MB')?.peers.ray;
      if (put) {
        const times = w.tsparallel.median / put.median;
        check(
          `${w.label}: ≥ Ray's \`put\` and use`,
          `${fmt(times)}× (${fmt(put.median)} MB/s)`,
          times >= 1,
        );
      }
    } else if (/^(push|pull|scatter|gather)\.1MB$/.test(w.id)) {
      check(`${w.label}: ≥ 2× ipyparallel`, `${fmt(ipp)}×`, ipp >= 2);
      if (dask !== null) check(`${w.label}: ahead of Dask`, `${fmt(dask)}×`, dask >= 1);
    }
  }
  const one = byId.get('cpu.1');
  const two = byId.get('cpu.2');
  if (one && two) {
    const speedup = one.tsparallel.median / two.tsparallel.median;
    check('CPU-bound scaling on 2 engines ≥ 1.9×', `${fmt(speedup)}×`, speedup >= 1.9);
  }
  const cold = byId.get('coldstart');
  if (cold) {
    check('cold start ≤ 1 s', `${fmt(cold.tsparallel.median)} s`, cold.tsparallel.median <= 1);
    const ipp = cold.ratio.ipyparallel;
    if (ipp !== null) check(`cold start ≤ 1/3 of ipyparallel's`, `${fmt(ipp)}× faster`, ipp >= 3);
  }
  if (r.scale) {
    const s = r.scale;
    check(
      `${s.engines} engines registered within 10 s`,
      `${fmt(s.registrationSeconds)} s`,
      s.registrationSeconds <= 10,
    );
    check('idle heartbeat load < 5% of a core', `${fmt(s.idleCpuPercent)}%`, s.idleCpuPercent < 5);
    const kept = s.throughputMany / s.throughputTwo;
    check(
      `tiny lb tasks with ${s.engines} engines ≥ 90% of the rate with 2`,
      `${fmt(kept * 100)}% (${fmt(s.throughputMany)} vs ${fmt(s.throughputTwo)} tasks/s)`,
      kept >= 0.9,
    );
    if (s.soak) {
      check(
        `controller memory < 300 MB through ${s.soak.tasks} tasks`,
        `${fmt(s.soak.peakRssMB)} MB`,
        s.soak.peakRssMB < 300,
      );
    }
  }
  return out;
}

/** Writes RESULTS.md and chart.svg for `report` beside its JSON file `json`. */
function writeViews(report: BenchReport, json: string): void {
  writeFileSync(join(dirname(json), 'RESULTS.md'), markdown(report, 'chart.svg'));
  writeFileSync(join(dirname(json), 'chart.svg'), chart(report));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string' },
      'no-scale': { type: 'boolean', default: false },
      soak: { type: 'string' },
      from: { type: 'string' },
      only: { type: 'string' },
    },
  });
  if (values.from !== undefined) {
    // The targets are judged again: they follow from the figures, which stay as recorded.
    const saved = JSON.parse(readFileSync(values.from, 'utf8')) as BenchReport;
    saved.targets = targets(saved);
    writeFileSync(values.from, `${JSON.stringify(saved, null, 2)}\n`);
    writeViews(saved, values.from);
    return;
  }
  const { quick } = values;
  const out = values.out ?? (quick ? 'bench/quick/RESULTS.json' : 'bench/RESULTS.json');
  const soakTasks = values.soak === undefined ? null : Number(values.soak);
  if (soakTasks !== null && !(Number.isInteger(soakTasks) && soakTasks > 0)) {
    throw new Error(`--soak takes a number of tasks, got ${values.soak}`);
  }
  if (process.env.TSPARALLEL_DIR === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'tsparallel-bench-'));
    process.env.TSPARALLEL_DIR = dir;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  const loadStart = loadavg();
  const only = values.only === undefined ? undefined : new RegExp(values.only);
  const workloads = grid(quick).filter((w) => only?.test(w.id) ?? true);
  const started = performance.now();
  const ts = await runTsparallel(workloads);
  const floorRaw = await zmqFloor(quick ? 200 : 2000, 100 * 1024 * 1024, quick ? 2 : 5);
  const floor = {
    inProcessMs: stats(floorRaw.inProcess),
    crossProcessMs: stats(floorRaw.crossProcess),
    largeHopMBs: stats(floorRaw.largeHop),
  };
  const peerRuns = {} as Record<Peer, PeerRun>;
  const theirs = workloads.filter((w) => w.peersAs === undefined);
  for (const peer of PEERS) peerRuns[peer] = await runPeer(peer, theirs);
  const scale = quick || values['no-scale'] ? null : await runScale(soakTasks);

  const report: BenchReport = {
    date: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}`,
    command: [
      'npm run bench',
      ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : []),
    ].join(' '),
    load: { start: loadStart, end: loadavg() },
    quick,
    engines: ENGINES,
    workloads: workloads.map((w) => {
      const t = stats(ts[w.id]);
      const peers = {} as Record<Peer, Stats | null>;
      const ratios = {} as Record<Peer, number | null>;
      for (const peer of PEERS) {
        const run = peerRuns[peer];
        const samples = 'results' in run ? run.results[w.peersAs ?? w.id] : undefined;
        peers[peer] = samples?.length ? stats(samples) : null;
        ratios[peer] = ratio(w, t, peers[peer]);
      }
      return {
        id: w.id,
        label: w.label,
        unit: w.unit,
        better: w.better,
        ...(w.warmupSeconds !== undefined && { warmupSeconds: w.warmupSeconds }),
        tsparallel: t,
        peers,
        ratio: ratios,
      };
    }),
    absent: {},
    versions: {},
    floor,
    scale,
    targets: [],
  };
  for (const peer of PEERS) {
    const run = peerRuns[peer];
    if ('absent' in run) report.absent[peer] = run.absent;
    else report.versions[peer] = run.version;
  }
  report.targets = targets(report);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  writeViews(report, out);
  process.stdout.write(`${table(report)}\n\n`);
  process.stdout.write(
    `${report.machine}; ${((performance.now() - started) / 1000).toFixed(0)} s; ` +
      `figures in ${out}, with RESULTS.md and chart.svg beside it\n`,
  );
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`bench: ${e.message}\n`);
    process.exit(1);
  },
);

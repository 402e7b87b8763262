/**
 * `npm run bench [-- --quick] [-- --out FILE] [-- --no-scale] [-- --soak N]`: the grid on
 * tsparallel, ipyparallel and dask.distributed in one run, the raw ZeroMQ floor, and (without
 * `--quick`) the scale scenario, with a soak of N tiny tasks when asked (the is 1000000); prints a
 * table of medians and ratios and writes the figures as JSON (bench/results.json).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { zmqFloor } from './floor';
import { ENGINES, grid, type Workload } from './grid';
import { runScale, type ScaleResults } from './scale';
import { runTsparallel } from './tsparallel';

/** The Python the Debian peer packages are installed for. */
const PYTHON = '/usr/bin/python3';
const PEERS = ['ipyparallel', 'dask'] as const;
type Peer = (typeof PEERS)[number];

/** Median and tail of a workload's samples. */
export interface Stats {
  median: number;
  p90: number;
  p99: number;
  n: number;
}

/** One peer's run: its samples by workload, or why it is absent. */
type PeerRun = { version: string; results: Record<string, number[]> } | { absent: string };

/** The JSON `npm run bench` writes. */
export interface BenchReport {
  date: string;
  machine: string;
  quick: boolean;
  engines: number;
  workloads: {
    id: string;
    label: string;
    unit: string;
    better: 'higher' | 'lower';
    tsparallel: Stats;
    peers: Record<Peer, Stats | null>;
    /** How many times better tsparallel is than each peer (above 1: tsparallel wins). */
    ratio: Record<Peer, number | null>;
  }[];
  absent: Partial<Record<Peer, string>>;
  versions: Partial<Record<Peer, string>>;
  floor: { inProcessMs: Stats; crossProcessMs: Stats; largeHopMBs: Stats };
  scale: ScaleResults | null;
  targets: { target: string; value: string; met: boolean }[];
}

/** Median, p90 and p99 by nearest rank. */
export function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  const median =
    s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { median, p90: at(0.9), p99: at(0.99), n: s.length };
}

async function runPeer(peer: Peer, workloads: Workload[]): Promise<PeerRun> {
  const child = spawn(PYTHON, [join(__dirname, '..', '..', 'bench', 'peers.py'), peer], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => resolve(code));
    child.on('error', () => resolve(null));
  });
  child.stdin.on('error', () => {}); // a missing interpreter closes the pipe early
  child.stdin.end(JSON.stringify(workloads));
  const code = await exited;
  if (code === null) return { absent: `${PYTHON} cannot be run` };
  try {
    return JSON.parse(out) as PeerRun;
  } catch {
    throw new Error(`the ${peer} benchmark failed (exit code ${code}); its errors are above`);
  }
}

function ratio(w: Workload, ts: Stats, peer: Stats | null): number | null {
  if (!peer) return null;
  return w.better === 'higher' ? ts.median / peer.median : peer.median / ts.median;
}

const fmt = (x: number): string =>
  x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toPrecision(2);

/** The readable table: medians, and for round trips p90 and p99 too. */
export function table(r: BenchReport): string {
  const head = ['workload', 'unit', 'tsparallel', 'ipyparallel', 'ratio', 'dask', 'ratio'];
  const rows = r.workloads.map((w) => {
    const cell = (s: Stats | null): string =>
      s === null
        ? 'absent'
        : w.unit === 'ms' && s.n >= 100
          ? `${fmt(s.median)} (p90 ${fmt(s.p90)}, p99 ${fmt(s.p99)})`
          : fmt(s.median);
    const x = (v: number | null): string => (v === null ? '-' : `${fmt(v)}×`);
    return [
      w.label,
      w.unit,
      cell(w.tsparallel),
      cell(w.peers.ipyparallel),
      x(w.ratio.ipyparallel),
      cell(w.peers.dask),
      x(w.ratio.dask),
    ];
  });
  const f = r.floor;
  rows.push(
    ['raw ZeroMQ round trip, in-process', 'ms', cell3(f.inProcessMs), '', '', '', ''],
    ['raw ZeroMQ round trip, to a process', 'ms', cell3(f.crossProcessMs), '', '', '', ''],
    ['raw ZeroMQ 100 MB, one hop', 'MB/s', fmt(f.largeHopMBs.median), '', '', '', ''],
  );
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  const out = [line(head), `|${widths.map((wd) => '-'.repeat(wd + 2)).join('|')}|`];
  out.push(...rows.map(line));
  out.push('', 'ratio: how many times better tsparallel is (above 1: tsparallel is ahead).');
  for (const [peer, why] of Object.entries(r.absent)) out.push(`${peer}: absent (${why})`);
  if (r.scale) {
    const s = r.scale;
    out.push(
      '',
      `scale: ${s.engines} engines in ${s.processes} processes registered in ${fmt(s.registrationSeconds)} s;` +
        ` controller CPU at idle ${fmt(s.idleCpuPercent)}% of a core` +
        ` (heartbeat period ${s.heartbeatPeriodMs} ms); scheduler ${fmt(s.throughputMany)} tasks/s with` +
        ` ${s.engines} engines, ${fmt(s.throughputTwo)} with 2`,
    );
    if (s.soak) {
      out.push(
        `soak: ${s.soak.tasks} tasks in ${fmt(s.soak.seconds)} s, controller peak RSS ${fmt(s.soak.peakRssMB)} MB`,
      );
    }
  }
  out.push('', 'targets:');
  for (const t of r.targets) out.push(`  [${t.met ? 'met ' : 'MISS'}] ${t.target}: ${t.value}`);
  return out.join('\n');
}

function cell3(s: Stats): string {
  return `${fmt(s.median)} (p90 ${fmt(s.p90)}, p99 ${fmt(s.p99)})`;
}

/** The targets, judged from this run's figures. */
function targets(r: BenchReport): BenchReport['targets'] {
  const out: BenchReport['targets'] = [];
  const byId = new Map(r.workloads.map((w) => [w.id, w]));
  const check = (target: string, value: string, met: boolean): void => {
    out.push({ target, value, met });
  };
  for (const mode of ['direct', 'lb']) {
    const w = byId.get(`rtt.${mode}`);
    if (!w) continue;
    const ipp = w.ratio.ipyparallel;
    if (ipp !== null) {
      check(`${mode} round trip ≤ 1/10 of ipyparallel's`, `${fmt(ipp)}× faster`, ipp >= 10);
    }
    const floor = w.tsparallel.median / r.floor.crossProcessMs.median;
    check(
      `${mode} round trip ≤ 4× the raw ZeroMQ round trip (to a process)`,
      `${fmt(floor)}× (${fmt(w.tsparallel.median)} ms vs ${fmt(r.floor.crossProcessMs.median)} ms; ` +
        `${fmt(w.tsparallel.median / r.floor.inProcessMs.median)}× the in-process one)`,
      floor <= 4,
    );
  }
  for (const w of r.workloads) {
    const ipp = w.ratio.ipyparallel;
    if (ipp === null) continue;
    if (w.id.startsWith('apply.')) {
      check(`${w.label}: ≥ 25× ipyparallel's throughput`, `${fmt(ipp)}×`, ipp >= 25);
    } else if (w.id.startsWith('map.')) {
      check(`${w.label}: ≥ 2× ipyparallel`, `${fmt(ipp)}×`, ipp >= 2);
    } else if (/^(push|pull)\.100MB$/.test(w.id)) {
      const gbs = w.tsparallel.median / 1024;
      check(`${w.label}: ≥ 1 GB/s`, `${fmt(gbs)} GB/s`, gbs >= 1);
      check(`${w.label}: ≥ 2× ipyparallel`, `${fmt(ipp)}×`, ipp >= 2);
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      out: { type: 'string', default: 'bench/results.json' },
      'no-scale': { type: 'boolean', default: false },
      soak: { type: 'string' },
    },
  });
  const { quick, out } = values;
  const soakTasks = values.soak === undefined ? null : Number(values.soak);
  if (soakTasks !== null && !(Number.isInteger(soakTasks) && soakTasks > 0)) {
    throw new Error(`--soak takes a number of tasks, got ${values.soak}`);
  }
  if (process.env.TSPARALLEL_DIR === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'tsparallel-bench-'));
    process.env.TSPARALLEL_DIR = dir;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  const workloads = grid(quick);
  const started = performance.now();
  const ts = await runTsparallel(workloads);
  const floorRaw = await zmqFloor(quick ? 200 : 2000, 100 * 1024 * 1024, quick ? 2 : 5);
  const floor = {
    inProcessMs: stats(floorRaw.inProcess),
    crossProcessMs: stats(floorRaw.crossProcess),
    largeHopMBs: stats(floorRaw.largeHop),
  };
  const peerRuns = {} as Record<Peer, PeerRun>;
  for (const peer of PEERS) peerRuns[peer] = await runPeer(peer, workloads);
  const scale = quick || values['no-scale'] ? null : await runScale(soakTasks);

  const report: BenchReport = {
    date: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}`,
    quick,
    engines: ENGINES,
    workloads: workloads.map((w) => {
      const t = stats(ts[w.id]);
      const peers = {} as Record<Peer, Stats | null>;
      const ratios = {} as Record<Peer, number | null>;
      for (const peer of PEERS) {
        const run = peerRuns[peer];
        const samples = 'results' in run ? run.results[w.id] : undefined;
        peers[peer] = samples?.length ? stats(samples) : null;
        ratios[peer] = ratio(w, t, peers[peer]);
      }
      return {
        id: w.id,
        label: w.label,
        unit: w.unit,
        better: w.better,
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
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${table(report)}\n\n`);
  process.stdout.write(
    `${report.machine}; ${((performance.now() - started) / 1000).toFixed(0)} s; figures in ${out}\n`,
  );
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`bench: ${e.message}\n`);
    process.exit(1);
  },
);

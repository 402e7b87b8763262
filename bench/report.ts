/**
 * What `npm run bench` reports: the figures' JSON shape, the table it prints, and the
 * bench/RESULTS.md it writes. Pure functions of the report, so they can be redrawn from a saved
 * results JSON (`npm run bench -- --from FILE`).
 */

/** What the scale scenario measured. */
export interface ScaleResults {
  engines: number;
  processes: number;
  registrationSeconds: number;
  heartbeatPeriodMs: number;
  /** Controller CPU over an idle stretch, in percent of one core. */
  idleCpuPercent: number;
  /** Tiny load-balanced tasks a second with all the engines, and with 2. */
  throughputMany: number;
  throughputTwo: number;
  soak: { tasks: number; seconds: number; peakRssMB: number } | null;
}

/** The systems the grid runs on besides tsparallel, in the order of the table and the chart. */
export const PEERS = ['ipyparallel', 'dask', 'ray'] as const;
export type Peer = (typeof PEERS)[number];

/** What each peer's nearest equivalent of a workload is, where it differs from tsparallel's. */
const EQUIVALENTS: Record<Peer, string> = {
  ipyparallel: 'the same calls as tsparallel (views, `apply`, `map`, `execute`, push/pull).',
  dask:
    'no direct view, no `execute`, no push/pull: its "direct" round trip pins the task to one ' +
    'worker, `execute` is `client.run` of a one-line function, push/pull are `scatter` to one ' +
    'worker and `gather` back; the table workload is `map_partitions` on a pandas frame (one ' +
    'partition per batch), and pandas in the driver for the one-process row.',
  ray:
    'no engines to address: both round trips are one task (the driver submits it straight to a ' +
    'worker); `execute` is one tiny task per CPU; push is `ray.put` then a task that uses the ' +
    'value, pull is `ray.get` of a value a task returned (from its shared-memory object store, ' +
    'without a copy); scatter/gather do the same with two halves; "1 engine" for the CPU ' +
    'workload is tasks that each take both CPUs.',
};

/** Median and tail of a workload's samples. */
export interface Stats {
  median: number;
  p90: number;
  p99: number;
  n: number;
}

/** The JSON `npm run bench` writes. */
export interface BenchReport {
  date: string;
  machine: string;
  /** The command line that made it. */
  command: string;
  /** The 1, 5 and 15 minute load averages at the start and the end of the run. */
  load: { start: number[]; end: number[] };
  quick: boolean;
  engines: number;
  workloads: {
    id: string;
    label: string;
    unit: string;
    better: 'higher' | 'lower';
    /** Seconds the workload ran untimed first, on every system (see `Workload`). */
    warmupSeconds?: number;
    tsparallel: Stats;
    /** null: the peer is absent or has no equivalent of the workload. */
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

/** A figure with three significant digits or so. */
export const fmt = (x: number): string =>
  x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toPrecision(2);

function cell3(s: Stats): string {
  return `${fmt(s.median)} (p90 ${fmt(s.p90)}, p99 ${fmt(s.p99)})`;
}

/** The readable table: medians, and for round trips p90 and p99 too. */
export function table(r: BenchReport): string {
  const head = ['workload', 'unit', 'tsparallel', ...PEERS.flatMap((p) => [p, 'ratio'])];
  const blank = PEERS.flatMap(() => ['', '']);
  const rows = r.workloads.map((w) => {
    const cell = (s: Stats | null, peer?: Peer): string =>
      s !== null
        ? w.unit === 'ms' && s.n >= 100
          ? cell3(s)
          : fmt(s.median)
        : peer !== undefined && r.absent[peer] !== undefined
          ? 'absent'
          : '-';
    const x = (v: number | null): string => (v === null ? '-' : `${fmt(v)}×`);
    return [
      w.label,
      w.unit,
      cell(w.tsparallel),
      ...PEERS.flatMap((p) => [cell(w.peers[p], p), x(w.ratio[p])]),
    ];
  });
  const f = r.floor;
  rows.push(
    ['raw ZeroMQ round trip, in-process', 'ms', cell3(f.inProcessMs), ...blank],
    ['raw ZeroMQ round trip, to a process', 'ms', cell3(f.crossProcessMs), ...blank],
    ['raw ZeroMQ 100 MB, one hop', 'MB/s', fmt(f.largeHopMBs.median), ...blank],
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

/** Which workloads ran untimed first, and for how long (none in a run recorded before). */
function warmups(r: BenchReport): string {
  const warmed = r.workloads.filter((w) => w.warmupSeconds);
  if (warmed.length === 0) return '';
  const seconds = [...new Set(warmed.map((w) => w.warmupSeconds))].join(' or ');
  return (
    ` Before its samples, each of ${warmed.map((w) => `“${w.label}”`).join(', ')} ran untimed for ` +
    `${seconds} s on every system (the steady state; the raw ZeroMQ floor drops its first 100 ` +
    'calls).'
  );
}

/** bench/RESULTS.md: how the run was made, on what, under what load, then the table. */
export function markdown(r: BenchReport, chartFile: string): string {
  const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(', ');
  const peers = PEERS.map((p) => {
    const what = r.absent[p] === undefined ? (r.versions[p] ?? '') : `absent (${r.absent[p]})`;
    return `- **${p}** ${what}: ${EQUIVALENTS[p]}`;
  });
  return [
    '# Benchmark results',
    '',
    'Recorded with',
    '',
    '```',
    r.command,
    '```',
    '',
    `on ${r.date}, on ${r.machine}, ${r.engines} engines (workers) per system on 127.0.0.1` +
      `${r.quick ? ', the quick grid' : ''}. Load average (1, 5, 15 min): ${load(r.load.start)} ` +
      `at the start, ${load(r.load.end)} at the end. Medians; ratio: how many times better ` +
      'tsparallel is (above 1, tsparallel is ahead). The figures are in the JSON beside this file.' +
      warmups(r),
    '',
    ...peers,
    '',
    `![tsparallel against each peer, per workload](${chartFile})`,
    '',
    '```',
    table(r),
    '```',
    '',
  ].join('\n');
}

/**
 * The benchmark grid on tsparallel: a local cluster with the grid's engine count, the same
 * workloads bench/peers.py runs on the peers.
 */
import type { Table } from 'apache-arrow';
import type { AsyncResult } from '../client/async-result';
import type { Client } from '../client/client';
import { Cluster } from '../cluster/cluster';
import { dagDeps, ENGINES, type Workload } from './grid';

const MB = 1024 * 1024;
const now = (): number => performance.now();

const tiny = (): number => 1;
const tinyX = (x: number): number => x;

/** Pure CPU: a fixed amount of work, calibrated on this machine to about 50 ms. */
function spin(n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += (i * i) % 7;
  return s;
}

/** Iterations of `spin` that take `ms` here, once the JIT has optimised it as on the engines. */
function calibrate(ms: number): number {
  let n = 100_000;
  for (let round = 0; round < 3; round++) {
    for (; ; n *= 2) {
      const t = now();
      spin(n);
      const took = now() - t;
      if (took > 20) {
        n = Math.round((n * ms) / took);
        break;
      }
    }
  }
  return n;
}

/** The batches workload's work: z = sqrt(x) * y + sin(x), as a one-column table. */
function zColumn(batch: Table): Table {
  // It runs on the engines too, whose namespace has `require` but not this module's imports.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { tableFromArrays } = require('apache-arrow') as typeof import('apache-arrow');
  const x = batch.getChild('x')!.toArray() as Float64Array;
  const y = batch.getChild('y')!.toArray() as Int32Array;
  const z = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) z[i] = Math.sqrt(x[i]) * y[i] + Math.sin(x[i]);
  return tableFromArrays({ z });
}

/** Seconds to compute {@link zColumn} over a table of `rows` rows, in `batches` row batches. */
async function batchesSample(
  rc: Client,
  rows: number,
  batches: number,
  where: 'engines' | 'local',
): Promise<number> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { tableFromArrays } = require('apache-arrow') as typeof import('apache-arrow');
  const table = tableFromArrays({
    x: Float64Array.from({ length: rows }, (_, i) => i / 7),
    y: Int32Array.from({ length: rows }, (_, i) => i % 1000),
  });
  const size = Math.ceil(rows / batches);
  const t = now();
  if (where === 'engines') {
    await rc.loadBalancedView().mapBatches(table, zColumn, { rows: size });
  } else {
    const parts: Table[] = [];
    for (let at = 0; at < rows; at += size) parts.push(zColumn(table.slice(at, at + size)));
    parts[0].concat(...parts.slice(1));
  }
  return (now() - t) / 1000;
}

/** Tasks/s of the graph workload: every task built at once, its dependencies' results as arguments. */
async function graphSample(rc: Client, n: number): Promise<number> {
  const lv = rc.loadBalancedView();
  const node = (...xs: number[]): number => (1 + xs.reduce((a, b) => a + b, 0)) % 1000;
  const t = now();
  const results: AsyncResult<number>[] = [];
  for (let i = 0; i < n; i++) results.push(lv.apply(node, ...dagDeps(i).map((d) => results[d])));
  // All at once, as Dask's `gather` and Ray's `get` of every ref do.
  await Promise.all(results);
  return n / ((now() - t) / 1000);
}

/** Iterations of `spin` that take the CPU workload's `ms`, calibrated at its first sample. */
let spinN: number | undefined;

/** One sample of workload `w`, in its unit. */
async function sample(rc: Client, w: Workload): Promise<number> {
  const p = w.params;
  switch (p.kind) {
    case 'rtt':
      return roundTrip(rc, p.mode, p.lease === true);
    case 'apply': {
      const lv = rc.loadBalancedView().withOptions({ lease: p.lease === true });
      const t = now();
      const ars = Array.from({ length: p.n }, () => lv.apply(tiny));
      for (const ar of ars) await ar;
      return p.n / ((now() - t) / 1000);
    }
    case 'map': {
      const lv = rc.loadBalancedView().withOptions({ chunkSize: p.chunk });
      const xs = Array.from({ length: p.n }, (_, j) => j);
      const t = now();
      await lv.map(tinyX, xs);
      return p.n / ((now() - t) / 1000);
    }
    case 'execute': {
      const t = now();
      await rc.directView().execute('const a = 1;', { silent: true });
      return now() - t;
    }
    case 'push':
    case 'pull':
    case 'scatter':
    case 'gather':
      return transfer(rc, p.kind, p.bytes);
    case 'batches':
      return batchesSample(rc, p.rows, p.batches, p.where);
    case 'graph':
      return graphSample(rc, p.n);
    case 'cpu': {
      spinN ??= calibrate(p.ms);
      const lv = rc.loadBalancedView(Array.from({ length: p.engines }, (_, j) => j));
      await lv.apply(spin, 1000); // compiled and warm before the clock starts
      const t = now();
      await lv.map(spin, new Array<number>(p.tasks).fill(spinN));
      return (now() - t) / 1000;
    }
    case 'coldstart':
      throw new Error('a cold start is sampled on a cluster of its own');
  }
}

/** Runs `workloads` on a fresh tsparallel cluster; samples by workload id. */
export async function runTsparallel(workloads: Workload[]): Promise<Record<string, number[]>> {
  const results: Record<string, number[]> = {};
  let cluster = await Cluster.start({ engines: ENGINES });
  let rc = await cluster.connect();
  try {
    for (const w of workloads) {
      if (w.params.kind === 'coldstart') continue;
      for (const end = now() + (w.warmupSeconds ?? 0) * 1000; now() < end; ) await sample(rc, w);
      const samples: number[] = [];
      for (let i = 0; i < w.reps; i++) samples.push(await sample(rc, w));
      results[w.id] = samples;
      process.stderr.write(`tsparallel: ${w.id} done\n`);
    }
  } finally {
    rc.close();
    await cluster.stop();
  }
  const cold = workloads.find((w) => w.params.kind === 'coldstart');
  if (cold) {
    const samples: number[] = [];
    for (let i = 0; i < cold.reps; i++) {
      const t = now();
      cluster = await Cluster.start({ engines: ENGINES });
      rc = await cluster.connect();
      await rc.directView(0).apply(tiny);
      samples.push((now() - t) / 1000);
      rc.close();
      await cluster.stop();
    }
    results[cold.id] = samples;
  }
  return results;
}

async function roundTrip(rc: Client, mode: 'direct' | 'lb', lease: boolean): Promise<number> {
  const view = mode === 'direct' ? rc.directView(0) : rc.loadBalancedView().withOptions({ lease });
  const t = now();
  await view.apply(tiny);
  return now() - t;
}

/** MB/s of moving a `bytes`-long Float64Array: to and from engine 0, or split over all. */
async function transfer(
  rc: Client,
  kind: 'push' | 'pull' | 'scatter' | 'gather',
  bytes: number,
): Promise<number> {
  const data = new Float64Array(bytes / 8).map((_, i) => i);
  const one = rc.directView(0);
  const all = rc.directView();
  // Something to pull or gather: put it there first, untimed.
  if (kind === 'pull') await one.push({ a: data });
  if (kind === 'gather') await all.scatter('a', data);
  const t = now();
  if (kind === 'push') await one.push({ a: data });
  else if (kind === 'pull') await one.pull('a');
  else if (kind === 'scatter') await all.scatter('a', data);
  else await all.gather('a');
  return bytes / MB / ((now() - t) / 1000);
}

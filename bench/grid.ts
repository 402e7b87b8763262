/**
 * The benchmark grid: every workload each system runs, with its unit and how many repetitions
 * its median is taken over. The Python peers read the same list (as JSON), so the names, sizes
 * and counts cannot drift apart.
 */

/** One workload; `params` says what it does, the same for every system. */
export interface Workload {
  id: string;
  label: string;
  unit: 'ms' | 's' | 'tasks/s' | 'MB/s' | 'x';
  /** Whether a larger figure is better (throughput) or a smaller one (time). */
  better: 'higher' | 'lower';
  /** Repetitions (for latencies: calls) the median is taken over. */
  reps: number;
  params: WorkloadParams;
  /**
   * A path only tsparallel has (leases): the peers do not run it, and their figure is that of
   * workload `peersAs`, the same work done their way.
   */
  peersAs?: string;
  /** Peers with no way to do this work (their figure is left out, not failed). */
  notOn?: readonly ('ipyparallel' | 'dask' | 'ray')[];
  /**
   * Seconds the workload runs untimed before its samples, on every system, as the raw ZeroMQ
   * floor drops its first calls: a latency is measured in the steady state, once code is
   * compiled (tsparallel's round trip takes a few thousand calls, 0.7 ms to 0.4), connections
   * are up and what is cached on first use is.
   */
  warmupSeconds?: number;
}

/** What a workload does. */
export type WorkloadParams =
  | { kind: 'rtt'; mode: 'direct' | 'lb'; lease?: boolean }
  | { kind: 'apply'; n: number; lease?: boolean }
  | { kind: 'map'; n: number; chunk: number }
  | { kind: 'execute' }
  | { kind: 'push' | 'pull' | 'scatter' | 'gather'; bytes: number }
  | { kind: 'cpu'; engines: 1 | 2; tasks: number; ms: number }
  /**
   * A column computed from two over a table of `rows` rows in `batches` row batches: on the
   * engines (tsparallel's `mapBatches`, Dask's `map_partitions` on a pandas frame) or the same
   * work in the benchmark's own process.
   */
  | { kind: 'batches'; rows: number; batches: number; where: 'engines' | 'local' }
  /**
   * A random DAG of `n` tiny tasks built at once, each taking the results of the earlier tasks
   * {@link dagDeps} names as its arguments, then all awaited. ipyparallel has no such graphs.
   */
  | { kind: 'graph'; n: number }
  | { kind: 'coldstart' };

/** Engines (workers) every system runs with. */
export const ENGINES = 2;
const MB = 1024 * 1024;

/**
 * The tasks task `i` of the graph workload takes as arguments: up to 3 earlier ones, spread by a
 * multiplicative hash, so that every system builds the same DAG (bench/peers.py has its twin).
 */
export function dagDeps(i: number): number[] {
  const deps = new Set<number>();
  for (let j = 0; j < i % 4; j++) deps.add((i * 2654435761 + j * 40503) % i);
  return [...deps].sort((a, b) => a - b);
}

/** The full grid, or the `--quick` subset that runs in under a minute. */
export function grid(quick: boolean): Workload[] {
  const w: Workload[] = [];
  const latency = quick ? 100 : 1000;
  const warmupSeconds = quick ? 0.5 : 5;
  for (const mode of ['direct', 'lb'] as const) {
    w.push({
      id: `rtt.${mode}`,
      label: `round trip, ${mode === 'lb' ? 'load-balanced' : 'direct'}`,
      unit: 'ms',
      better: 'lower',
      reps: latency,
      warmupSeconds,
      params: { kind: 'rtt', mode },
    });
  }
  w.push({
    id: 'rtt.lease',
    label: 'round trip, load-balanced, leased',
    unit: 'ms',
    better: 'lower',
    reps: latency,
    warmupSeconds,
    params: { kind: 'rtt', mode: 'lb', lease: true },
    peersAs: 'rtt.lb',
  });
  for (const n of quick ? [500] : [2000, 20000]) {
    const reps = quick ? 1 : n > 2000 ? 1 : 5;
    w.push({
      id: `apply.${n}`,
      label: `${n} tiny lb apply`,
      unit: 'tasks/s',
      better: 'higher',
      reps,
      params: { kind: 'apply', n },
    });
    w.push({
      id: `apply.${n}.lease`,
      label: `${n} tiny lb apply, leased`,
      unit: 'tasks/s',
      better: 'higher',
      reps,
      params: { kind: 'apply', n, lease: true },
      peersAs: `apply.${n}`,
    });
    for (const chunk of quick ? [10] : [1, 10, 100]) {
      w.push({
        id: `map.c${chunk}.${n}`,
        label: `lb map of ${n}, chunk ${chunk}`,
        unit: 'tasks/s',
        better: 'higher',
        reps,
        params: { kind: 'map', n, chunk },
      });
    }
  }
  w.push({
    id: 'execute.all',
    label: 'execute one line on all',
    unit: 'ms',
    better: 'lower',
    reps: quick ? 10 : 100,
    warmupSeconds,
    params: { kind: 'execute' },
  });
  for (const bytes of quick ? [MB] : [MB, 100 * MB]) {
    const size = `${bytes / MB} MB`;
    for (const kind of ['push', 'pull', 'scatter', 'gather'] as const) {
      w.push({
        id: `${kind}.${bytes / MB}MB`,
        label: `${kind} ${size}`,
        unit: 'MB/s',
        better: 'higher',
        reps: quick ? 3 : bytes > MB ? 5 : 20,
        // V8 frees received values only at its collections, so a process's first 100 MB or so
        // of them land in memory new to it, which on a VM costs a host fault per 4 KB page:
        // 1 MB pulls ran at 140-150 MB/s for the first 120, at 560-710 after (one script).
        // A 100 MB value is a mapping of its own, new every time, so no warm-up changes it.
        ...(bytes === MB && { warmupSeconds }),
        params: { kind, bytes },
      });
    }
  }
  if (!quick) {
    for (const engines of [1, 2] as const) {
      w.push({
        id: `cpu.${engines}`,
        label: `40 × 50 ms CPU on ${engines} engine${engines > 1 ? 's' : ''}`,
        unit: 's',
        better: 'lower',
        reps: 3,
        params: { kind: 'cpu', engines, tasks: 40, ms: 50 },
      });
    }
  }
  const tasks = quick ? 1000 : 10_000;
  w.push({
    id: `graph.${tasks}`,
    label: `random DAG of ${tasks} tiny tasks`,
    unit: 'tasks/s',
    better: 'higher',
    // Five, as the 2,000-task rows: the first graph a process builds compiles its code paths, and
    // the median of three would be the slower of two warm runs.
    reps: quick ? 1 : 5,
    params: { kind: 'graph', n: tasks },
    notOn: ['ipyparallel'],
  });
  if (!quick) {
    // ipyparallel has no table operation; Dask's is map_partitions on a pandas frame.
    for (const where of ['engines', 'local'] as const) {
      w.push({
        id: `batches.${where}`,
        label: `2M-row table, 16 batches, ${where === 'local' ? 'in one process' : 'mapBatches'}`,
        unit: 's',
        better: 'lower',
        reps: 5,
        params: { kind: 'batches', rows: 2_000_000, batches: 16, where },
      });
    }
  }
  // A peer's cold start is a second cluster started and stopped: too slow for the quick run.
  if (quick) return w;
  w.push({
    id: 'coldstart',
    label: 'cold start to first result',
    unit: 's',
    better: 'lower',
    reps: 3,
    params: { kind: 'coldstart' },
  });
  return w;
}

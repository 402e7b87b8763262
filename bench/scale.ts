/**
 * Scale without a big machine: 1,000 lightweight engines, 100 to a process, registered with one
 * controller; the engines of a process share its connections to the hub (engine/shared-link.ts). Measures how long registration takes, the controller's CPU at idle (heartbeats
 * only), load-balanced throughput with 1,000 engines against 2 (a cluster of its own, run
 * alongside), and, with `--soak`, the controller's peak memory through a soak of tiny tasks (a
 * million unless told otherwise).
 *
 * Run as `node scale.js host N FILE` it is one of the engine processes: N lightweight engines
 * of the controller whose engine connection file is FILE.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Client } from '../client/client';
import { Cluster, type ClusterState } from '../cluster/cluster';
import { EngineServer } from '../engine/engine-server';
import { stats, type ScaleResults } from './report';

const ENGINES = 1000;
const PER_PROCESS = 100;
/** ipyparallel's heart monitor period; the controller's own default is 1000 ms. */
const HEARTBEAT_MS = 3000;
const IDLE_SECONDS = 10;
const THROUGHPUT_TASKS = 5000;
/**
 * Untimed bursts run first on either side. V8 compiles a process's hot code only once it has run
 * a few thousand tasks, and the 1,000 engines' ten processes each run a tenth of the tasks: their
 * CPU per task fell sevenfold over their first ten bursts, the 2 engines' process's threefold.
 */
const WARM_UP_BURSTS = 10;
/** Timed bursts on either side, whose median rates are the figures. */
const TIMED_BURSTS = 5;
/** Tasks the soak keeps in flight; the client's memory is not what is measured. */
const SOAK_WINDOW = 20_000;

const tiny = (): number => 1;

/** Seconds of CPU (user + system) the process has used. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks of 10 ms
}

/** The process's peak resident memory so far, in MB. */
function peakRssMB(pid: number): number {
  const line = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return line ? Number(line[1]) / 1024 : NaN;
}

/** A cluster with no engines of its own, and the engine processes added to it. */
async function withCluster<T>(
  engines: number,
  body: (rc: Client, controllerPid: number, seconds: number) => Promise<T>,
): Promise<T> {
  const cluster = await Cluster.start({
    engines: 0,
    controller: { heartbeatPeriod: HEARTBEAT_MS },
  });
  const state = JSON.parse(readFileSync(cluster.stateFile, 'utf8')) as ClusterState;
  const hosts: ChildProcess[] = [];
  try {
    const rc = await cluster.connect();
    const started = performance.now();
    for (let left = engines; left > 0; left -= PER_PROCESS) {
      const n = Math.min(PER_PROCESS, left);
      hosts.push(
        spawn(process.execPath, [__filename, 'host', String(n), state.engineFile], {
          stdio: ['pipe', 'ignore', 'inherit'],
        }),
      );
    }
    await rc.waitForEngines(engines, { timeout: 120_000 });
    const seconds = (performance.now() - started) / 1000;
    return await body(rc, state.controllerPid, seconds);
  } finally {
    for (const h of hosts) h.kill();
    await cluster.stop();
  }
}

/** Tiny load-balanced tasks a second over a burst of `THROUGHPUT_TASKS` on `rc`'s engines. */
async function burst(rc: Client): Promise<number> {
  // A machine at load 25 starved a host past the heartbeat deadline: the hub dropped its
  // engines, and their tasks must run again elsewhere rather than fail the scenario.
  const lv = rc.loadBalancedView().withOptions({ retries: 1 });
  const t = performance.now();
  const ars = Array.from({ length: THROUGHPUT_TASKS }, () => lv.apply(tiny));
  for (const ar of ars) await ar;
  return THROUGHPUT_TASKS / ((performance.now() - t) / 1000);
}

/**
 * The tiny-task rates of `many` engines and of `two`, bursts taken on each in turn, so that the
 * load of a shared machine, which swings the rate twofold within a minute, weighs on both alike.
 */
async function compareThroughput(
  many: Client,
  two: Client,
  log: (line: string) => void,
): Promise<{ throughputMany: number; throughputTwo: number }> {
  for (let i = 0; i < WARM_UP_BURSTS; i++) {
    await burst(many);
    await burst(two);
  }
  const rates: { many: number[]; two: number[] } = { many: [], two: [] };
  for (let i = 0; i < TIMED_BURSTS; i++) {
    rates.many.push(await burst(many));
    rates.two.push(await burst(two));
  }
  const list = (r: number[]): string => r.map((x) => x.toFixed(0)).join(', ');
  log(`bursts: ${list(rates.many)} tasks/s with ${ENGINES} engines, ${list(rates.two)} with 2`);
  return { throughputMany: stats(rates.many).median, throughputTwo: stats(rates.two).median };
}

/** Sends `tasks` tiny tasks, `SOAK_WINDOW` in flight; the controller's peak memory through them. */
async function soak(
  rc: Client,
  pid: number,
  tasks: number,
  log: (line: string) => void,
): Promise<NonNullable<ScaleResults['soak']>> {
  const lv = rc.loadBalancedView();
  const t = performance.now();
  for (let sent = 0; sent < tasks; sent += SOAK_WINDOW) {
    const ars = Array.from({ length: Math.min(SOAK_WINDOW, tasks - sent) }, () => lv.apply(tiny));
    for (const ar of ars) await ar;
    log(`soak: ${sent + ars.length} tasks, controller peak ${peakRssMB(pid).toFixed(0)} MB`);
  }
  return { tasks, seconds: (performance.now() - t) / 1000, peakRssMB: peakRssMB(pid) };
}

/** Runs the scenario; the soak of `soakTasks` only when asked, as it takes many minutes. */
export async function runScale(soakTasks: number | null): Promise<ScaleResults> {
  const log = (line: string): boolean => process.stderr.write(`scale: ${line}\n`);
  const many = await withCluster(ENGINES, async (rc, pid, registrationSeconds) => {
    log(`${ENGINES} engines registered in ${registrationSeconds.toFixed(1)} s`);
    await new Promise((resolve) => setTimeout(resolve, 2 * HEARTBEAT_MS));
    const before = cpuSeconds(pid);
    await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
    const idleCpuPercent = ((cpuSeconds(pid) - before) / IDLE_SECONDS) * 100;
    log(`controller CPU at idle ${idleCpuPercent.toFixed(1)}%`);
    const rates = await withCluster(2, (two) => compareThroughput(rc, two, log));
    log(
      `medians: ${rates.throughputMany.toFixed(0)} tasks/s with ${ENGINES} engines, ` +
        `${rates.throughputTwo.toFixed(0)} with 2`,
    );
    const soakResult = soakTasks === null ? null : await soak(rc, pid, soakTasks, log);
    return { registrationSeconds, idleCpuPercent, ...rates, soak: soakResult };
  });
  return {
    engines: ENGINES,
    processes: Math.ceil(ENGINES / PER_PROCESS),
    heartbeatPeriodMs: HEARTBEAT_MS,
    ...many,
  };
}

/** An engine process of the scenario: `n` lightweight engines; ends when its stdin closes. */
async function host(n: number, connectionFile: string): Promise<void> {
  process.stdin.on('end', () => process.exit(0)).resume();
  const log = (line: string): void => {
    if (/stopping|ignores|dropped|failed/.test(line)) process.stderr.write(`[engine] ${line}\n`);
  };
  await Promise.all(
    Array.from({ length: n }, () =>
      EngineServer.start({
        connectionFile,
        registrationTimeout: 60_000,
        hubTimeout: 60_000,
        log,
        lightweight: true,
      }),
    ),
  );
}

if (require.main === module && process.argv[2] === 'host') {
  void host(Number(process.argv[3]), process.argv[4]);
}

// `node dist/bench/scale.js soak N [ENGINES]`: the soak alone, on ENGINES engines (default 2),
// which runs a million tasks in minutes rather than the hour it takes among 1,000 engines.
if (require.main === module && process.argv[2] === 'soak') {
  const log = (line: string): boolean => process.stderr.write(`scale: ${line}\n`);
  void withCluster(Number(process.argv[4] ?? 2), (rc, pid) =>
    soak(rc, pid, Number(process.argv[3]), log),
  ).then((r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  });
}

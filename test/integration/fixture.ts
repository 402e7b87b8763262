/**
 * Real clusters for integration tests: a controller and engines as processes on 127.0.0.1 with
 * ephemeral ports, fast heartbeats, and files under a temporary TSPARALLEL_DIR.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Client, type ResultRecord } from '../../client/client';
import { Cluster, type ControllerSettings } from '../../cluster/cluster';
import { CLI, isAlive } from '../../cluster/launchers/launcher';
import { Session } from '../../protocol/session';

export { isAlive };

setFlagsFromString('--expose-gc');
/** Collects this process's garbage now, so that what was dropped is finalized. */
export const gc = runInNewContext('gc') as () => void;

/**
 * Counts the bytes this process's sockets receive while `run` runs, batched or not (each
 * received ZeroMQ message passes `Session.unbatch`); `run` reads the count so far.
 */
export async function countingReceived<T>(run: (received: () => number) => Promise<T>): Promise<T> {
  let bytes = 0;
  const unbatch = Session.prototype.unbatch;
  Session.prototype.unbatch = function (this: Session, frames, replays) {
    bytes += frames.reduce((n, f) => n + f.length, 0);
    return unbatch.call(this, frames, replays);
  };
  try {
    return await run(() => bytes);
  } finally {
    Session.prototype.unbatch = unbatch;
  }
}

/** Runs the `tsparallel` command to its end. */
export function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

if (process.env.TSPARALLEL_DIR === undefined) {
  const dir = mkdtempSync(join(tmpdir(), 'tsparallel-test-'));
  process.env.TSPARALLEL_DIR = dir;
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
}

/** Heartbeats fast enough that a dead engine is noticed well within a test's time. */
export const FAST_HEARTBEAT: ControllerSettings = { heartbeatPeriod: 100, heartbeatDeadline: 1500 };

export interface TestCluster {
  cluster: Cluster;
  rc: Client;
}

/** Starts a cluster before the suite's tests and stops it after them. */
export function useCluster(engines: number, controller: ControllerSettings = {}): TestCluster {
  const t = {} as TestCluster;
  before(async function () {
    this.timeout(30_000);
    t.cluster = await Cluster.start({ engines, controller: { ...FAST_HEARTBEAT, ...controller } });
    t.rc = await t.cluster.connect();
  });
  after(async function () {
    this.timeout(30_000);
    t.rc?.close();
    await t.cluster?.stop();
  });
  return t;
}

/** Resolves once `condition()` holds (or resolves true); fails with `what` after `ms`. */
export async function until(
  condition: () => boolean | Promise<boolean>,
  what: string,
  ms = 10_000,
  every = 10,
): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/**
 * The hub's record of `msgId` once it is final. A direct task's reply reaches its client before
 * the hub, which catches up: a record read at once may still say running.
 */
export async function finalRecord(rc: Client, msgId: string): Promise<ResultRecord> {
  let r: ResultRecord | undefined;
  await until(async () => {
    r = await rc.result(msgId);
    return r.state !== 'pending' && r.state !== 'running';
  }, `the hub's record of ${msgId} to be final`);
  return r as ResultRecord;
}

/**
 * What the reliability suites did, printed once after all suites: faults injected, tasks
 * submitted under faults or load, tasks that ended with neither a result nor an error (must be
 * 0), and malformed messages thrown at sockets.
 */
export const figures = { faultsInjected: 0, tasksSubmitted: 0, tasksLost: 0, fuzzCases: 0 };

after(() => {
  if (Object.values(figures).some((n) => n > 0)) {
    console.log(`reliability figures: ${JSON.stringify(figures)}`);
  }
});

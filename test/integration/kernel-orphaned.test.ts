/**
 * A kernel whose Jupyter parent is killed outright (`kill -9`) ends, and takes the cluster it
 * started with it: the kernel, the controller and the engines all exit, and the cluster's state
 * file is gone (the kernel stopped it; it was not merely left to die). The parent is a real
 * jupyter_client KernelManager, then a real `jupyter lab` (the project's `.venv-lab`, which
 * `npm test` makes) that started the kernel by its REST API.
 * And a kernel killed outright leaves none of its cluster behind.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { isAlive, until } from './fixture';
import { LAB_VENV } from '../../labextension/host/lab';
import { installKernel, PYTHON, ROOT, run, type KernelEnv } from './kernel-fixture';

const START_CLUSTER = join(ROOT, 'test', 'kernel', 'start-cluster.py');

/** What start-cluster.py reports once the kernel's cluster runs. */
interface Started {
  kernel: number;
  controller: number;
  engines: number[];
  stateFile: string;
}

/** The first line `child` prints; rejects with its stderr if it exits first. */
function firstLine(child: ChildProcess): Promise<string> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`exited with ${code} first:\n${stderr}`)));
  });
}

/** A port free on loopback now, for a server that takes its port as a flag. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Kills `parent` with SIGKILL and waits for the kernel and its cluster to be gone, and for the
 * cluster's state file too unless the kernel was stuck and could not stop the cluster.
 */
async function killAndWatch(parent: ChildProcess, started: Started, stuck = false): Promise<void> {
  const pids = [started.kernel, started.controller, ...started.engines];
  assert.equal(pids.length, 4);
  assert.ok(pids.every(isAlive), 'all running before the kill');
  assert.ok(existsSync(started.stateFile));
  parent.kill('SIGKILL');
  await until(
    () => !pids.some(isAlive) && (stuck || !existsSync(started.stateFile)),
    'the kernel, controller and engines to exit and the cluster to be stopped',
    30_000,
    50,
  );
}

describe('a kernel whose Jupyter parent is killed with kill -9', function () {
  this.timeout(180_000);
  let k: KernelEnv;
  const children: ChildProcess[] = [];
  let started: Started | undefined;

  before(async () => (k = await installKernel()));
  afterEach(() => {
    // What a failed test leaves running must not outlive it.
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
    if (started) {
      for (const pid of [started.kernel, started.controller, ...started.engines]) {
        if (isAlive(pid)) process.kill(pid, 'SIGKILL');
      }
    }
    started = undefined;
  });
  after(() => k?.cleanup());

  it('ends with its cluster when the parent is a jupyter_client KernelManager', async () => {
    const manager = spawn(PYTHON, [START_CLUSTER], { env: k.env, cwd: k.dir });
    children.push(manager);
    started = JSON.parse(await firstLine(manager)) as Started;
    await killAndWatch(manager, started);
  });

  /** Starts a kernel and its cluster from a KernelManager, which then runs `busy` in it. */
  const startBusy = async (busy: string): Promise<ChildProcess> => {
    const manager = spawn(PYTHON, [START_CLUSTER, '--busy', busy], { env: k.env, cwd: k.dir });
    children.push(manager);
    started = JSON.parse(await firstLine(manager)) as Started;
    return manager;
  };

  it('ends with its cluster while a cell spins in a loop (it interrupts the cell)', async () => {
    const manager = await startBusy('console.log("spinning"); while (true) {}');
    await killAndWatch(manager, started!);
  });

  it('ends, and its cluster with it, while a cell blocks where no interrupt reaches', async () => {
    const manager = await startBusy(
      'console.log("blocking"); require("child_process").execSync("sleep 60")',
    );
    await killAndWatch(manager, started!, true);
  });

  it('leaves no controller or engines when the kernel itself is killed with kill -9', async () => {
    const manager = spawn(PYTHON, [START_CLUSTER], { env: k.env, cwd: k.dir });
    children.push(manager);
    started = JSON.parse(await firstLine(manager)) as Started;
    const cluster = [started.controller, ...started.engines];
    process.kill(started.kernel, 'SIGKILL');
    // They watch the kernel themselves: the controller its stdin, the engines their parent pid.
    await until(() => !cluster.some(isAlive), 'the controller and engines to exit', 20_000, 50);
  });

  it('ends with its cluster when the parent is jupyter lab, which started it by REST', async () => {
    const command = [join(LAB_VENV, 'bin', 'jupyter-lab')];
    const port = await freePort();
    const token = randomBytes(16).toString('hex');
    const server = spawn(
      command[0],
      [
        ...command.slice(1),
        '--ServerApp.ip=127.0.0.1',
        `--ServerApp.port=${port}`,
        '--ServerApp.port_retries=0',
        `--ServerApp.token=${token}`,
        '--ServerApp.open_browser=False',
        // This machine's tests run as root, which Jupyter refuses unless told.
        '--allow-root',
        `--ServerApp.root_dir=${k.dir}`,
      ],
      { env: { ...k.env, JUPYTER_CONFIG_DIR: join(k.dir, 'config') }, stdio: 'ignore' },
    );
    children.push(server);
    const api = async (path: string, init: RequestInit = {}): Promise<Response> => {
      const headers = { Authorization: `token ${token}`, 'Content-Type': 'application/json' };
      return fetch(`http://127.0.0.1:${port}/api/${path}`, { ...init, headers });
    };
    const deadline = performance.now() + 60_000;
    for (;;) {
      assert.equal(server.exitCode, null, 'the Jupyter server exited at start');
      assert.ok(performance.now() < deadline, 'the Jupyter server did not answer in 60 s');
      const up = await api('status').then(
        (r) => r.ok,
        () => false,
      );
      if (up) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const created = await api('kernels', {
      method: 'POST',
      body: JSON.stringify({ name: 'tsparallel' }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    const { id } = (await created.json()) as { id: string };
    const connectionFile = join(k.env.JUPYTER_RUNTIME_DIR as string, `kernel-${id}.json`);
    started = JSON.parse(
      await run(PYTHON, [START_CLUSTER, connectionFile], { env: k.env, cwd: k.dir }),
    ) as Started;
    await killAndWatch(server, started);
  });
});

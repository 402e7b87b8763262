/**
 * Starts the JupyterLab host (`labextension/host/`: JupyterLab from npm packages, served by a
 * `LabServerApp` subclass on Debian's jupyterlab_server) with the tsparallel kernelspec and the
 * cluster panel installed into a Jupyter data folder of its own, listening on 127.0.0.1 only.
 * `npm run lab` runs this file; the browser test calls {@link startLabHost}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { installKernelSpec, installLabExtension, KERNEL_NAME } from '../kernel-ext/install';
import { delay, waitForExit } from './launchers/launcher';

/** The host's folder in the source tree. */
export const LAB_HOST_DIR = resolve(__dirname, '..', '..', 'labextension', 'host');

/** Debian's Python, the one that has jupyter_server and jupyterlab_server. */
const PYTHON = '/usr/bin/python3';

/** How long the server gets to write its info file, and to exit once asked to. */
const START_TIMEOUT = 60_000;
const STOP_GRACE = 20_000;

/** Where and what to serve. */
export interface LabHostOptions {
  /** The folder the file browser shows and notebooks are saved in; default: the current one. */
  rootDir?: string;
  /** Environment for the server and the kernels it starts (e.g. `TSPARALLEL_DIR`). */
  env?: NodeJS.ProcessEnv;
}

/** A running host. */
export interface LabHost {
  /** The page to open, with the login token. */
  url: string;
  /** The server's address without a path, e.g. `http://127.0.0.1:8888`. */
  origin: string;
  /** The server's log file (its stdout and stderr). */
  log: string;
  /** Stops the server (which shuts down its kernels) and removes the host's state folder. */
  stop(): Promise<void>;
  /** Resolves with the server's output if it exits without `stop()`. */
  died: Promise<string>;
}

/** What jupyter_server writes to `jpserver-PID.json` in its runtime folder once it listens. */
interface ServerInfo {
  port: number;
  token: string;
  base_url: string;
}

function serverInfo(runtimeDir: string, pid: number): ServerInfo | undefined {
  const name = `jpserver-${pid}.json`;
  if (!readdirSync(runtimeDir).includes(name)) return undefined;
  try {
    return JSON.parse(readFileSync(join(runtimeDir, name), 'utf8')) as ServerInfo;
  } catch {
    return undefined; // being written
  }
}

/**
 * Installs the kernelspec and the built panel into a fresh state folder, starts the server and
 * resolves once it listens. Fails fast, naming the log, when the server exits first.
 * @example const lab = await startLabHost(); console.log(lab.url); await lab.stop();
 */
export async function startLabHost(options: LabHostOptions = {}): Promise<LabHost> {
  const state = mkdtempSync(join(tmpdir(), 'tsp-lab-'));
  try {
    installKernelSpec({ prefix: state });
    installLabExtension({ prefix: state });
  } catch (e) {
    rmSync(state, { recursive: true, force: true });
    throw e;
  }
  const data = join(state, 'share', 'jupyter');
  const runtime = join(state, 'runtime');
  mkdirSync(runtime, { mode: 0o700 });
  const log = join(state, 'server.log');
  const logFd = openSync(log, 'a');
  // Set here, on the command line, so that no Jupyter config file can turn it off.
  const token = randomBytes(24).toString('hex');
  let child: ChildProcess;
  try {
    child = spawn(
      PYTHON,
      [
        join(LAB_HOST_DIR, 'tsparallel_lab.py'),
        '--ServerApp.ip=127.0.0.1',
        `--ServerApp.token=${token}`,
        '--ServerApp.open_browser=False',
        // CI containers run as root; the server refuses that without this.
        ...(process.getuid?.() === 0 ? ['--ServerApp.allow_root=True'] : []),
        `--ServerApp.root_dir=${resolve(options.rootDir ?? process.cwd())}`,
        `--TsparallelLab.labextensions_path=${join(data, 'labextensions')}`,
        `--TsparallelLab.user_settings_dir=${join(state, 'user-settings')}`,
        `--TsparallelLab.workspaces_dir=${join(state, 'workspaces')}`,
        // Only our kernel: a new notebook starts on it without asking.
        `--KernelSpecManager.allowed_kernelspecs=${KERNEL_NAME}`,
        `--MappingKernelManager.default_kernel_name=${KERNEL_NAME}`,
      ],
      {
        env: {
          ...process.env,
          ...options.env,
          // Jupyter finds the kernelspec here and keeps its config, data and runtime files
          // here rather than in the user's folders.
          JUPYTER_PATH: data,
          JUPYTER_DATA_DIR: data,
          JUPYTER_CONFIG_DIR: join(state, 'config'),
          JUPYTER_RUNTIME_DIR: runtime,
          PYTHONWARNINGS: 'ignore',
        },
        stdio: ['ignore', logFd, logFd],
        // Its own process group: a Ctrl-C in the terminal reaches only us, and we stop it.
        detached: true,
      },
    );
  } finally {
    closeSync(logFd);
  }
  let stopping = false;
  const stop = async (): Promise<void> => {
    stopping = true;
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill('SIGTERM');
      await waitForExit(child.pid, STOP_GRACE).catch(async () => {
        child.kill('SIGKILL');
        await waitForExit(child.pid as number, STOP_GRACE);
      });
    }
    rmSync(state, { recursive: true, force: true });
  };
  const died = new Promise<string>((resolve) =>
    child.once('exit', () => {
      if (!stopping) resolve(readFileSync(log, 'utf8'));
    }),
  );
  const deadline = performance.now() + START_TIMEOUT;
  for (;;) {
    const info = child.pid === undefined ? undefined : serverInfo(runtime, child.pid);
    if (info) {
      if (info.token !== token) {
        await stop();
        throw new Error('The JupyterLab server ignored the token it was given; it was stopped');
      }
      const origin = `http://127.0.0.1:${info.port}`;
      const url = `${origin}${info.base_url}lab?token=${info.token}`;
      return { url, origin, log, stop, died };
    }
    const failure =
      child.exitCode !== null || child.signalCode !== null
        ? `exited (${child.exitCode ?? child.signalCode}) before it listened`
        : performance.now() > deadline
          ? `did not listen within ${START_TIMEOUT} ms`
          : undefined;
    if (failure) {
      const output = readFileSync(log, 'utf8');
      await stop();
      throw new Error(`The JupyterLab server ${failure}; its output:\n${output}`);
    }
    await delay(50);
  }
}

/** `npm run lab`: serve until Ctrl-C. */
async function main(): Promise<void> {
  const lab = await startLabHost();
  console.log(`JupyterLab with the tsparallel kernel and panel: ${lab.url}`);
  console.log('Press Ctrl-C to stop.');
  const shutdown = (): void => {
    console.log('Stopping JupyterLab and its kernels...');
    lab.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        console.error(e);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  const output = await lab.died;
  console.error(`The JupyterLab server exited by itself; its output:\n${output}`);
  await lab.stop();
  process.exit(1);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}

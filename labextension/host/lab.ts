/**
 * Starts JupyterLab from the checkout's Python environment (`.venv-lab/`, made by
 * `.ci/lab-venv`) with the tsparallel kernelspec and the built panel installed into it, on
 * 127.0.0.1 with a fresh token. Jupyter's config, data, runtime and settings folders are a
 * state folder of its own, so the user's Jupyter setup neither changes it nor is changed.
 * `npm run lab` runs this file; the browser test calls {@link startLab}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { delay, waitForExit } from '../../cluster/launchers/launcher';
import { installKernelSpec, installLabExtension, KERNEL_NAME } from '../../kernel-ext/install';

/** The Python environment with JupyterLab that `.ci/lab-venv` makes. */
export const LAB_VENV = resolve(__dirname, '..', '..', '..', '.venv-lab');

/** How long the server gets to write its info file, and to exit once asked to. */
const START_TIMEOUT = 60_000;
const STOP_GRACE = 20_000;

/** Where and what to serve. */
export interface LabOptions {
  /** The folder the file browser shows and notebooks are saved in; default: the current one. */
  rootDir?: string;
  /** Environment for the server and the kernels it starts (e.g. `TSPARALLEL_DIR`). */
  env?: NodeJS.ProcessEnv;
  /** The Python environment with JupyterLab; default {@link LAB_VENV}. */
  venv?: string;
}

/** A running JupyterLab. */
export interface Lab {
  /** The page to open, with the login token. */
  url: string;
  /** The server's address without a path, e.g. `http://127.0.0.1:8888`. */
  origin: string;
  /** The server's log file (its stdout and stderr). */
  log: string;
  /** Stops the server (which shuts down its kernels and terminals) and removes its state folder. */
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
 * Installs the kernelspec and the built panel into the environment (as `--sys-prefix` does),
 * starts `jupyter lab` and resolves once it listens. Fails fast, naming the log, when the
 * server exits first.
 * @example const lab = await startLab(); console.log(lab.url); await lab.stop();
 */
export async function startLab(options: LabOptions = {}): Promise<Lab> {
  const venv = options.venv ?? LAB_VENV;
  const jupyter = join(venv, 'bin', 'jupyter');
  if (!existsSync(jupyter)) {
    throw new Error(`no JupyterLab in ${venv}: .ci/lab-venv makes it (npm run lab runs it)`);
  }
  installKernelSpec({ prefix: venv });
  installLabExtension({ prefix: venv });
  const state = mkdtempSync(join(tmpdir(), 'tsp-lab-'));
  const runtime = join(state, 'runtime');
  mkdirSync(runtime, { mode: 0o700 });
  const log = join(state, 'server.log');
  const logFd = openSync(log, 'a');
  // Nor does the page ask whether to fetch news (its question would cover part of the page).
  const news = join(
    state,
    'settings',
    '@jupyterlab',
    'apputils-extension',
    'notification.jupyterlab-settings',
  );
  mkdirSync(dirname(news), { recursive: true });
  writeFileSync(news, JSON.stringify({ fetchNews: 'false' }));
  // No debugger: no kernel of this lab has one, and JupyterLab's debugger (4.6) then throws "No
  // active debugger session" in the page after each cell, asking the kernel for its modules.
  const pageConfig = join(state, 'config', 'labconfig', 'page_config.json');
  mkdirSync(dirname(pageConfig), { recursive: true });
  writeFileSync(
    pageConfig,
    JSON.stringify({ disabledExtensions: { '@jupyterlab/debugger-extension': true } }),
  );
  // Set here, on the command line, so that no Jupyter config file can turn it off.
  const token = randomBytes(24).toString('hex');
  const rootDir = resolve(options.rootDir ?? process.cwd());
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...options.env,
    // The environment's tools (pip, python) first in the lab's terminals.
    PATH: `${join(venv, 'bin')}:${options.env?.PATH ?? process.env.PATH}`,
    JUPYTER_CONFIG_DIR: join(state, 'config'),
    JUPYTER_DATA_DIR: join(state, 'data'),
    JUPYTER_RUNTIME_DIR: runtime,
    JUPYTERLAB_SETTINGS_DIR: join(state, 'settings'),
    JUPYTERLAB_WORKSPACES_DIR: join(state, 'workspaces'),
    PYTHONWARNINGS: 'ignore',
  };
  delete env.JUPYTER_PATH;
  let child: ChildProcess;
  try {
    child = spawn(
      jupyter,
      [
        'lab',
        '--ServerApp.ip=127.0.0.1',
        `--IdentityProvider.token=${token}`,
        '--ServerApp.open_browser=False',
        // CI containers run as root; the server refuses that without this.
        ...(process.getuid?.() === 0 ? ['--ServerApp.allow_root=True'] : []),
        `--ServerApp.root_dir=${rootDir}`,
        // Only our kernel: the launcher offers it alone, and a new notebook starts on it.
        `--KernelSpecManager.allowed_kernelspecs=${KERNEL_NAME}`,
        `--MappingKernelManager.default_kernel_name=${KERNEL_NAME}`,
        // No news fetched: the lab may have no internet.
        '--LabApp.news_url=None',
        // `window.jupyterapp`: the browser tests drive the application through it.
        '--LabApp.expose_app_in_browser=True',
      ],
      {
        env,
        // Where terminals open.
        cwd: rootDir,
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
        throw new Error('JupyterLab ignored the token it was given; it was stopped');
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
      throw new Error(`JupyterLab ${failure}; its output:\n${output}`);
    }
    await delay(50);
  }
}

/** `npm run lab`: serve until Ctrl-C. */
async function main(): Promise<void> {
  const lab = await startLab();
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
  console.error(`JupyterLab exited by itself; its output:\n${output}`);
  await lab.stop();
  process.exit(1);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}

/**
 * Puts tsparallel where Jupyter finds it: the kernelspec that makes Jupyter offer "TypeScript
 * (tsparallel)" (a `kernel.json` whose argv runs this package's kernel with the connection file
 * Jupyter passes), and the prebuilt JupyterLab extension with the cluster panel.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { RECEIVER_TUNABLES } from '../protocol/shared-memory';

/** The kernelspec's name, the folder under `kernels/`. */
export const KERNEL_NAME = 'tsparallel';

/** The lab extension's name, the folder under `labextensions/`. */
const LAB_EXTENSION_NAME = 'tsparallel';

/** The package's root, where package.json is (this file runs from dist/kernel-ext/). */
const PACKAGE_ROOT = resolve(__dirname, '..', '..');

/** Where `npm run build:labextension` writes the prebuilt extension. */
const LAB_EXTENSION_BUILD = join(PACKAGE_ROOT, 'labextension', 'build');

/**
 * Which Jupyter data directory to install into: the user's (the default), `PREFIX/share/jupyter`,
 * or `sys.prefix/share/jupyter` of the `python3` on PATH (the environment Jupyter runs in).
 */
export interface InstallPlace {
  prefix?: string;
  sysPrefix?: boolean;
}

/** Jupyter's per-user data directory, as `jupyter --data-dir` reports it. */
function userDataDir(): string {
  if (process.env.JUPYTER_DATA_DIR) return process.env.JUPYTER_DATA_DIR;
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Jupyter');
  if (process.platform === 'win32') return join(process.env.APPDATA ?? homedir(), 'jupyter');
  return join(process.env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'jupyter');
}

function dataDir(where: InstallPlace): string {
  if (where.prefix !== undefined) return join(resolve(where.prefix), 'share', 'jupyter');
  if (where.sysPrefix) return join(pythonPrefix(), 'share', 'jupyter');
  return userDataDir();
}

/** `sys.prefix` of the `python3` on PATH, as `jupyter ... --sys-prefix` uses it. */
function pythonPrefix(): string {
  try {
    return execFileSync('python3', ['-c', 'import sys; print(sys.prefix)'], {
      encoding: 'utf8',
    }).trim();
  } catch (e) {
    throw new Error(
      '--sys-prefix needs the python3 of the Jupyter environment on PATH; activate it, or give --prefix.',
      { cause: e },
    );
  }
}

/**
 * Installs the kernelspec for the user (the default), under `prefix`
 * (`PREFIX/share/jupyter/kernels/tsparallel`) or under Python's `sys.prefix`; returns the
 * folder written.
 * @example installKernelSpec({ prefix: '/opt/venv' });
 */
export function installKernelSpec(where: InstallPlace = {}): string {
  const dir = join(dataDir(where), 'kernels', KERNEL_NAME);
  mkdirSync(dir, { recursive: true });
  const spec = {
    argv: [process.execPath, join(__dirname, 'main.js'), '{connection_file}'],
    display_name: 'TypeScript (tsparallel)',
    language: 'typescript',
    // Jupyter interrupts with SIGINT, which breaks a busy TypeScript loop as well.
    interrupt_mode: 'signal',
    metadata: { debugger: false },
    // The kernel is a notebook's client: large values it receives land in memory that earlier
    // ones left, or in huge pages, as on engines the local launcher starts.
    env: { GLIBC_TUNABLES: RECEIVER_TUNABLES.join(':') },
  };
  writeFileSync(join(dir, 'kernel.json'), JSON.stringify(spec, null, 2) + '\n');
  return dir;
}

/** Whether the prebuilt extension is there: its manifest, with what the builder adds to it. */
function labExtensionBuilt(): boolean {
  const manifest = join(LAB_EXTENSION_BUILD, 'package.json');
  return (
    existsSync(manifest) &&
    (JSON.parse(readFileSync(manifest, 'utf8')) as { jupyterlab?: { _build?: unknown } }).jupyterlab
      ?._build !== undefined
  );
}

/**
 * Builds the extension in a git checkout, which has its sources but not its build (the npm
 * package ships the build and not the sources). The builder's output goes to stderr.
 */
function buildLabExtension(): void {
  if (!existsSync(join(PACKAGE_ROOT, 'labextension', 'src'))) {
    throw new Error(
      `the lab extension is missing from ${LAB_EXTENSION_BUILD}; reinstall the tsparallel package.`,
    );
  }
  process.stderr.write(
    `building the lab extension in ${PACKAGE_ROOT} (npm run build:labextension)\n`,
  );
  try {
    execFileSync('npm', ['run', 'build:labextension', '--silent'], {
      cwd: PACKAGE_ROOT,
      stdio: ['ignore', 2, 2],
    });
  } catch (e) {
    throw new Error(
      `building the lab extension failed (see above); run npm install in ${PACKAGE_ROOT}, then this again.`,
      { cause: e },
    );
  }
}

/**
 * Copies the prebuilt lab extension to `labextensions/tsparallel/` of the Jupyter data
 * directory `where` names, replacing an older copy whole (its bundle names change with each
 * build); returns the folder written. In a git checkout where the extension is not built yet it
 * builds it first, which blocks for a minute or so.
 * @example installLabExtension({ sysPrefix: true });
 */
export function installLabExtension(where: InstallPlace = {}): string {
  if (!labExtensionBuilt()) buildLabExtension();
  const dir = join(dataDir(where), 'labextensions', LAB_EXTENSION_NAME);
  rmSync(dir, { recursive: true, force: true });
  cpSync(LAB_EXTENSION_BUILD, dir, { recursive: true });
  return dir;
}

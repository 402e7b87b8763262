/**
 * Writes the kernelspec that makes Jupyter offer "TypeScript (tsparallel)": a `kernel.json`
 * whose argv runs this package's kernel with the connection file Jupyter passes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** The kernelspec's name, the folder under `kernels/`. */
export const KERNEL_NAME = 'tsparallel';

/** Jupyter's per-user data directory, as `jupyter --data-dir` reports it. */
function userDataDir(): string {
  if (process.env.JUPYTER_DATA_DIR) return process.env.JUPYTER_DATA_DIR;
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Jupyter');
  if (process.platform === 'win32') return join(process.env.APPDATA ?? homedir(), 'jupyter');
  return join(process.env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'jupyter');
}

/**
 * Installs the kernelspec for the user (the default) or under `prefix`
 * (`PREFIX/share/jupyter/kernels/tsparallel`); returns the folder written.
 * @example installKernelSpec({ prefix: '/opt/venv' });
 */
export function installKernelSpec(where: { prefix?: string } = {}): string {
  const dataDir =
    where.prefix === undefined ? userDataDir() : join(resolve(where.prefix), 'share', 'jupyter');
  const dir = join(dataDir, 'kernels', KERNEL_NAME);
  mkdirSync(dir, { recursive: true });
  const spec = {
    argv: [process.execPath, join(__dirname, 'main.js'), '{connection_file}'],
    display_name: 'TypeScript (tsparallel)',
    language: 'typescript',
    // Jupyter interrupts with SIGINT, which breaks a busy TypeScript loop as well.
    interrupt_mode: 'signal',
    metadata: { debugger: false },
  };
  writeFileSync(join(dir, 'kernel.json'), JSON.stringify(spec, null, 2) + '\n');
  return dir;
}

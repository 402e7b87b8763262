/**
 * For the kernel's tests: the kernelspec installed by `tsparallel kernel install` into a temp
 * prefix that Jupyter is pointed at, a temp TSPARALLEL_DIR, and a way to run Debian's Python
 * (`/usr/bin/python3`, which has jupyter_client, nbconvert and jupyter_kernel_test).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The compiled repository root (dist/), and the source tree's root. */
export const DIST = resolve(__dirname, '..', '..');
export const ROOT = resolve(DIST, '..');
export const PYTHON = '/usr/bin/python3';

/** An installed kernelspec and the environment Jupyter tools need to find it. */
export interface KernelEnv {
  env: NodeJS.ProcessEnv;
  dir: string;
  cleanup(): void;
}

/** Installs the kernelspec with the CLI into a fresh temp prefix. */
export async function installKernel(): Promise<KernelEnv> {
  const dir = mkdtempSync(join(tmpdir(), 'tsp-kernel-'));
  await run(process.execPath, [join(DIST, 'cli', 'main.js'), 'kernel', 'install', '--prefix', dir]);
  const env = {
    ...process.env,
    JUPYTER_PATH: join(dir, 'share', 'jupyter'),
    // Jupyter's runtime files (connection files) and ours stay inside the temp folder.
    JUPYTER_RUNTIME_DIR: join(dir, 'runtime'),
    TSPARALLEL_DIR: join(dir, 'tsparallel'),
    PYTHONWARNINGS: 'ignore',
  };
  return { env, dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs a program; resolves with its stdout, rejects with its stderr if it fails. */
export function run(
  file: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {},
): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      file,
      args,
      { env: options.env, cwd: options.cwd, maxBuffer: 64 * 1024 * 1024, timeout: 600_000 },
      (error, stdout, stderr) => {
        if (error)
          reject(new Error(`${file} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
        else resolvePromise(stdout);
      },
    );
    child.stdin?.end(options.input ?? '');
  });
}

/** A message the kernel published, as the driver reports it: [msg_type, content]. */
export type IopubMessage = [string, Record<string, unknown>];

/** What the driver reports for an execute step. */
export interface Executed {
  reply: { status: string; ename?: string; evalue?: string; execution_count: number };
  iopub: IopubMessage[];
}

/** Runs `steps` through test/kernel/drive.py against the installed kernel. */
export async function drive(k: KernelEnv, steps: object[], cwd = k.dir): Promise<unknown[]> {
  const out = await run(PYTHON, [join(ROOT, 'test', 'kernel', 'drive.py')], {
    env: k.env,
    input: JSON.stringify(steps),
    cwd,
  });
  return JSON.parse(out) as unknown[];
}

/** The text of the stream messages of one execution. */
export function streamText(e: Executed, name = 'stdout'): string {
  return e.iopub
    .filter(([t, c]) => t === 'stream' && c.name === name)
    .map(([, c]) => String(c.text))
    .join('');
}

/** The messages of one type. */
export function ofType(e: Executed, type: string): Record<string, unknown>[] {
  return e.iopub.filter(([t]) => t === type).map(([, c]) => c);
}

/** A notebook's multi-line strings, which nbformat may keep as lists of lines. */
type Lines = string | string[];
export interface NotebookCell {
  cell_type: string;
  source: Lines;
  outputs?: { output_type: string; text?: Lines; data?: Record<string, Lines> }[];
}
export const joined = (l: Lines | undefined): string => (Array.isArray(l) ? l.join('') : (l ?? ''));

/**
 * Runs `examples/<name>` as a newcomer runs it, `jupyter nbconvert --to notebook --execute` on
 * the installed kernelspec, saved as `out` in the kernel's folder; resolves with its code cells.
 */
export async function executeExample(
  k: KernelEnv,
  name: string,
  out: string,
): Promise<NotebookCell[]> {
  const saved = join(k.dir, out);
  await run(
    PYTHON,
    [
      '-m',
      'nbconvert',
      '--to',
      'notebook',
      '--execute',
      '--ExecutePreprocessor.timeout=300',
      join(ROOT, 'examples', name),
      '--output',
      saved,
    ],
    { env: k.env, cwd: join(ROOT, 'examples') },
  );
  const { cells } = JSON.parse(readFileSync(saved, 'utf8')) as { cells: NotebookCell[] };
  return cells.filter((c) => c.cell_type === 'code');
}

/**
 * For a suite on an example notebook: installs the kernel and runs `examples/<name>` `times`
 * times before the suite's tests (the runs share one install, and so one TSPARALLEL_DIR and
 * result cache), cleans up after them, and checks that no cell of any run ended in an error.
 * Returns the suite's way to a cell: the code cell of run `run` whose source starts with `start`.
 */
export function useExample(name: string, times = 1): (start: string, run?: number) => NotebookCell {
  const runs: NotebookCell[][] = [];
  let k: KernelEnv | undefined;
  before(async () => {
    k = await installKernel();
    for (let i = 0; i < times; i++) {
      runs.push(await executeExample(k, name, name.replace(/\.ipynb$/, `.out${i}.ipynb`)));
    }
  });
  after(() => k?.cleanup());
  it('ran every cell without an error output', () => {
    for (const c of runs.flat()) {
      const failed = (c.outputs ?? []).some((o) => o.output_type === 'error');
      if (failed) throw new Error(`the cell failed: ${joined(c.source)}`);
    }
  });
  return (start, run = 0) => cellStarting(runs[run], start);
}

/** The cell of `cells` whose source starts with `start`; fails the test when there is none. */
export function cellStarting(cells: NotebookCell[], start: string): NotebookCell {
  const found = cells.find((c) => joined(c.source).startsWith(start));
  if (!found) throw new Error(`no cell starting ${start}`);
  return found;
}

/** A cell's outputs as text, one output per line (a progress display ends where output starts). */
export const outputText = (c: NotebookCell): string =>
  (c.outputs ?? []).map((o) => joined(o.text ?? o.data?.['text/plain'])).join('\n');

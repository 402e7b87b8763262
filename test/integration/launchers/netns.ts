/**
 * Runs a scenario script in a network namespace of its own, whose only interface is loopback.
 * `mpiexec` (Open MPI 4) listens on every interface and offers no option against it; in the
 * namespace, every interface is loopback. The scenario prints one JSON line of what it saw.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

/** Runs `dist/test/integration/launchers/<name>.js` under `unshare --net`; resolves with its report. */
export async function runIsolated<T>(name: string, timeout: number): Promise<T> {
  const script = join(__dirname, `${name}.js`);
  const child = spawn(
    'unshare',
    ['--net', 'sh', '-c', 'ip link set lo up && exec "$0" "$1"', process.execPath, script],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  const last = stdout.trim().split('\n').pop() ?? '';
  if (status !== 0 || !last.startsWith('{')) {
    throw new Error(`scenario ${name} failed (status ${status}):\n${stdout}\n${stderr}`);
  }
  return JSON.parse(last) as T;
}

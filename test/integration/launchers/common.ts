/** What the launcher tests share. */
import { createServer } from 'node:net';
import type { ControllerSettings } from '../../../cluster/cluster';

/**
 * Fast beats with a forgiving deadline: these tests stop engines through the controller, never
 * by their silence, and a machine running several suites at once can hold up a starting
 * engine's first beat for seconds (FAST_HEARTBEAT's 600 ms then drops it).
 */
export const LAUNCHER_HEARTBEAT: ControllerSettings = {
  heartbeatPeriod: 100,
  heartbeatDeadline: 10_000,
};

/** A TCP port on 127.0.0.1 that nothing listens on now, for a server the test starts next. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A task for `map(heldUntil, xs, paths)`: holds its engine until the file `path` exists, then
 * gives `x` back. A test that needs engines busy writes the file when it has seen what it needs.
 */
export async function heldUntil(x: number, path: string): Promise<number> {
  const { existsSync } = await import('node:fs');
  while (!existsSync(path)) await new Promise((r) => setTimeout(r, 20));
  return x;
}

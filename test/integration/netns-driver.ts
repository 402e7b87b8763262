/**
 * The client side of the cross-host test, run inside the controller's network namespace (the
 * test process cannot enter one). Usage: `node netns-driver.js CLIENT_FILE LINK PID_A PID_B`.
 * Prints one JSON line with what it saw; exits non-zero on any failure.
 */
import { execFileSync } from 'node:child_process';
import { Client } from '../../client/client';
import type { ClientEvent } from '../../client/client';

async function pidAfter(ms: number): Promise<number> {
  await new Promise((r) => setTimeout(r, ms));
  return process.pid;
}

async function main(): Promise<void> {
  const [file, link, pidA, pidB] = process.argv.slice(2);
  const rc = await Client.connect({ connectionFile: file, timeout: 30_000 });
  const events = rc.events()[Symbol.asyncIterator]();
  const next = async (want: (e: ClientEvent) => boolean): Promise<ClientEvent> => {
    for (;;) {
      const { value, done } = await events.next();
      if (done) throw new Error('the client closed');
      if (want(value)) return value;
    }
  };
  await rc.waitForEngines(2, { timeout: 60_000 });
  const lv = rc.loadBalancedView();
  const pids = new Set(await lv.map(pidAfter, Array(20).fill(50)));
  const idA = rc.engineInfo.find((e) => String(e.pid) === pidA)?.id;
  if (idA === undefined) throw new Error(`engine process ${pidA} is not registered`);

  // One slow task on each engine, then cut engine A off: its task must move to engine B.
  const retried = lv.withOptions({ retries: 1 });
  const slow = [retried.apply(pidAfter, 3000), retried.apply(pidAfter, 3000)];
  while ((await rc.queueStatus())[idA]?.queue !== 1) await new Promise((r) => setTimeout(r, 20));
  execFileSync('ip', ['link', 'set', link, 'down']);
  const dropped = await next((e) => e.type === 'engine:unregister' && e.id === idA);
  const ranOn = await Promise.all(slow);

  // Reconnected, engine A is told it was dropped and registers again, under a new id.
  execFileSync('ip', ['link', 'set', link, 'up']);
  const back = await next((e) => e.type === 'engine:register' && String(e.engine.pid) === pidA);
  const newId = back.type === 'engine:register' ? back.engine.id : -1;
  const [again] = await rc.directView(newId).apply(() => process.pid);
  process.stdout.write(
    JSON.stringify({
      pidsBefore: [...pids].sort(),
      droppedReason: dropped.type === 'engine:unregister' ? dropped.reason : '',
      ranOn,
      idA,
      newId,
      again,
      expected: [pidA, pidB].map(Number),
    }) + '\n',
  );
  rc.close();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`netns driver: ${(e as Error).stack}\n`);
    process.exit(1);
  },
);

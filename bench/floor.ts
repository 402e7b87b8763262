/**
 * The floor: what the `zeromq` package itself allows, with no protocol on top. A DEALER sends
 * a tiny message to a ROUTER that echoes it back, in this process and to another Node process;
 * and a large message goes one hop to another process, which acknowledges it.
 *
 * Run as `node floor.js echo` it is that other process: it prints its endpoint and echoes.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as zmq from 'zeromq';

const TINY = Buffer.from('x');
const ACK_AT = 1024;

/** Echoes tiny messages; acknowledges large ones with a tiny one. */
async function echo(router: zmq.Router): Promise<void> {
  for await (const [id, msg] of router) {
    await router.send([id, msg.length > ACK_AT ? TINY : msg]);
  }
}

async function roundTrips(dealer: zmq.Dealer, calls: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < calls + 100; i++) {
    const t = performance.now();
    await dealer.send(TINY);
    await dealer.receive();
    if (i >= 100) samples.push(performance.now() - t); // the first 100 warm up
  }
  return samples;
}

/** Round-trip samples (ms) in-process and across processes, and MB/s of one large hop. */
export async function zmqFloor(
  calls: number,
  bytes: number,
  reps: number,
): Promise<{ inProcess: number[]; crossProcess: number[]; largeHop: number[] }> {
  const router = new zmq.Router({ linger: 0 });
  await router.bind('tcp://127.0.0.1:*');
  void echo(router);
  const local = new zmq.Dealer({ linger: 0 });
  local.connect(router.lastEndpoint as string);
  const inProcess = await roundTrips(local, calls);
  local.close();
  router.close();

  // The echo process ends when its stdin closes, so it cannot outlive this one.
  const child = spawn(process.execPath, [__filename, 'echo'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  try {
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    const remote = new zmq.Dealer({ linger: 0 });
    remote.connect(line.toString().trim());
    const crossProcess = await roundTrips(remote, calls);
    const large = Buffer.alloc(bytes, 1);
    const largeHop: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t = performance.now();
      await remote.send(large);
      await remote.receive();
      largeHop.push(bytes / 1024 / 1024 / ((performance.now() - t) / 1000));
    }
    remote.close();
    return { inProcess, crossProcess, largeHop };
  } finally {
    child.kill();
  }
}

if (require.main === module && process.argv[2] === 'echo') {
  void (async () => {
    const router = new zmq.Router({ linger: 0 });
    await router.bind('tcp://127.0.0.1:*');
    process.stdin.on('end', () => process.exit(0)).resume();
    process.stdout.write(`${router.lastEndpoint}\n`);
    await echo(router);
  })();
}

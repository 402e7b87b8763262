/**
 * The main job (`npm start`): estimates π by Monte-Carlo sampling on a local cluster with one
 * engine per core, once through a direct view and once through a load-balanced view.
 */
import { Cluster } from '../index';

const SAMPLES_PER_ENGINE = 20_000_000;
const TASKS = 40;
const SAMPLES_PER_TASK = 1_000_000;

/** Runs on the engines: counts random points that fall inside the unit quarter circle. */
function countInside(samples: number): number {
  let inside = 0;
  for (let i = 0; i < samples; i++) {
    const x = Math.random();
    const y = Math.random();
    if (x * x + y * y <= 1) inside++;
  }
  return inside;
}

async function main(): Promise<void> {
  const started = performance.now();
  const cluster = await Cluster.start();
  try {
    const rc = await cluster.connect();
    const dv = rc.directView();
    console.log(`cluster up with engines ${rc.ids.join(', ')} in ${seconds(started)} s`);

    // Direct view: every engine samples, and says how it went.
    await dv.execute(`const host: string = require('node:os').hostname();`);
    await dv.push({ countInside });
    const direct = dv.apply((samples: number) => {
      const inside = countInside(samples);
      console.log(`${samples} samples on ${host}, pid ${process.pid}: ${inside} inside`);
      return inside;
    }, SAMPLES_PER_ENGINE);
    const inside = await direct;
    direct.stdout.forEach((out, i) => process.stdout.write(`[stdout:${rc.ids[i]}] ${out}`));
    const directPi = (4 * inside.reduce((a, b) => a + b, 0)) / (SAMPLES_PER_ENGINE * inside.length);

    // Load-balanced view: many small tasks, each placed on whichever engine is free.
    const lv = rc.loadBalancedView();
    const balanced = lv.map(
      (samples: number) => countInside(samples),
      Array(TASKS).fill(SAMPLES_PER_TASK),
    );
    const counts = await balanced;
    const perEngine = new Map<number, number>();
    for (const id of balanced.engineIds)
      perEngine.set(id ?? -1, (perEngine.get(id ?? -1) ?? 0) + 1);
    const balancedPi = (4 * counts.reduce((a, b) => a + b, 0)) / (TASKS * SAMPLES_PER_TASK);

    console.log(
      `direct view:         π ≈ ${directPi.toFixed(5)} from ${inside.length} engines in ${direct.wallTime.toFixed(2)} s`,
    );
    console.log(
      `load-balanced view:  π ≈ ${balancedPi.toFixed(5)} from ${TASKS} tasks in ${balanced.elapsed.toFixed(2)} s ` +
        `(${[...perEngine].map(([id, n]) => `engine ${id}: ${n}`).join(', ')})`,
    );
    console.log(
      `timing: engines busy ${balanced.serialTime.toFixed(2)} s in ${balanced.wallTime.toFixed(2)} s wall, ` +
        `speedup ${(balanced.serialTime / balanced.wallTime).toFixed(2)}x; total ${seconds(started)} s`,
    );
    rc.close();
  } finally {
    await cluster.stop();
  }
}

function seconds(since: number): string {
  return ((performance.now() - since) / 1000).toFixed(2);
}

declare const host: string;

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

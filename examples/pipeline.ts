/**
 * A small ETL graph, built at once and then awaited (`node dist/examples/pipeline.js`): each
 * shard of readings is extracted and cleaned on an engine, the cleaned shards are summed up by
 * one task that takes them all as arguments, and an actor keeps a histogram of them. Pending
 * results are the arguments of the next tasks, so the shards (8 MB each) go from engine to engine
 * and never through this process, which awaits only the small answers.
 */
import { Cluster } from '../index';

const SHARDS = 4;
const READINGS = 1_000_000;
/** Readings above this are sensor faults, dropped by the cleaning step. */
const FAULTY = 90;

/** Extract: one shard of readings, as a sensor file would give them. */
function extract(shard: number, readings: number): Float64Array {
  const out = new Float64Array(readings);
  for (let j = 0; j < readings; j++) out[j] = ((shard * 1_000_003 + j * 7919) % 10_007) / 100;
  return out;
}

/** Transform: the readings without the faulty ones. */
function clean(readings: Float64Array, faulty: number): Float64Array {
  return readings.filter((r) => r <= faulty);
}

/** Load: what the cleaned shards add up to. */
function summarise(...shards: Float64Array[]): { count: number; mean: number; max: number } {
  let count = 0;
  let sum = 0;
  let max = -Infinity;
  for (const shard of shards) {
    for (const r of shard) {
      sum += r;
      max = Math.max(max, r);
    }
    count += shard.length;
  }
  return { count, mean: sum / count, max };
}

/** An actor: a histogram that lives on one engine and grows with every shard given to it. */
class Histogram {
  bins: number[];
  constructor(readonly width: number) {
    this.bins = [];
  }
  add(readings: Float64Array): number {
    for (const r of readings) {
      const bin = Math.floor(r / this.width);
      this.bins[bin] = (this.bins[bin] ?? 0) + 1;
    }
    return this.bins.reduce((a, b) => a + b, 0);
  }
  fullest(): { from: number; count: number } {
    const count = Math.max(...this.bins);
    return { from: this.bins.indexOf(count) * this.width, count };
  }
}

async function main(): Promise<void> {
  const cluster = await Cluster.start();
  try {
    const rc = await cluster.connect();
    const lv = rc.loadBalancedView();
    const started = performance.now();

    // The whole graph first: nothing below waits for an engine.
    const raw = Array.from({ length: SHARDS }, (_, s) => lv.apply(extract, s, READINGS));
    const cleaned = raw.map((shard) => lv.apply(clean, shard, FAULTY));
    const summary = lv.apply(summarise, ...cleaned);
    const histogram = await lv.actor(Histogram, 10);
    const added = cleaned.map((shard) => histogram.add(shard));

    const { count, mean, max } = await summary;
    console.log(
      `${SHARDS} shards of ${READINGS} readings: kept ${count}, mean ${mean.toFixed(3)}, ` +
        `max ${max.toFixed(2)}`,
    );
    await Promise.all(added);
    const { from, count: inBin } = await histogram.fullest();
    console.log(
      `histogram on engine ${histogram.engineId}: fullest bin ${from}–${from + 10} with ${inBin}`,
    );
    const heap = (process.memoryUsage().arrayBuffers / 2 ** 20).toFixed(0);
    console.log(
      `graph of ${SHARDS * 2 + 1} tasks and ${SHARDS + 1} actor calls in ` +
        `${((performance.now() - started) / 1000).toFixed(2)} s; this process holds ${heap} MB ` +
        `of array buffers (the shards stayed on the engines)`,
    );
    await histogram.release();
    rc.close();
  } finally {
    await cluster.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

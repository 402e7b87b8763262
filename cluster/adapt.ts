/**
 * Adaptive scaling, as Dask's `Adaptive`: poll the controller's queue, grow the cluster while
 * load-balanced tasks wait for an engine, and stop engines that have stayed idle for a while.
 * The policy is here; starting and stopping engines is the cluster's (through its launcher).
 */
import type { QueueCounts } from '../protocol/messages';
import {
  defineOptions,
  integer,
  nonNegative,
  resolveOptions,
  type Kind,
  type Resolved,
  type SpecsOf,
} from '../options/schema';

const countOrInfinity: Kind<number> = {
  ...integer(0),
  expected: 'an integer >= 0 or Infinity',
  allows: (v) => v === Infinity || (Number.isInteger(v) && v >= 0),
};

/**
 * What `cluster.adapt` can be told.
 * @example cluster.adapt({ minimum: 1, maximum: 8, wait: 10_000 })
 */
export interface AdaptOptions {
  /** Engines kept however idle the cluster is; default 0. */
  minimum?: number;
  /** Engines never exceeded however much work waits; default `Infinity`. */
  maximum?: number;
  /** Milliseconds between looks at the queue; default 1000. */
  interval?: number;
  /** Milliseconds an engine stays idle before it is stopped; default 3 intervals. */
  wait?: number;
}

/** `AdaptOptions`' schema. */
const adaptOptions = defineOptions(
  'adapt',
  {
    minimum: { kind: integer(0), default: 0, help: 'engines kept however idle the cluster is' },
    maximum: {
      kind: countOrInfinity,
      default: Infinity,
      help: 'engines never exceeded however much work waits (default: no limit)',
    },
    interval: {
      kind: nonNegative('<ms>'),
      default: 1000,
      help: 'milliseconds between looks at the queue',
    },
    wait: {
      kind: nonNegative('<ms>'),
      default: (o: Readonly<Record<string, unknown>>) => 3 * (o.interval as number),
      help: 'milliseconds an engine stays idle before it is stopped (default 3 intervals, as Dask)',
    },
  } satisfies SpecsOf<AdaptOptions>,
  (o: { minimum: number; maximum: number }, name) =>
    o.maximum < o.minimum
      ? `adapt option ${name('maximum')} must be an integer >= minimum (${o.minimum}), got ${o.maximum}`
      : undefined,
);

/** What the policy drives: the queue it reads and the cluster it resizes. */
export interface AdaptTarget {
  queueStatus(): Promise<{ [engineId: number]: QueueCounts; unassigned: number }>;
  /** Grows the cluster to `n` engines. */
  resize(n: number): Promise<void>;
  /** Stops these engines. */
  retire(ids: number[]): Promise<void>;
}

/** One scaling decision: grow to `grow` engines, or stop `retire`. */
export type AdaptDecision = { grow: number } | { retire: number[] } | null;

/**
 * Decides one step from a queue status. Wanted engines: one per engine busy now plus one per
 * task waiting for an engine, within `minimum..maximum`. Engines that have been idle since
 * before `now - wait` (by `idleSince`, which this updates) are stopped, newest first, down to
 * the wanted count.
 */
export function decide(
  status: { [engineId: number]: QueueCounts; unassigned: number },
  idleSince: Map<number, number>,
  now: number,
  options: Resolved<typeof adaptOptions.specs>,
): AdaptDecision {
  const ids = Object.keys(status)
    .filter((k) => k !== 'unassigned')
    .map(Number);
  const busy = ids.filter((id) => status[id].queue > 0);
  for (const id of [...idleSince.keys()]) if (!ids.includes(id)) idleSince.delete(id);
  for (const id of ids) {
    if (busy.includes(id)) idleSince.delete(id);
    else if (!idleSince.has(id)) idleSince.set(id, now);
  }
  const wanted = Math.min(
    options.maximum,
    Math.max(options.minimum, busy.length + status.unassigned),
  );
  if (wanted > ids.length) return { grow: wanted };
  const idle = ids
    .filter((id) => now - (idleSince.get(id) ?? now) >= options.wait)
    .sort((a, b) => b - a)
    .slice(0, ids.length - wanted);
  return idle.length > 0 ? { retire: idle } : null;
}

/** A running adaptive policy; `stop()` ends it. See the file's comment. */
export class Adaptive {
  private readonly options: Resolved<typeof adaptOptions.specs>;
  private readonly idleSince = new Map<number, number>();
  private stopped = false;
  private wake: (() => void) | undefined;
  private readonly loop: Promise<void>;
  /** The last error a step met; the policy keeps going and tries again at the next interval. */
  lastError: Error | undefined;

  constructor(
    private readonly target: AdaptTarget,
    options: AdaptOptions,
  ) {
    this.options = resolveOptions(adaptOptions, options);
    this.loop = this.run();
  }

  /** Ends the policy; resolves once a step under way has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const decision = decide(
          await this.target.queueStatus(),
          this.idleSince,
          performance.now(),
          this.options,
        );
        if (decision && 'grow' in decision) await this.target.resize(decision.grow);
        else if (decision) await this.target.retire(decision.retire);
        this.lastError = undefined;
      } catch (e) {
        this.lastError = e as Error;
      }
      if (this.stopped) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, this.options.interval).unref();
      });
    }
  }
}

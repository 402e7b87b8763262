/**
 * Adaptive scaling, as Dask's `Adaptive`: poll the controller's queue, grow the cluster while
 * load-balanced tasks wait for an engine, and stop engines that have stayed idle for a while.
 * The policy is here; starting and stopping engines is the cluster's (through its launcher).
 */
import type { QueueCounts } from '../protocol/messages';
import { checkOptionNames } from './launchers/launcher';

/** What `cluster.adapt` can be told. */
export interface AdaptOptions {
  /** Engines kept however idle the cluster is (default 0). */
  minimum?: number;
  /** Engines never exceeded however much work waits (default: no limit). */
  maximum?: number;
  /** Milliseconds between looks at the queue (default 1000). */
  interval?: number;
  /** Milliseconds an engine stays idle before it is stopped (default 3 intervals, as Dask). */
  wait?: number;
}

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
  options: Required<AdaptOptions>,
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
  private readonly options: Required<AdaptOptions>;
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
    const interval = options.interval ?? 1000;
    this.options = {
      minimum: options.minimum ?? 0,
      maximum: options.maximum ?? Infinity,
      interval,
      wait: options.wait ?? 3 * interval,
    };
    checkAdaptOptions(this.options, options);
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

function checkAdaptOptions(o: Required<AdaptOptions>, given: AdaptOptions): void {
  checkOptionNames('adapt', given, ['minimum', 'maximum', 'interval', 'wait']);
  if (!Number.isInteger(o.minimum) || o.minimum < 0) {
    throw new RangeError(`adapt minimum must be an integer >= 0, got ${o.minimum}`);
  }
  if (o.maximum !== Infinity && (!Number.isInteger(o.maximum) || o.maximum < o.minimum)) {
    throw new RangeError(
      `adapt maximum must be an integer >= minimum (${o.minimum}), got ${o.maximum}`,
    );
  }
  for (const k of ['interval', 'wait'] as const) {
    if (!(o[k] >= 0)) throw new RangeError(`adapt ${k} must be milliseconds >= 0, got ${o[k]}`);
  }
}

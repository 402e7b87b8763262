/**
 * Running code on the engines for `%px`, `%%px` and `%autopx`, and showing what they do in the
 * cell as ipyparallel does: `[stdout:0] ...` as it arrives, rich display data as display
 * outputs, `Out[0:3]: ...` for results, `[2:execute] TypeError: ...` with the engine's stack for
 * errors, and a progress line, updated in place, once a blocking cell runs a while.
 */
import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import type { AsyncResult, ExecuteReply, TaskOutput } from '../client/async-result';
import type { Client } from '../client/client';
import { CompositeError, RemoteError, type ConditionName } from '../protocol/errors';
import { pickTargets, MagicUsageError, type PxOptions } from './magic-options';
import type { CellError, Outlet } from './tslab';

/** What a cell ends with when it failed, and whether its error output is out already. */
export type Failure = CellError & { shown: boolean };

/** A `%px` run: its tasks and the engines, in task order. */
export interface PxRun {
  ar: AsyncResult<ExecuteReply[]>;
  engines: number[];
  /** Outputs in arrival order across engines, for `--group-outputs order`. */
  arrivals: { task: number; output: TaskOutput }[];
}

/** Sends `code` to the engines `options.targets` picks. */
export function submitPx(client: Client, code: string, options: PxOptions): PxRun {
  const engines = pickTargets(options.targets, client.ids);
  if (engines.length === 0) {
    throw new MagicUsageError(
      `--targets ${options.targets} picks no engine; live engines: ${client.ids.join(', ') || 'none'}.`,
    );
  }
  const ar = client.directView(engines).execute(code);
  const run: PxRun = { ar, engines, arrivals: [] };
  ar.onOutput((output, task) => run.arrivals.push({ task, output }));
  return run;
}

/** `[stdout:0] ` before every line of a chunk of engine output. */
function prefixed(name: string, engine: number, text: string): string {
  const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
  return (
    lines.map((l) => `[${name}:${engine}] ${l}`).join('\n') + (text.endsWith('\n') ? '\n' : '')
  );
}

function showOutput(out: Outlet, engine: number, o: TaskOutput, count: number): void {
  switch (o.type) {
    case 'stream':
      out.stream(o.name, prefixed(o.name, engine, o.text));
      break;
    case 'display_data':
      out.publish('display_data', { data: o.data, metadata: { engine }, transient: {} });
      break;
    case 'execute_result': {
      const data = {
        ...o.data,
        'text/plain': `Out[${engine}:${o.executionCount}]: ${o.data['text/plain'] ?? ''}`,
      };
      out.publish('execute_result', { execution_count: count, data, metadata: { engine } });
    }
  }
}

/** The run's errors, one per failed task, as the cell shows them. */
function cellErrors(run: PxRun, error: unknown): CellError[] {
  const errors = error instanceof CompositeError ? error.errors : [error as Error];
  const failed = run.ar.metadata.flatMap((m, i) => (m.status === 'error' ? [i] : []));
  return errors.map((e, k) => {
    const engine = e instanceof RemoteError ? e.engineId : run.engines[failed[k] ?? 0];
    const [first, ...rest] = e instanceof RemoteError ? e.traceback : [`${e.name}: ${e.message}`];
    const ename = e instanceof RemoteError ? e.ename : e.name;
    const evalue = e instanceof RemoteError ? e.evalue : e.message;
    return {
      ename,
      evalue,
      traceback: [`[${engine}:execute] ${first ?? `${ename}: ${evalue}`}`, ...rest],
    };
  });
}

/** How long an interrupted cell waits for the signal to end its tasks before aborting them. */
const SIGNAL_GRACE_MS = 3000;
/** How long a stopped cell waits for its tasks to end before it gives up on them. */
const STOP_WAIT_MS = 10_000;

/** A line such as `3/4 engines done, 12.0 s`, in one display updated in place. */
class ProgressLine {
  private readonly id = `tsparallel-progress-${randomUUID()}`;
  private shown = false;
  constructor(
    private readonly out: Outlet,
    private readonly ar: AsyncResult<unknown>,
  ) {}
  show(): void {
    const text = `${this.ar.progress}/${this.ar.length} engines done, ${this.ar.elapsed.toFixed(1)} s`;
    this.out.publish(this.shown ? 'update_display_data' : 'display_data', {
      data: { 'text/plain': text },
      metadata: {},
      transient: { display_id: this.id },
    });
    this.shown = true;
  }
  get visible(): boolean {
    return this.shown;
  }
}

/**
 * `%%px --data`: the latest data each engine published, `[data:0] { step: 3 }`, one display per
 * engine updated in place as more arrives.
 */
class DataLines {
  private readonly latest = new Map<number, unknown>();
  private readonly shown = new Map<number, string>();
  constructor(private readonly out: Outlet) {}
  /** Keeps `data` as `engine`'s latest; shows it now when `live`. */
  take(engine: number, data: unknown, live: boolean): void {
    this.latest.set(engine, data);
    if (live) this.show(engine);
  }
  /** Shows each engine's latest data where it is not shown yet. */
  showAll(): void {
    for (const engine of [...this.latest.keys()].sort((a, b) => a - b)) {
      if (!this.shown.has(engine)) this.show(engine);
    }
  }
  private show(engine: number): void {
    const id = this.shown.get(engine) ?? `tsparallel-data-${randomUUID()}`;
    const text = `[data:${engine}] ${inspect(this.latest.get(engine), { depth: 4, breakLength: 100 })}`;
    this.out.publish(this.shown.has(engine) ? 'update_display_data' : 'display_data', {
      data: { 'text/plain': text },
      metadata: { engine },
      transient: { display_id: id },
    });
    this.shown.set(engine, id);
  }
}

/**
 * Waits for a blocking run and shows it. Resolves with the errors to report (empty when all went
 * well). `interrupted` aborts the wait: the engines get `options.signalOnInterrupt`.
 */
export async function showPx(
  client: Client,
  run: PxRun,
  options: PxOptions,
  out: Outlet,
  count: number,
  interrupted: AbortSignal,
): Promise<CellError[]> {
  const { ar, engines } = run;
  const shownLive = new Set<TaskOutput>();
  if (options.stream) {
    ar.onOutput((o, task) => {
      if (o.type === 'execute_result') return;
      shownLive.add(o);
      showOutput(out, engines[task], o, count);
    });
  }
  const data = options.data ? new DataLines(out) : undefined;
  if (data) ar.onData((value, engine) => data.take(engine, value, options.stream));
  const progress = new ProgressLine(out, ar);
  let ticker: NodeJS.Timeout | undefined;
  const startProgress = setTimeout(() => {
    progress.show();
    ticker = setInterval(() => progress.show(), 1000);
  }, options.progressAfter * 1000);
  let stopped: CellError | undefined;
  try {
    const ended = await Promise.race([
      ar
        .wait(options.timeout === undefined ? undefined : options.timeout * 1000)
        .then((done) => (done ? 'done' : 'timeout')),
      new Promise<'interrupted'>((resolve) => {
        if (interrupted.aborted) resolve('interrupted');
        interrupted.addEventListener('abort', () => resolve('interrupted'), { once: true });
      }),
    ]);
    if (ended !== 'done') stopped = await stop(client, run, options, ended);
  } finally {
    clearTimeout(startProgress);
    clearInterval(ticker);
  }
  if (progress.visible) progress.show();
  const outputs = grouped(run, options).filter(({ output }) => !shownLive.has(output));
  for (const { task, output } of outputs) showOutput(out, engines[task], output, count);
  data?.showAll();
  let errors: CellError[] = [];
  if (ar.ready()) {
    try {
      await ar;
    } catch (e) {
      errors = cellErrors(run, e);
    }
  }
  if (!stopped) return errors;
  // The aborted tasks' own errors would only repeat what the timeout says.
  const aborted: ConditionName = 'TaskAbortedError';
  return [...errors.filter((e) => e.ename !== aborted), stopped];
}

/** Stops a run that was interrupted or timed out, so that its engines are free again. */
async function stop(
  client: Client,
  run: PxRun,
  options: PxOptions,
  why: 'timeout' | 'interrupted',
): Promise<CellError> {
  const running = run.engines.filter((_, i) => run.ar.metadata[i].status === 'pending');
  if (why === 'interrupted') {
    await client.sendSignal(options.signalOnInterrupt, running);
    // A signal reaches an engine that has not started its task yet in vain; aborting by message
    // id stops such a task whenever it arrives, and does nothing to tasks the signal ended.
    if (!(await run.ar.wait(SIGNAL_GRACE_MS))) await run.ar.abort();
  } else {
    await run.ar.abort();
  }
  // The engines answer at once when the code stops; a cell that ignores both is left running.
  await run.ar.wait(STOP_WAIT_MS);
  const engines = `engine${running.length === 1 ? '' : 's'} ${running.join(', ')}`;
  const [ename, evalue]: [ConditionName, string] =
    why === 'interrupted'
      ? [
          'InterruptedError',
          `the cell was interrupted; ${engines} got ${options.signalOnInterrupt}`,
        ]
      : [
          'TimeoutError',
          `${engines} did not finish within --timeout ${options.timeout} s; ` +
            "the cell's tasks were stopped, so the engines are free again",
        ];
  return { ename, evalue, traceback: [`${ename}: ${evalue}`] };
}

/** The run's outputs in the order `--group-outputs` asks for. */
function grouped(run: PxRun, options: PxOptions): { task: number; output: TaskOutput }[] {
  const all = run.arrivals;
  const rank = (o: TaskOutput): number =>
    o.type === 'stream' ? (o.name === 'stdout' ? 0 : 1) : o.type === 'display_data' ? 2 : 3;
  const byEngine = (a: { task: number }, b: { task: number }): number => a.task - b.task;
  switch (options.groupOutputs) {
    case 'order':
      // Results come last in every grouping, as the cell's value does in a notebook.
      return [...all].sort(
        (a, b) =>
          Number(a.output.type === 'execute_result') - Number(b.output.type === 'execute_result'),
      );
    case 'engine':
      return [...all].sort(
        (a, b) =>
          byEngine(a, b) ||
          Number(a.output.type === 'execute_result') - Number(b.output.type === 'execute_result'),
      );
    case 'type':
      return [...all].sort((a, b) => rank(a.output) - rank(b.output) || byEngine(a, b));
  }
}

/** Shows each engine's error; the cell fails with the first, or with all when several failed. */
export function showErrors(errors: CellError[], out: Outlet): Failure | undefined {
  for (const e of errors) out.publish('error', errorContent(e));
  if (errors.length === 0) return undefined;
  const first = errors[0];
  return errors.length === 1
    ? { ...first, shown: true }
    : {
        ename: CompositeError.name,
        evalue: `${errors.length} engines failed; see above`,
        traceback: [],
        shown: true,
      };
}

/** A cell error as the `error` message carries it. */
export function errorContent(e: CellError): CellError {
  return { ename: e.ename, evalue: e.evalue, traceback: e.traceback };
}

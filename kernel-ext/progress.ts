/**
 * Progress bars for what a notebook cell awaits. The client tells of every unfinished result a
 * caller begins to await (`resultAwaited`); while a TypeScript cell runs, each one it awaits
 * for longer than a second gets a bar in the cell (done/total, per engine), one display updated
 * in place, and a last update when it ends. (Interrupting the cell aborts them: cell-tasks.ts.)
 */
import { randomUUID } from 'node:crypto';
import type { AsyncResult, AwaitedResult } from '../client/async-result';
import type { Outlet } from './tslab';

/** How long a cell awaits a result before its bar appears. */
export const PROGRESS_AFTER_MS = 1000;
/** How often a visible bar is redrawn (each redraw is one IOPub message). */
const REDRAW_MS = 500;
const BAR_WIDTH = 30;

/** One awaited result of the running cell, and its bar once shown. */
interface Watched {
  readonly result: AsyncResult<unknown>;
  readonly progress: boolean;
  readonly displayId: string;
  shown: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** See the file's comment. One per kernel; cells run one at a time. */
export class ProgressBars {
  private cell: { out: Outlet; watched: Map<AsyncResult<unknown>, Watched> } | undefined;

  constructor(private readonly after = PROGRESS_AFTER_MS) {}

  /** A TypeScript cell starts; what it awaits from now on is watched, its bars go to `out`. */
  begin(out: Outlet): void {
    this.end();
    this.cell = { out, watched: new Map() };
  }

  /** The cell ended: each bar shows where its result stands, and is not redrawn again. */
  end(): void {
    const cell = this.cell;
    this.cell = undefined;
    if (cell) for (const w of cell.watched.values()) this.settle(w, cell.out);
  }

  /** Called for each result code begins to await; only those of a running cell are watched. */
  watch({ result, progress }: AwaitedResult): void {
    const cell = this.cell;
    if (!cell || cell.watched.has(result)) return;
    const w: Watched = {
      result,
      progress,
      displayId: `tsparallel-progress-${randomUUID()}`,
      shown: false,
      timer: undefined,
    };
    cell.watched.set(result, w);
    if (!progress) return;
    w.timer = setTimeout(() => {
      this.draw(w, cell.out);
      w.timer = setInterval(() => this.draw(w, cell.out), REDRAW_MS);
    }, this.after);
    void result.wait().then(() => {
      if (this.cell === cell) this.settle(w, cell.out);
    });
  }

  /** Stops redrawing `w`, with a last draw if its bar is showing. */
  private settle(w: Watched, out: Outlet): void {
    clearTimeout(w.timer);
    clearInterval(w.timer);
    w.timer = undefined;
    if (w.shown) this.draw(w, out);
  }

  private draw(w: Watched, out: Outlet): void {
    const { text, html } = render(w.result);
    out.publish(w.shown ? 'update_display_data' : 'display_data', {
      data: { 'text/plain': text, 'text/html': html },
      metadata: {},
      transient: { display_id: w.displayId },
    });
    w.shown = true;
  }
}

/** Done and total tasks per engine, in engine order; a task not yet placed has no engine. */
function perEngine(result: AsyncResult<unknown>): { engine: number; done: number; all: number }[] {
  const engines = new Map<number, { engine: number; done: number; all: number }>();
  for (const m of result.metadata) {
    if (m.engineId === null) continue;
    const e = engines.get(m.engineId) ?? { engine: m.engineId, done: 0, all: 0 };
    e.all++;
    if (m.status !== 'pending') e.done++;
    engines.set(m.engineId, e);
  }
  return [...engines.values()].sort((a, b) => a.engine - b.engine);
}

/**
 * The bar as text (for nbconvert and consoles) and HTML (for Lab):
 * `[##########..........] 4/12 tasks, 2.1 s` and a line `engine 0: 2 done, engine 1: 1/3`.
 */
export function render(result: AsyncResult<unknown>): { text: string; html: string } {
  const total = result.length;
  const done = result.progress;
  const failed = result.metadata.filter((m) => m.status === 'error').length;
  const filled = total === 0 ? BAR_WIDTH : Math.round((BAR_WIDTH * done) / total);
  const state = result.ready()
    ? `done in ${result.elapsed.toFixed(1)} s`
    : `${result.elapsed.toFixed(1)} s`;
  const summary =
    `${done}/${total} task${total === 1 ? '' : 's'}` +
    (failed > 0 ? `, ${failed} failed` : '') +
    `, ${state}`;
  const engines = perEngine(result)
    .map((e) => `engine ${e.engine}: ${e.done < e.all ? `${e.done}/${e.all}` : `${e.done} done`}`)
    .join(', ');
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`;
  const text = `${bar} ${summary}` + (engines ? `\n${engines}` : '');
  const html =
    `<div class="tsp-Progress"><progress value="${done}" max="${total}"></progress> ` +
    `<span>${summary}</span>` +
    (engines ? `<div class="tsp-Progress-engines">${engines}</div>` : '') +
    '</div>';
  return { text, html };
}

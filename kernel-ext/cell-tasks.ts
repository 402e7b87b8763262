/**
 * What the running TypeScript cell sent and what it awaits, so that interrupting the cell stops
 * its engines: the engines of a kernel-started cluster are in process groups of their own, and
 * Jupyter's SIGINT does not reach them. A cell interrupted in its synchronous code may never
 * have awaited what it sent; one that awaits results of an earlier cell stops those too.
 */
import type { AsyncResult } from '../client/async-result';
import type { Client, SubmittedTask } from '../client/client';

/** See the file's comment. One per kernel; cells run one at a time. */
export class CellTasks {
  private cell: { sent: SubmittedTask[]; awaited: Set<AsyncResult<unknown>> } | undefined;

  /** A TypeScript cell starts: what it sends and awaits from now on is kept. */
  begin(): void {
    this.cell = { sent: [], awaited: new Set() };
  }

  /** The cell ended: nothing of it is kept. */
  end(): void {
    this.cell = undefined;
  }

  /** Called for each task a client sends; kept while a cell runs. */
  sent(submitted: SubmittedTask): void {
    this.cell?.sent.push(submitted);
  }

  /** Called for each result code begins to await; kept while a cell runs. */
  awaited(result: AsyncResult<unknown>): void {
    this.cell?.awaited.add(result);
  }

  /**
   * Aborts the unfinished tasks the running cell sent or awaits: queued ones are dropped,
   * running ones interrupted on their engines. Call when the cell is interrupted.
   */
  async abort(): Promise<void> {
    const cell = this.cell;
    if (!cell) return;
    const byClient = new Map<Client, string[]>();
    for (const { client, task } of cell.sent) {
      if (task.finished) continue;
      let msgIds = byClient.get(client);
      if (!msgIds) byClient.set(client, (msgIds = []));
      msgIds.push(task.metadata.msgId);
    }
    await Promise.allSettled([
      ...[...byClient].map(([client, msgIds]) => client.abort(msgIds)),
      ...[...cell.awaited].filter((r) => !r.ready()).map((r) => r.abort()),
    ]);
  }
}

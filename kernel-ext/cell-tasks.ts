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
  private cell:
    | {
        /** Per client, the ids of the unfinished tasks the cell sent. */
        sent: Map<Client, Set<string>>;
        awaited: Set<AsyncResult<unknown>>;
      }
    | undefined;

  /** A TypeScript cell starts: what it sends and awaits from now on is kept. */
  begin(): void {
    this.cell = { sent: new Map(), awaited: new Set() };
  }

  /** The cell ended: nothing of it is kept. */
  end(): void {
    this.cell = undefined;
  }

  /**
   * Called for each task a client sends; its id is kept while a cell runs, until the task
   * finishes (not the task: a cell that sends without end must not keep what the client let go).
   */
  sent({ client, task }: SubmittedTask): void {
    if (!this.cell) return;
    const msgIds = this.cell.sent.get(client) ?? new Set<string>();
    this.cell.sent.set(client, msgIds);
    const { msgId } = task.metadata;
    msgIds.add(msgId);
    task.onFinish(() => msgIds.delete(msgId));
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
    await Promise.allSettled([
      ...[...cell.sent]
        .filter(([, msgIds]) => msgIds.size > 0)
        .map(([client, msgIds]) => client.abort([...msgIds])),
      ...[...cell.awaited].filter((r) => !r.ready()).map((r) => r.abort()),
    ]);
  }
}

/**
 * The hub's record of every task: who asked, where it ran, when, and how it ended. Held in
 * memory with a bound: once more than `limit` tasks have finished, the oldest finished records
 * (and their results) are forgotten. Unfinished tasks are never dropped.
 */
import type { IMessage, TaskOptions, TaskRecordSummary } from '../protocol/messages';

export type TaskRequest = IMessage<'apply_request'> | IMessage<'execute_request'>;
export type TaskReply = IMessage<'apply_reply'> | IMessage<'execute_reply'>;

export interface TaskRecord {
  readonly msgId: string;
  readonly request: TaskRequest;
  /** ROUTER identity of the client that submitted the task. */
  readonly client: Buffer;
  readonly options: TaskOptions;
  engineId: number | null;
  state: TaskRecordSummary['state'];
  readonly submitted: string;
  started: string | null;
  completed: string | null;
  reply: TaskReply | null;
  retriesLeft: number;
}

export const DEFAULT_RECORD_LIMIT = 10_000;

export class TaskRecords {
  private readonly records = new Map<string, TaskRecord>();
  /** Ids of finished records, oldest finish first (a Set keeps insertion order). */
  private readonly finishedIds = new Set<string>();

  constructor(readonly limit = DEFAULT_RECORD_LIMIT) {}

  add(record: TaskRecord): void {
    this.records.set(record.msgId, record);
  }

  get(msgId: string): TaskRecord | undefined {
    return this.records.get(msgId);
  }

  /** Call when a record reaches a final state; evicts the records that finished longest ago. */
  finished(record: TaskRecord): void {
    this.finishedIds.add(record.msgId);
    for (const id of this.finishedIds) {
      if (this.finishedIds.size <= this.limit) break;
      this.finishedIds.delete(id);
      this.records.delete(id);
    }
  }

  get size(): number {
    return this.records.size;
  }

  static summary(r: TaskRecord): TaskRecordSummary {
    return {
      msg_id: r.msgId,
      engine_id: r.engineId,
      state: r.state,
      submitted: r.submitted,
      started: r.started,
      completed: r.completed,
      label: r.options.label ?? null,
      reply: r.reply?.content ?? null,
    };
  }
}

export function isFinal(state: TaskRecord['state']): boolean {
  return state === 'completed' || state === 'failed' || state === 'aborted';
}

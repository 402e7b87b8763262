/**
 * The hub's record of every task: who asked, where it ran, when, and how it ended. A
 * `TaskRecordStore` holds them; this file has the in-memory store, bounded two ways: once more
 * than `limit` tasks have finished, the records that finished longest ago are forgotten; and once
 * finished tasks' arguments and results pass `byteLimit`, the oldest of those bytes are let go
 * (the record stays). Unfinished tasks keep everything. `sqlite-task-records.ts` keeps them all
 * on disk instead.
 */
import type { IMessage, TaskOptions, TaskRecordSummary } from '../protocol/messages';
import type { Frame } from '../protocol/session';

/** A message that creates a task. */
export type TaskRequest = IMessage<'apply_request'> | IMessage<'execute_request'>;
/** A message that ends a task. */
export type TaskReply = IMessage<'apply_reply'> | IMessage<'execute_reply'>;

/** Everything the hub knows of one task. */
export interface TaskRecord {
  readonly msgId: string;
  request: TaskRequest;
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
  /** True once the arguments and result were let go to bound memory. */
  buffersDropped: boolean;
  /**
   * The request's frames as the client signed them (`Received.wire`), until it is sent to an
   * engine: then forwarded unchanged, and let go.
   */
  wire?: Frame[];
}

/** Finished tasks whose records the hub keeps. */
export const DEFAULT_RECORD_LIMIT = 10_000;
/** Bytes of finished tasks' arguments and results the hub keeps. */
export const DEFAULT_RECORD_BYTE_LIMIT = 256 * 1024 * 1024;

/**
 * Where the hub keeps task records. The hub changes a record's fields in place and then calls
 * `update` (it was assigned or requeued) or `finished` (it reached a final state), so that a
 * store on disk can write the change through.
 */
export interface TaskRecordStore {
  /** A new task. */
  add(record: TaskRecord): void;
  get(msgId: string): TaskRecord | undefined;
  /** The record's engine, state or retries changed. */
  update(record: TaskRecord): void;
  /** The record reached a final state; the store may let it leave memory. */
  finished(record: TaskRecord): void;
  /** Records not yet final, in submission order: what a restarted hub must finish. */
  unfinished(): TaskRecord[];
  /** A new engine id, never handed out before by this store. */
  nextEngineId(): number;
  /** Says which finished records the store keeps, for the error about a missing one. */
  readonly retention: string;
  close(): void;
}

/** The bounded in-memory store; see the file's comment. */
export class MemoryTaskRecords implements TaskRecordStore {
  private readonly records = new Map<string, TaskRecord>();
  /** Ids of finished records, oldest finish first (a Set keeps insertion order). */
  private readonly finishedIds = new Set<string>();
  /** Finished records still holding buffers, oldest first, with the bytes they hold. */
  private readonly holding = new Map<string, number>();
  private heldBytes = 0;
  private engineIds = 0;

  constructor(
    readonly limit = DEFAULT_RECORD_LIMIT,
    readonly byteLimit = DEFAULT_RECORD_BYTE_LIMIT,
  ) {}

  add(record: TaskRecord): void {
    this.records.set(record.msgId, record);
  }

  get(msgId: string): TaskRecord | undefined {
    return this.records.get(msgId);
  }

  update(): void {
    // The record in the map is the one the hub changed.
  }

  unfinished(): TaskRecord[] {
    return [...this.records.values()].filter((r) => !isFinal(r.state));
  }

  nextEngineId(): number {
    return this.engineIds++;
  }

  get retention(): string {
    return `the hub keeps the last ${this.limit} finished tasks (start the controller with --db sqlite to keep all)`;
  }

  close(): void {
    this.records.clear();
  }

  /** Call when a record reaches a final state; evicts the records that finished longest ago. */
  finished(record: TaskRecord): void {
    this.finishedIds.add(record.msgId);
    const bytes = byteSize(record.request.buffers) + byteSize(record.reply?.buffers ?? []);
    if (bytes > 0) {
      this.holding.set(record.msgId, bytes);
      this.heldBytes += bytes;
    }
    for (const id of this.finishedIds) {
      if (this.finishedIds.size <= this.limit) break;
      this.finishedIds.delete(id);
      this.records.delete(id);
      this.release(id);
    }
    for (const id of this.holding.keys()) {
      if (this.heldBytes <= this.byteLimit) break;
      const r = this.records.get(id);
      if (r) {
        r.request = { ...r.request, buffers: [] };
        if (r.reply) r.reply = { ...r.reply, buffers: [] };
        r.buffersDropped = true;
      }
      this.release(id);
    }
  }

  private release(id: string): void {
    this.heldBytes -= this.holding.get(id) ?? 0;
    this.holding.delete(id);
  }
}

/** A record as `result_request` returns it. */
export function summary(r: TaskRecord): TaskRecordSummary {
  return {
    msg_id: r.msgId,
    engine_id: r.engineId,
    state: r.state,
    submitted: r.submitted,
    started: r.started,
    completed: r.completed,
    label: r.options.label ?? null,
    reply: r.reply?.content ?? null,
    buffers_dropped: r.buffersDropped,
  };
}

function byteSize(buffers: Buffer[]): number {
  return buffers.reduce((n, b) => n + b.byteLength, 0);
}

/** True for the states a task never leaves. */
export function isFinal(state: TaskRecord['state']): boolean {
  return state === 'completed' || state === 'failed' || state === 'aborted';
}

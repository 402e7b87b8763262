/**
 * The hub's record of every task: who asked, where it ran, when, and how it ended. A
 * `TaskRecordStore` holds them and owns their transitions (`add`, `assign`, `requeue`,
 * `cancelRetries`, `finish`), so a store on disk writes every change through and no caller can
 * change a record and forget to say so. This file has the in-memory store, bounded two ways:
 * once more than `limit` tasks have finished, the records that finished longest ago are
 * forgotten; and once finished tasks' arguments and results pass `byteLimit`, the oldest of those
 * bytes are let go (the record stays). Unfinished tasks keep everything.
 * `sqlite-task-records.ts` keeps them all on disk instead.
 */
import type { IMessage, TaskOptions, TaskRecordSummary } from '../protocol/messages';
import { hasSegment } from '../protocol/shared-memory';

/** A message that creates a task. */
export type TaskRequest = IMessage<'apply_request'> | IMessage<'execute_request'>;
/** A message that ends a task. */
export type TaskReply = IMessage<'apply_reply'> | IMessage<'execute_reply'>;

/** Everything the hub knows of one task; changed only by its store's transitions. */
export interface TaskRecord {
  readonly msgId: string;
  readonly request: TaskRequest;
  /** ROUTER identity of the client that submitted the task. */
  readonly client: Buffer;
  readonly options: TaskOptions;
  readonly engineId: number | null;
  readonly state: TaskRecordSummary['state'];
  readonly submitted: string;
  readonly started: string | null;
  readonly completed: string | null;
  readonly reply: TaskReply | null;
  readonly retriesLeft: number;
  /** True once the arguments and result were let go to bound memory. */
  readonly buffersDropped: boolean;
  /**
   * The frames of the latest data the task published, if any. Provisional, so kept in memory
   * only: a store on disk does not write it.
   */
  readonly data: Buffer[] | null;
}

/** A record as its store changes it. */
type Writable<T> = { -readonly [K in keyof T]: T[K] };

/** Finished tasks whose records the hub keeps. */
export const DEFAULT_RECORD_LIMIT = 10_000;
/** Bytes of finished tasks' arguments and results the hub keeps. */
export const DEFAULT_RECORD_BYTE_LIMIT = 256 * 1024 * 1024;

const now = (): string => new Date().toISOString();

/**
 * Where the hub keeps task records, and the only place they change. The transitions are the
 * same for every store; a store says where a new record goes (`insert`), what becomes of a
 * changed one (`changed`) and of a finished one (`ended`).
 */
export abstract class TaskRecordStore {
  /**
   * Records a new task, waiting for an engine; returns its record. `submitted` is now, or when
   * the client sent a task that the hub learns of afterwards.
   */
  add(request: TaskRequest, submitted = now()): TaskRecord {
    const options = request.content.options;
    const record: TaskRecord = {
      msgId: request.header.msg_id,
      request,
      client: request.identities[0],
      options,
      engineId: null,
      state: 'pending',
      submitted,
      started: null,
      completed: null,
      reply: null,
      retriesLeft: options.retries ?? 0,
      buffersDropped: false,
      data: null,
    };
    this.insert(record);
    return record;
  }

  /** The task was sent to engine `engineId`. */
  assign(record: TaskRecord, engineId: number): void {
    const r: Writable<TaskRecord> = record;
    r.engineId = engineId;
    r.state = 'running';
    this.changed(r);
  }

  /**
   * The task's engine is gone: it waits again, with one retry fewer; or, not `spendRetry`, it
   * waits again for a value it was fetching, which is being made anew.
   */
  requeue(record: TaskRecord, spendRetry = true): void {
    const r: Writable<TaskRecord> = record;
    if (spendRetry) r.retriesLeft--;
    r.engineId = null;
    r.state = 'pending';
    r.started = null;
    r.data = null;
    // Engines drop a message they have seen before as a replay; a rerun must differ from it.
    const attempt = Number(r.request.metadata.attempt ?? 0) + 1;
    r.request = { ...r.request, metadata: { ...r.request.metadata, attempt } };
    this.changed(r);
  }

  /** The running task published `data` (its frames); it replaces what it published before. */
  published(record: TaskRecord, data: Buffer[]): void {
    const r: Writable<TaskRecord> = record;
    r.data = data;
  }

  /** The task is not to be rerun, whatever becomes of its engine (it was aborted). */
  cancelRetries(record: TaskRecord): void {
    const r: Writable<TaskRecord> = record;
    r.retriesLeft = 0;
    this.changed(r);
  }

  /**
   * The task ended with `reply`, its engine's or one the hub made: completed, aborted or failed
   * as the reply says, at the times its metadata gives.
   */
  finish(record: TaskRecord, reply: TaskReply): void {
    const r: Writable<TaskRecord> = record;
    const { started, completed } = reply.metadata;
    r.started = typeof started === 'string' ? started : null;
    r.completed = typeof completed === 'string' ? completed : now();
    r.state =
      reply.content.status === 'ok'
        ? 'completed'
        : reply.content.ename === 'TaskAbortedError'
          ? 'aborted'
          : 'failed';
    r.reply = reply;
    this.ended(r);
  }

  abstract get(msgId: string): TaskRecord | undefined;
  /** Records not yet final, in submission order: what a restarted hub must finish. */
  abstract unfinished(): TaskRecord[];
  /**
   * The unfinished tasks this hub took in or restored: unlike `unfinished`, never those a
   * stopped controller left in a database this one did not restore from.
   */
  abstract inFlight(): TaskRecord[];
  /** A new engine id, never handed out before by this store. */
  abstract nextEngineId(): number;
  /** Says which finished records the store keeps, for the error about a missing one. */
  abstract readonly retention: string;
  abstract close(): void;

  protected abstract insert(record: TaskRecord): void;
  /** The record's engine, state, request or retries changed. */
  protected abstract changed(record: TaskRecord): void;
  /** The record reached a final state; the store may let it leave memory. */
  protected abstract ended(record: TaskRecord): void;
}

/** The bounded in-memory store; see the file's comment. */
export class MemoryTaskRecords extends TaskRecordStore {
  private readonly records = new Map<string, Writable<TaskRecord>>();
  /**
   * Ids of finished records, and the same oldest finish first from `finishedAt` on. Not the Set's
   * own order: V8 leaves an entry deleted from a Set as a hole until the table next grows, and
   * reaching the oldest entry steps over every hole before it, about 10 µs a task at 10,000.
   */
  private readonly finishedIds = new Set<string>();
  private finishOrder: string[] = [];
  private finishedAt = 0;
  /** Finished records still holding buffers, oldest first, with the bytes they hold. */
  private readonly holding = new Map<string, number>();
  private heldBytes = 0;
  private engineIds = 0;

  constructor(
    readonly limit = DEFAULT_RECORD_LIMIT,
    readonly byteLimit = DEFAULT_RECORD_BYTE_LIMIT,
  ) {
    super();
  }

  get(msgId: string): TaskRecord | undefined {
    return this.records.get(msgId);
  }

  unfinished(): TaskRecord[] {
    return [...this.records.values()].filter((r) => !isFinal(r.state));
  }

  inFlight(): TaskRecord[] {
    return this.unfinished();
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

  protected insert(record: TaskRecord): void {
    this.records.set(record.msgId, record);
  }

  protected changed(): void {
    // The record in the map is the one that changed.
  }

  /** Evicts the records that finished longest ago, and the oldest bytes past the limit. */
  protected ended(record: TaskRecord): void {
    if (!this.finishedIds.has(record.msgId)) {
      this.finishedIds.add(record.msgId);
      this.finishOrder.push(record.msgId);
    }
    const bytes =
      byteSize(record.request.buffers) +
      byteSize(record.reply?.buffers ?? []) +
      byteSize(record.data ?? []);
    // A task rerun to remake a lost value ends a second time.
    this.release(record.msgId);
    if (bytes > 0) {
      this.holding.set(record.msgId, bytes);
      this.heldBytes += bytes;
    }
    while (this.finishedIds.size > this.limit) {
      const id = this.finishOrder[this.finishedAt++];
      this.finishedIds.delete(id);
      this.records.delete(id);
      this.release(id);
    }
    if (this.finishedAt > this.limit) {
      this.finishOrder = this.finishOrder.slice(this.finishedAt);
      this.finishedAt = 0;
    }
    // Looked at only past the limit: every look at its oldest entry steps over its holes too.
    if (this.heldBytes <= this.byteLimit) return;
    for (const id of this.holding.keys()) {
      if (this.heldBytes <= this.byteLimit) break;
      const r = this.records.get(id);
      if (r) {
        r.request = { ...r.request, buffers: [] };
        if (r.reply) r.reply = { ...r.reply, buffers: [] };
        r.data = null;
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
    // A result that went through shared memory, or stays on its engine, was never the hub's.
    buffers_dropped:
      r.buffersDropped ||
      (r.reply !== null && (hasSegment(r.reply.metadata) || 'kept' in r.reply.content)),
    ...(r.data && { data_buffers: r.data.length }),
  };
}

/** The buffers of a `result_reply`: the result's, then the latest published data's. */
export function summaryBuffers(r: TaskRecord): Buffer[] {
  return [...(r.reply?.buffers ?? []), ...(r.data ?? [])];
}

function byteSize(buffers: Buffer[]): number {
  return buffers.reduce((n, b) => n + b.byteLength, 0);
}

/** True for the states a task never leaves. */
export function isFinal(state: TaskRecord['state']): boolean {
  return state === 'completed' || state === 'failed' || state === 'aborted';
}

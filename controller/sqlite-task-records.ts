/**
 * Task records in SQLite (`--db sqlite[:PATH]`): every task's request, state and reply are
 * written through as they change, so finished results leave the controller's memory and a
 * controller restarted on the same database finds every task again. Unfinished tasks stay in
 * memory too; finished ones only in a small cache.
 */
import type Database from 'better-sqlite3';
import { isMsg, validateMessage, type IMessage, type Message } from '../protocol/messages';
import { TaskRecordStore, type TaskRecord, type TaskReply } from './task-records';

/**
 * better-sqlite3 is an optional dependency: it compiles on install, and a machine without a C++
 * toolchain still gets every other feature. Loaded on first use, with what to do if it is absent.
 */
function loadSqlite(): typeof Database {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('better-sqlite3') as typeof Database;
  } catch (e) {
    throw new Error(
      '--db sqlite needs the better-sqlite3 package, which did not build when tsparallel was ' +
        'installed: install a C++ toolchain (Debian: apt-get install build-essential python3) ' +
        'and run "npm rebuild better-sqlite3", or use --db memory',
      { cause: e },
    );
  }
}

/** Finished records kept in memory for repeated `result` calls. */
const CACHE_SIZE = 256;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL UNIQUE,
    client BLOB NOT NULL,
    request TEXT NOT NULL,
    request_buffers BLOB NOT NULL,
    engine_id INTEGER,
    state TEXT NOT NULL,
    submitted TEXT NOT NULL,
    started TEXT,
    completed TEXT,
    retries_left INTEGER NOT NULL,
    reply TEXT,
    reply_buffers BLOB
  );
  CREATE INDEX IF NOT EXISTS tasks_unfinished ON tasks (state)
    WHERE state IN ('pending', 'running');
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
`;

interface Row {
  msg_id: string;
  client: Buffer;
  request: string;
  request_buffers: Buffer;
  engine_id: number | null;
  state: TaskRecord['state'];
  submitted: string;
  started: string | null;
  completed: string | null;
  retries_left: number;
  reply: string | null;
  reply_buffers: Buffer | null;
}

/** The SQLite store; see the file's comment. */
export class SqliteTaskRecords extends TaskRecordStore {
  private readonly db: Database.Database;
  private readonly live = new Map<string, TaskRecord>();
  /** Recently finished records, least recently used first. */
  private readonly cache = new Map<string, TaskRecord>();
  private readonly statements;

  constructor(readonly path: string) {
    super();
    this.db = new (loadSqlite())(path);
    // WAL: a commit survives the controller being killed, and a write costs no fsync.
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(SCHEMA);
    this.statements = {
      insert: this.db.prepare(
        `INSERT INTO tasks (msg_id, client, request, request_buffers, engine_id, state, submitted,
           retries_left) VALUES (@msg_id, @client, @request, @request_buffers, @engine_id, @state,
           @submitted, @retries_left)`,
      ),
      update: this.db.prepare(
        `UPDATE tasks SET engine_id = @engine_id, state = @state, started = @started,
           completed = @completed, retries_left = @retries_left, reply = @reply,
           reply_buffers = @reply_buffers WHERE msg_id = @msg_id`,
      ),
      get: this.db.prepare('SELECT * FROM tasks WHERE msg_id = ?'),
      unfinished: this.db.prepare(
        "SELECT * FROM tasks WHERE state IN ('pending', 'running') ORDER BY seq",
      ),
      nextEngineId: this.db.prepare(
        `INSERT INTO meta (key, value) VALUES ('next_engine_id', 1)
           ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value - 1 AS id`,
      ),
    };
  }

  protected insert(record: TaskRecord): void {
    this.statements.insert.run({
      msg_id: record.msgId,
      client: record.client,
      request: frameJson(record.request),
      request_buffers: packBuffers(record.request.buffers),
      engine_id: record.engineId,
      state: record.state,
      submitted: record.submitted,
      retries_left: record.retriesLeft,
    });
    this.live.set(record.msgId, record);
  }

  get(msgId: string): TaskRecord | undefined {
    const live = this.live.get(msgId);
    if (live) return live;
    const cached = this.cache.get(msgId);
    if (cached) {
      this.remember(cached);
      return cached;
    }
    const row = this.statements.get.get(msgId) as Row | undefined;
    if (!row) return undefined;
    const loaded = fromRow(row);
    this.remember(loaded);
    return loaded;
  }

  protected changed(record: TaskRecord): void {
    this.statements.update.run({
      msg_id: record.msgId,
      engine_id: record.engineId,
      state: record.state,
      started: record.started,
      completed: record.completed,
      retries_left: record.retriesLeft,
      reply: record.reply ? frameJson(record.reply) : null,
      reply_buffers: record.reply ? packBuffers(record.reply.buffers) : null,
    });
  }

  protected ended(record: TaskRecord): void {
    this.changed(record);
    this.live.delete(record.msgId);
    this.remember(record);
  }

  /** Read from disk only here, for a restore: a controller that does not restore never holds them. */
  unfinished(): TaskRecord[] {
    for (const row of this.statements.unfinished.all() as Row[]) {
      if (!this.live.has(row.msg_id)) this.live.set(row.msg_id, fromRow(row));
    }
    return this.inFlight();
  }

  inFlight(): TaskRecord[] {
    return [...this.live.values()];
  }

  nextEngineId(): number {
    return (this.statements.nextEngineId.get() as { id: number }).id;
  }

  get retention(): string {
    return `the database ${this.path} has no such task`;
  }

  close(): void {
    this.db.close();
  }

  private remember(record: TaskRecord): void {
    this.cache.delete(record.msgId);
    this.cache.set(record.msgId, record);
    for (const id of this.cache.keys()) {
      if (this.cache.size <= CACHE_SIZE) break;
      this.cache.delete(id);
    }
  }
}

/** A message's JSON frames, without its routing identities and buffers. */
function frameJson(msg: IMessage): string {
  const { header, parent_header, metadata, content } = msg;
  return JSON.stringify({ header, parent_header, metadata, content });
}

/** Buffers as one blob: a count, then each length and its bytes (32-bit little-endian). */
function packBuffers(buffers: Buffer[]): Buffer {
  const out: Buffer[] = [Buffer.alloc(4)];
  out[0].writeUInt32LE(buffers.length);
  for (const b of buffers) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.byteLength);
    out.push(len, b);
  }
  return Buffer.concat(out);
}

function unpackBuffers(blob: Buffer): Buffer[] {
  const n = blob.readUInt32LE(0);
  const buffers: Buffer[] = [];
  let at = 4;
  for (let i = 0; i < n; i++) {
    const len = blob.readUInt32LE(at);
    buffers.push(blob.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return buffers;
}

/** A message read back from the database, checked as one off the wire would be. */
function toMessage(json: string, buffers: Buffer, identities: Buffer[]): Message {
  const frames = JSON.parse(json) as Record<string, unknown>;
  const msg = {
    identities,
    header: frames.header,
    parent_header: frames.parent_header,
    metadata: frames.metadata,
    content: frames.content,
    buffers: unpackBuffers(buffers),
  };
  validateMessage(msg);
  return msg;
}

function fromRow(row: Row): TaskRecord {
  const request = toMessage(row.request, row.request_buffers, [row.client]);
  if (!isMsg(request, 'apply_request') && !isMsg(request, 'execute_request')) {
    throw new Error(`task ${row.msg_id} in the database is not a task request`);
  }
  let reply: TaskReply | null = null;
  if (row.reply !== null) {
    const m = toMessage(row.reply, row.reply_buffers ?? packBuffers([]), [row.client]);
    if (!isMsg(m, 'apply_reply') && !isMsg(m, 'execute_reply')) {
      throw new Error(`task ${row.msg_id} in the database has a reply of the wrong type`);
    }
    reply = m;
  }
  return {
    msgId: row.msg_id,
    request,
    client: row.client,
    options: request.content.options,
    engineId: row.engine_id,
    state: row.state,
    submitted: row.submitted,
    started: row.started,
    completed: row.completed,
    reply,
    retriesLeft: row.retries_left,
    buffersDropped: false,
    data: null,
  };
}

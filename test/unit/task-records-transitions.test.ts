import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteTaskRecords } from '../../controller/sqlite-task-records';
import {
  MemoryTaskRecords,
  summary,
  type TaskRecordStore,
  type TaskRequest,
} from '../../controller/task-records';
import type { ContentMap } from '../../protocol/messages';
import { Session } from '../../protocol/session';

const session = new Session('key');
const CLIENT = Buffer.from('client-1');
const STARTED = '2024-01-01T00:00:01.000Z';
const COMPLETED = '2024-01-01T00:00:02.000Z';

const requests: TaskRequest[] = ['done', 'retried', 'aborted', 'waiting', 'running'].map((label) =>
  session.msg(
    'apply_request',
    { source: '() => 1', mode: 'call', refs: [], options: { balanced: true, retries: 1, label } },
    { identities: [CLIENT], buffers: [Buffer.from(`args of ${label}`)] },
  ),
);

/** The same life for each task, whatever the store: what the hub does to it. */
function live(store: TaskRecordStore): void {
  const [done, retried, aborted, , running] = requests.map((r) => store.add(r));
  const reply = (
    to: TaskRequest,
    content: ContentMap['apply_reply'],
    buffers: Buffer[] = [],
  ): ReturnType<typeof session.msg<'apply_reply'>> =>
    session.msg('apply_reply', content, {
      parent: to.header,
      identities: [Buffer.from('engine')],
      metadata: { started: STARTED, completed: COMPLETED },
      buffers,
    });
  store.assign(done, 0);
  store.finish(done, reply(done.request, { status: 'ok' }, [Buffer.from('result')]));
  store.assign(retried, 1);
  store.requeue(retried);
  store.assign(retried, 0);
  store.finish(
    retried,
    reply(retried.request, {
      status: 'error',
      ename: 'TypeError',
      evalue: 'no',
      traceback: ['at x'],
    }),
  );
  store.assign(aborted, 1);
  store.cancelRetries(aborted);
  store.finish(
    aborted,
    reply(aborted.request, {
      status: 'error',
      ename: 'TaskAbortedError',
      evalue: '',
      traceback: [],
    }),
  );
  store.assign(running, 1);
}

/** What a client's `rc.result` would get for each task, and what a restarted hub would take over. */
function reads(store: TaskRecordStore): unknown {
  return {
    results: requests.map((q) => {
      const r = store.get(q.header.msg_id);
      assert.ok(r, `no record of ${q.header.msg_id}`);
      const { submitted, ...rest } = summary(r);
      assert.equal(typeof submitted, 'string');
      return { ...rest, retriesLeft: r.retriesLeft, buffers: r.reply?.buffers ?? [] };
    }),
    unfinished: store.unfinished().map((r) => [r.msgId, r.state, r.engineId]),
  };
}

describe('task record stores', () => {
  let dir: string;

  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tsparallel-db-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('the memory and SQLite stores read the same after the same transitions', () => {
    const memory = new MemoryTaskRecords();
    live(memory);
    const expected = reads(memory);

    const path = join(dir, 'tasks.db');
    const sqlite = new SqliteTaskRecords(path);
    live(sqlite);
    assert.deepEqual(reads(sqlite), expected);
    sqlite.close();
    assert.deepEqual(reads(new SqliteTaskRecords(path)), expected, 'read back from disk');

    const states = (expected as { results: { label: string; state: string }[] }).results;
    assert.deepEqual(
      states.map((r) => [r.label, r.state]),
      [
        ['done', 'completed'],
        ['retried', 'failed'],
        ['aborted', 'aborted'],
        ['waiting', 'pending'],
        ['running', 'running'],
      ],
    );
    memory.close();
  });

  it("keeps a running task's latest published data, and forgets it when the task reruns", () => {
    for (const store of [new MemoryTaskRecords(), new SqliteTaskRecords(join(dir, 'data.db'))]) {
      const r = store.add(requests[1]);
      store.assign(r, 0);
      store.published(r, [Buffer.from('one')]);
      store.published(r, [Buffer.from('two')]);
      assert.deepEqual(store.get(r.msgId)?.data, [Buffer.from('two')]);
      assert.equal(summary(r).data_buffers, 1);
      store.requeue(r);
      assert.equal(store.get(r.msgId)?.data, null, 'a rerun starts without data');
      assert.equal('data_buffers' in summary(r), false);
      store.close();
    }
  });
});

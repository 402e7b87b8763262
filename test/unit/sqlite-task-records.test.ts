import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteTaskRecords } from '../../controller/sqlite-task-records';
import type { TaskRecord, TaskRequest } from '../../controller/task-records';
import { Session } from '../../protocol/session';

const session = new Session('key');
const CLIENT = Buffer.from('client-1');

function request(i: number): TaskRequest {
  return session.msg(
    'apply_request',
    { source: '(x) => x', mode: 'call', refs: [], options: { balanced: true, retries: 2 } },
    { identities: [CLIENT], buffers: [Buffer.from(`args ${i}`), Buffer.alloc(0)] },
  );
}

function finish(store: SqliteTaskRecords, r: TaskRecord, value: string): void {
  store.assign(r, 0);
  store.finish(
    r,
    session.msg(
      'apply_reply',
      { status: 'ok' },
      { parent: r.request.header, buffers: [Buffer.from(value)] },
    ),
  );
}

describe('SqliteTaskRecords', () => {
  let dir: string;
  let path: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsparallel-db-'));
    path = join(dir, 'tasks.db');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('lets finished records leave memory and reads them back whole from disk', () => {
    const store = new SqliteTaskRecords(path);
    const records = Array.from({ length: 300 }, (_, i) => store.add(request(i)));
    records.forEach((r, i) => finish(store, r, `result ${i}`));
    const first = store.get(records[0].msgId);
    assert.ok(first);
    assert.notEqual(first, records[0], 'read back from the database, not held in memory');
    assert.equal(first.state, 'completed');
    assert.deepEqual(first.request.buffers, [Buffer.from('args 0'), Buffer.alloc(0)]);
    assert.deepEqual(first.reply?.buffers, [Buffer.from('result 0')]);
    assert.deepEqual(first.reply?.content, { status: 'ok' });
    assert.equal(store.get(records[299].msgId), records[299], 'recent ones are cached');
    assert.equal(store.get('no-such-task'), undefined);
    assert.deepEqual(store.unfinished(), []);
    store.close();
  });

  it('gives a store opened on the same file the unfinished tasks and fresh engine ids', () => {
    const store = new SqliteTaskRecords(path);
    const [waiting, running, done] = [0, 1, 2].map((i) => store.add(request(i)));
    store.assign(running, 4);
    store.requeue(running); // its engine died: one retry spent
    store.assign(running, 4);
    finish(store, done, 'ok');
    assert.deepEqual([store.nextEngineId(), store.nextEngineId()], [0, 1]);
    store.close(); // as if the controller had died

    const again = new SqliteTaskRecords(path);
    const unfinished = again.unfinished();
    assert.deepEqual(
      unfinished.map((r) => [r.msgId, r.state, r.engineId, r.retriesLeft]),
      [
        [waiting.msgId, 'pending', null, 2],
        [running.msgId, 'running', 4, 1],
      ],
    );
    assert.deepEqual(unfinished[0].client, CLIENT);
    assert.equal(again.get(done.msgId)?.state, 'completed');
    assert.equal(again.nextEngineId(), 2, 'ids are never reused');
    again.close();
  });
});

import assert from 'node:assert/strict';
import { Leases, type Lent } from '../../client/leases';
import type { IMessage, TaskRequestType } from '../../protocol/messages';
import { Session } from '../../protocol/session';

const session = new Session('client-leases-key');

const task = (): IMessage<TaskRequestType> =>
  session.msg('apply_request', {
    source: '() => 1',
    mode: 'call',
    refs: [],
    options: { balanced: true },
  });

/** The end of the current turn, and of the promise callbacks before it. */
const turnEnd = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A client's `Leases` over a hub that lends `lend` slots on engine 0, asked through `asked`. */
function leases(lend = 2): { leases: Leases; asked: number[]; sent: string[]; viaHub: string[] } {
  const asked: number[] = [];
  const sent: string[] = [];
  const viaHub: string[] = [];
  const ask = (slots: number): Promise<Lent> => {
    asked.push(slots);
    const lent: Record<string, number> = slots > 0 ? { 0: lend } : {};
    return Promise.resolve({ leases: lent, term: 60_000 });
  };
  const l = new Leases(
    ask,
    (tasks) => {
      sent.push(...tasks.map((t) => t.header.msg_id));
      return true;
    },
    (t) => viaHub.push(t.header.msg_id),
  );
  return { leases: l, asked, sent, viaHub };
}

describe('client leases', () => {
  it('gives the lease back once nothing waits or runs in it, at the end of the turn', async () => {
    const { leases: l, asked, sent } = leases();
    const tasks = [task(), task(), task()];
    for (const t of tasks) assert.ok(l.submit(t));
    await turnEnd();
    assert.deepEqual(asked, [16]);
    assert.equal(sent.length, 2, 'two slots lent');
    l.done(sent[0]);
    await turnEnd();
    assert.equal(sent.length, 3, 'the third in the freed slot');
    l.done(sent[1]);
    await turnEnd();
    assert.deepEqual(asked, [16], 'kept while a task runs in it');
    l.done(sent[2]);
    await turnEnd();
    assert.deepEqual(asked, [16, 0], 'given back');
    // The next task asks again.
    assert.ok(l.submit(task()));
    await turnEnd();
    assert.deepEqual(asked, [16, 0, 16]);
    assert.equal(sent.length, 4);
  });

  it('keeps it for a task submitted in the turn its last slot was freed', async () => {
    const { leases: l, asked, sent } = leases();
    l.submit(task());
    await turnEnd();
    l.done(sent[0]);
    l.submit(task());
    await turnEnd();
    assert.deepEqual(asked, [16]);
    assert.equal(sent.length, 2, 'sent in the lease held');
  });

  it('gives it back when the tasks waiting for a slot are aborted, and when closed', async () => {
    const { leases: l, asked, sent } = leases(1);
    const waiting = task();
    l.submit(task());
    l.submit(waiting);
    await turnEnd();
    assert.deepEqual(l.drop([waiting.header.msg_id]), [waiting.header.msg_id]);
    assert.deepEqual(asked, [16], 'one still runs in it');
    l.close();
    assert.deepEqual(asked, [16, 0]);
    l.done(sent[0]);
    await turnEnd();
    assert.deepEqual(asked, [16, 0], 'given back once');
  });
});

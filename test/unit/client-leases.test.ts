import assert from 'node:assert/strict';
import { Leases, SLOTS_WANTED as W, type Lent } from '../../client/leases';
import type { IMessage, TaskRequestType } from '../../protocol/messages';
import { Session } from '../../protocol/session';

const session = new Session('client-leases-key');

const task = (source = '() => 1'): IMessage<TaskRequestType> =>
  session.msg('apply_request', {
    source,
    mode: 'call',
    refs: [],
    options: { balanced: true },
  });

/** The end of the current turn, and of the promise callbacks before it. */
const turnEnd = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * A client's `Leases` over a hub that lends `lend` slots on each of `engines` engines (ids from
 * 0), asked through `asked`, its high-water mark at `mark`; `to` has the engine of each sent.
 */
function leases(
  lend = 2,
  mark = lend,
  engines = 1,
): {
  leases: Leases;
  asked: number[];
  told: number[];
  sent: string[];
  to: number[];
  viaHub: string[];
} {
  const asked: number[] = [];
  const told: number[] = [];
  const sent: string[] = [];
  const to: number[] = [];
  const viaHub: string[] = [];
  const ask = (slots: number, waiting: number): Promise<Lent> => {
    asked.push(slots);
    told.push(waiting);
    const lent: Record<string, number> = {};
    for (let id = 0; slots > 0 && id < engines; id++) lent[id] = lend;
    return Promise.resolve({ leases: lent, term: 60_000, mark });
  };
  const l = new Leases(
    ask,
    (tasks, engineId) => {
      sent.push(...tasks.map((t) => t.header.msg_id));
      to.push(...tasks.map(() => engineId));
      return true;
    },
    (t) => viaHub.push(t.header.msg_id),
  );
  return { leases: l, asked, told, sent, to, viaHub };
}

describe('client leases', () => {
  it('gives the lease back once nothing waits or runs in it, at the end of the turn', async () => {
    const { leases: l, asked, sent } = leases();
    const tasks = [task(), task(), task()];
    for (const t of tasks) assert.ok(l.submit(t));
    await turnEnd();
    assert.deepEqual(asked, [W]);
    assert.equal(sent.length, 2, 'two slots lent');
    l.done(sent[0], false);
    await turnEnd();
    assert.equal(sent.length, 3, 'the third in the freed slot');
    l.done(sent[1], false);
    await turnEnd();
    assert.deepEqual(asked, [W], 'kept while a task runs in it');
    l.done(sent[2], false);
    await turnEnd();
    assert.deepEqual(asked, [W, 0], 'given back');
    // The next task asks again.
    assert.ok(l.submit(task()));
    await turnEnd();
    assert.deepEqual(asked, [W, 0, W]);
    assert.equal(sent.length, 4);
  });

  it('keeps it for a task submitted in the turn its last slot was freed', async () => {
    const { leases: l, asked, sent } = leases();
    l.submit(task());
    await turnEnd();
    l.done(sent[0], false);
    l.submit(task());
    await turnEnd();
    assert.deepEqual(asked, [W]);
    assert.equal(sent.length, 2, 'sent in the lease held');
  });

  it('gives it back when the tasks waiting for a slot are aborted, and when closed', async () => {
    const { leases: l, asked, sent } = leases(1);
    const waiting = task();
    l.submit(task());
    l.submit(waiting);
    await turnEnd();
    assert.deepEqual(l.drop([waiting.header.msg_id]), [waiting.header.msg_id]);
    assert.deepEqual(asked, [W], 'one still runs in it');
    l.close();
    assert.deepEqual(asked, [W, 0]);
    l.done(sent[0], false);
    await turnEnd();
    assert.deepEqual(asked, [W, 0], 'given back once');
  });

  it('queues beyond the mark only tasks known quick, and none behind one not known', async () => {
    const { leases: l, sent } = leases(4, 1);
    const quick = '() => 1';
    for (let i = 0; i < 3; i++) l.submit(task(quick));
    await turnEnd();
    assert.equal(sent.length, 1, 'not known quick yet: one, at the mark');
    l.done(sent[0], true);
    await turnEnd();
    assert.equal(sent.length, 3, 'known quick: both beyond the mark');
    l.submit(task('() => slow()'));
    await turnEnd();
    assert.equal(sent.length, 3, 'not known quick: waits for the engine to be free');
    l.submit(task(quick));
    l.done(sent[1], true);
    await turnEnd();
    assert.equal(sent.length, 3, 'nor does the quick one behind it pass it');
    l.done(sent[2], true);
    await turnEnd();
    assert.equal(sent.length, 4, 'the engine is free: the other goes');
    await turnEnd();
    assert.equal(sent.length, 4, 'and nothing queues behind it');
    l.done(sent[3], false);
    await turnEnd();
    assert.equal(sent.length, 5);
  });

  it('tells the hub how many wait when it asks, and corrects its count by what waits now', async () => {
    const { leases: l, asked, told, sent } = leases(1);
    // The first asks; the others come while it does.
    for (let i = 0; i < 3; i++) l.submit(task());
    await turnEnd();
    assert.deepEqual([asked, told], [[W], [1]]);
    assert.equal(sent.length, 1);
    assert.equal(l.untold, 1, 'two wait; the hub counts one');
    l.submit(task());
    assert.equal(l.untold, 2);
    l.close();
    assert.deepEqual(
      [asked, told],
      [
        [W, 0],
        [1, 0],
      ],
    );
    assert.equal(l.untold, 0);
  });

  it('sends a task to the engine with the most free slots, of those as free the one used last', async () => {
    const { leases: l, sent, to } = leases(4, 4, 3);
    for (let i = 0; i < 3; i++) {
      l.submit(task());
      await turnEnd();
      l.done(sent[i], true);
    }
    assert.deepEqual(to, [0, 0, 0], 'one at a time: the same engine');
    for (let i = 0; i < 5; i++) l.submit(task());
    await turnEnd();
    assert.deepEqual(to.slice(3), [0, 1, 2, 2, 1], 'together: spread by free slots');
  });
});

import assert from 'node:assert/strict';
import * as zmq from 'zeromq';
import { Channel } from '../../protocol/channel';
import { ProtocolError } from '../../protocol/errors';
import { isMsg, type Message } from '../../protocol/messages';
import { BATCH_DELIMITER, DELIMITER, Session } from '../../protocol/session';
import { delivered } from '../delivered';

const session = new Session('channel-batch-key');
const BIG = 70 * 1024;

/** A `stream` message whose text says where it belongs in the sequence. */
const line = (text: string, identities: Buffer[] = []): Message =>
  session.msg('stream', { name: 'stdout', text }, { identities });

/** The texts of `stream` messages, in the order given. */
const texts = (msgs: Message[]): string[] =>
  msgs.map((m) => (isMsg(m, 'stream') ? m.content.text : `<${m.header.msg_type}>`));

/** The messages a raw ZeroMQ message holds, each checked by `session` as the channel does. */
const opened = (frames: Buffer[]): Message[] =>
  session.unbatch(frames).map((f) => session.receive(f).msg);

const isBatch = (frames: Buffer[]): boolean => frames.some((f) => f.equals(BATCH_DELIMITER));

/** Whether `p` settles before the current turn of the event loop ends. */
async function inThisTurn<T>(p: Promise<T>): Promise<T | 'not in this turn'> {
  const later = new Promise<'not in this turn'>((resolve) =>
    setImmediate(() => resolve('not in this turn')),
  );
  return Promise.race([p, later]);
}

async function take(messages: AsyncGenerator<Message>, n: number): Promise<Message[]> {
  const got: Message[] = [];
  while (got.length < n) {
    const next = await messages.next();
    if (next.done) break;
    got.push(next.value);
  }
  return got;
}

describe('Channel batching over real ZeroMQ sockets', () => {
  const sockets: zmq.Socket[] = [];
  let endpoint = 0;

  /** A bound ROUTER and a connected DEALER over inproc, where a send is seen at once. */
  async function pair(): Promise<{ router: zmq.Router; dealer: zmq.Dealer }> {
    const address = `inproc://channel-batch-${endpoint++}`;
    const router = new zmq.Router({ linger: 0 });
    const dealer = new zmq.Dealer({ linger: 0 });
    sockets.push(router, dealer);
    await router.bind(address);
    dealer.connect(address);
    return { router, dealer };
  }

  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });

  it('sends a lone message at once, as a plain message', async () => {
    const { router, dealer } = await pair();
    const channel = new Channel(dealer, session, undefined, { batch: true });
    channel.send(line('alone'));
    const frames = await inThisTurn(router.receive());
    assert.notEqual(frames, 'not in this turn', 'the first message waited for the turn to end');
    assert.ok(!isBatch(frames as Buffer[]));
    assert.deepEqual(texts(opened(frames as Buffer[])), ['alone']);
  });

  it('sends messages given together as one batch at once, after those it held', async () => {
    const { router, dealer } = await pair();
    const plain = new Channel(dealer, session);
    plain.sendTogether([line('a'), line('b'), line('c')]);
    const together = await inThisTurn(router.receive());
    assert.notEqual(together, 'not in this turn');
    assert.ok(isBatch(together as Buffer[]));
    assert.deepEqual(texts(opened(together as Buffer[])), ['a', 'b', 'c']);
    const batching = new Channel(dealer, session, undefined, { batch: true });
    for (const t of ['1', '2']) batching.send(line(t));
    batching.sendTogether([line('3'), line('4')]);
    const got = [await router.receive(), await router.receive(), await router.receive()];
    assert.deepEqual(got.map(opened).map(texts), [['1'], ['2'], ['3', '4']]);
  });

  it('sends the rest of a turn to one peer as one batch, after the first, in order', async () => {
    const { router, dealer } = await pair();
    const channel = new Channel(dealer, session, undefined, { batch: true });
    for (const t of ['1', '2', '3', '4', '5']) channel.send(line(t));
    const first = await router.receive();
    const second = await router.receive();
    assert.ok(!isBatch(first));
    assert.ok(isBatch(second), 'the other four came one by one');
    assert.deepEqual(texts(opened(first)), ['1']);
    assert.deepEqual(texts(opened(second)), ['2', '3', '4', '5']);
    // The next turn starts afresh: its first message goes alone again.
    await new Promise((resolve) => setImmediate(resolve));
    channel.send(line('6'));
    const third = await inThisTurn(router.receive());
    assert.notEqual(third, 'not in this turn');
    assert.deepEqual(texts(opened(third as Buffer[])), ['6']);
  });

  it('with holdFirst, sends the messages of a turn to one peer as one batch, a lone one as the turn ends', async () => {
    const { router, dealer } = await pair();
    const channel = new Channel(dealer, session, undefined, { batch: true, holdFirst: true });
    channel.send(line('alone'));
    const receiving = router.receive();
    assert.equal(await inThisTurn(receiving), 'not in this turn');
    const lone = await receiving;
    assert.ok(!isBatch(lone));
    assert.deepEqual(texts(opened(lone)), ['alone']);
    for (const t of ['1', '2', '3']) channel.send(line(t));
    const together = await router.receive();
    assert.ok(isBatch(together), 'the first went alone');
    assert.deepEqual(texts(opened(together)), ['1', '2', '3']);
    // A large one still goes at once, after what was held.
    channel.send(line('small'));
    channel.send(line('x'.repeat(BIG)));
    const [small, large] = [await router.receive(), await router.receive()];
    assert.deepEqual(texts(opened(small)), ['small']);
    assert.equal(texts(opened(large))[0].length, BIG);
  });

  it('serves the rest of a batch that messages() took the first of', async () => {
    const { router, dealer } = await pair();
    const sender = new Channel(dealer, session, undefined, { batch: true, holdFirst: true });
    for (const t of ['1', '2', '3']) sender.send(line(t));
    const receiver = new Channel(router, session);
    const first = await receiver.messages().next();
    assert.deepEqual(texts([first.value as Message]), ['1']);
    const rest: Message[] = [];
    void receiver.serve(({ msg }) => rest.push(msg));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(texts(rest), ['2', '3']);
  });

  it('keeps order through a burst, sending large messages alone and large batches in pieces', async () => {
    const { router, dealer } = await pair();
    const channel = new Channel(dealer, session, undefined, { batch: true });
    const expected: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const text = i % 500 === 7 ? `${i}:${'x'.repeat(BIG)}` : String(i);
      expected.push(text);
      channel.send(line(text));
    }
    const got: string[] = [];
    let received = 0;
    while (got.length < expected.length) {
      const frames = await router.receive();
      received++;
      const msgs = texts(opened(frames));
      if (msgs.some((t) => t.length > BIG)) assert.equal(msgs.length, 1, 'a large one was batched');
      got.push(...msgs);
    }
    assert.deepEqual(got, expected);
    // 3000 small messages of about 300 bytes fill a 64 KiB batch about every 200.
    assert.ok(received < 60, `${received} ZeroMQ messages for 3000`);
  });

  it('batches per peer on a ROUTER, and a channel takes each batch apart in order', async () => {
    const { router, dealer } = await pair();
    const other = new zmq.Dealer({ linger: 0 });
    sockets.push(other);
    other.connect(router.lastEndpoint as string);
    const hub = new Channel(router, session, undefined, { batch: true });
    const a = new Channel(dealer, session);
    a.send(line('hello from a'));
    await other.send(delivered(session.frames(line('hello from b'))));
    const hellos = await take(hub.messages(), 2);
    const route = new Map(hellos.map((m) => [texts([m])[0], m.identities]));
    const [toA, toB] = [route.get('hello from a'), route.get('hello from b')];
    assert.ok(toA && toB);
    for (let i = 0; i < 50; i++) {
      hub.send(line(`a${i}`, toA));
      hub.send(line(`b${i}`, toB));
    }
    const names = (p: string): string[] => Array.from({ length: 50 }, (_, i) => `${p}${i}`);
    assert.deepEqual(texts(await take(a.messages(), 50)), names('a'));
    assert.deepEqual(a.dropped, { signature: 0, replay: 0, malformed: 0 });
    const [first, rest] = [await other.receive(), await other.receive()];
    assert.deepEqual(texts(opened(first)), ['b0']);
    assert.ok(isBatch(rest));
    assert.deepEqual(texts(opened(rest)), names('b').slice(1));
  });

  it('batches for engines sharing a link: one batch to their peer, each message behind its own identity', async () => {
    const { router, dealer } = await pair();
    const link = new Channel(dealer, session, undefined, { batch: true, onePeer: true });
    const engines = ['e1', 'e2', 'e3'].map((e) => [Buffer.from(e)]);
    for (const [i, identities] of engines.entries()) link.send(line(`from e${i + 1}`, identities));
    const hub = new Channel(router, session, undefined, { batch: true });
    const got = await take(hub.messages(), 3);
    assert.deepEqual(texts(got), ['from e1', 'from e2', 'from e3']);
    // Each came behind the link's identity, then its engine's.
    assert.deepEqual(
      got.map((m) => m.identities.slice(1).map(String)),
      [['e1'], ['e2'], ['e3']],
    );
    // The hub's answers to the three, one turn's worth, travel to the link as two messages.
    for (const m of got) hub.send(line(`to ${m.identities[1].toString()}`, m.identities));
    const [first, rest] = [await dealer.receive(), await dealer.receive()];
    assert.ok(isBatch(rest));
    const answers = [first, rest].flatMap((frames) => session.unbatch(frames));
    assert.deepEqual(
      answers.map((frames) => session.receive(frames).msg.identities.map(String)),
      [['e1'], ['e2'], ['e3']],
    );
    // One message for all three (the hub's news of an engine's drop), signed once and sent alone
    // to each, is no replay to the link; sent to one of them twice, it is.
    const news = session.msg('stream', { name: 'stdout', text: 'news' });
    const wire = session.body(news);
    for (const m of [...got, got[0]]) {
      await new Promise(setImmediate);
      hub.send({ ...news, identities: m.identities }, wire);
    }
    await new Promise(setImmediate);
    hub.send(line('after', got[0].identities));
    const inbox = link.messages();
    assert.deepEqual(texts(await take(inbox, 4)), ['news', 'news', 'news', 'after']);
    assert.deepEqual(link.dropped, { signature: 0, replay: 1, malformed: 0 });
  });

  it('refuses a tampered, replayed or malformed batch whole, and a bad message in a signed one alone', async () => {
    const { router, dealer } = await pair();
    const errors: Error[] = [];
    const hub = new Channel(router, session, (e) => errors.push(e));
    // Signed by a peer holding the key, but not a valid `stream`.
    const invalid = session.msg('stream', { name: 'stdout', text: 4 } as never);
    const batch = delivered(
      session.batch(
        [],
        [line('one'), invalid, line('three')].map((m) => session.draft(m)),
      ),
    );
    await dealer.send(batch);
    await dealer.send(batch);
    // A byte changed after signing: the batch's signature covers every message in it.
    const tampered = [...batch];
    tampered[3] = Buffer.from(batch[3]);
    tampered[3][tampered[3].length - 3] ^= 1;
    await dealer.send(tampered);
    // Signed, but a layout that does not split it into whole messages: refused whole.
    const broken = session.batch([], [[DELIMITER, '', '{}']]);
    await dealer.send(broken);
    // A message as it travels in a batch, sent alone: its empty signature is no signature.
    await dealer.send(delivered(session.draft(line('lifted'))));
    await dealer.send(delivered(session.frames(line('after'))));
    assert.deepEqual(texts(await take(hub.messages(), 3)), ['one', 'three', 'after']);
    assert.deepEqual(hub.dropped, { signature: 2, replay: 1, malformed: 2 });
    assert.ok(errors.every((e) => e instanceof ProtocolError));
    assert.deepEqual(
      errors.map((e) => e.message),
      [
        'stream: content does not match the message type (content.text is not a string)',
        'batch replayed: its signature was seen before',
        'batch signature is missing or wrong',
        `batch's layout (9,0,2) does not split the 11 bytes it carries into messages of 6 frames or more`,
        'message signature is missing or wrong',
      ],
    );
  });
});

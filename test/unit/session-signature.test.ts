import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';

import { ProtocolError } from '../../protocol/errors';
import { isMsg, packCarried, unpackCarried } from '../../protocol/messages';
import { DELIMITER, Session } from '../../protocol/session';
import { delivered } from '../delivered';

const KEY = 'secret-key';

/** Frames as a peer with `key` would send them: JSON parts signed with HMAC-SHA256. */
function signedFrames(key: string, parts: unknown[], identities: Buffer[] = []): Buffer[] {
  const json = parts.map((p) => Buffer.from(typeof p === 'string' ? p : JSON.stringify(p)));
  const hmac = createHmac('sha256', key);
  for (const p of json) hmac.update(p);
  return [...identities, DELIMITER, Buffer.from(hmac.digest('hex')), ...json];
}

/** The four JSON parts of a valid apply_request, for tests that break one of them. */
function applyParts(session: Session): [Record<string, unknown>, object, object, object] {
  const msg = session.msg('apply_request', {
    source: '(x) => x',
    mode: 'call',
    refs: [],
    options: { balanced: true },
  });
  return [{ ...msg.header }, msg.parent_header, msg.metadata, msg.content];
}

function rejects(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `expected ProtocolError, got ${String(e)}`);
    assert.match(e.message, message);
    return true;
  });
}

describe('Session serialize/deserialize', () => {
  const session = new Session(KEY);

  it('round-trips header, parent header, metadata, content, buffers and identities', () => {
    const parent = session.msg('connection_request', {}).header;
    const msg = session.msg(
      'apply_request',
      {
        source: '(a, b) => a + b',
        mode: 'map',
        refs: [1],
        options: { balanced: false, targets: [2] },
      },
      {
        parent,
        metadata: { note: 'hello', n: 3 },
        buffers: [Buffer.from('first'), Buffer.from([0, 1, 2, 255])],
        identities: [Buffer.from('router-id'), Buffer.from('client-1')],
      },
    );
    const out = session.receive(delivered(session.frames(msg))).msg;
    assert.deepEqual(out.identities, msg.identities);
    assert.deepEqual(out.header, msg.header);
    assert.deepEqual(out.parent_header, parent);
    assert.deepEqual(out.metadata, { note: 'hello', n: 3 });
    assert.deepEqual(out.content, msg.content);
    assert.deepEqual(out.buffers, msg.buffers);
  });

  it('is accepted by another session with the same key', () => {
    const other = new Session(KEY);
    const msg = session.msg('heartbeat', {});
    const out = other.receive(delivered(session.frames(msg))).msg;
    assert.equal(out.header.msg_id, msg.header.msg_id);
    assert.equal(out.header.session, session.id);
  });

  it('passes buffers after the content frame through as the same Buffer objects', () => {
    const big = Buffer.alloc(1 << 16, 7);
    const small = Buffer.from('x');
    const msg = session.msg('apply_reply', { status: 'ok' }, { buffers: [big, small] });
    const frames = delivered(session.frames(msg));
    assert.equal(frames.length, 8);
    assert.equal(frames[6], big);
    assert.equal(frames[7], small);
    const out = session.receive(frames).msg;
    assert.equal(out.buffers[0], big);
    assert.equal(out.buffers[1], small);
  });

  it('gives a relay frames that verify again behind a new identity, text and all', () => {
    const msg = session.msg(
      'apply_request',
      { source: '(s) => s + "é ✓"', mode: 'call', refs: [], options: { balanced: true } },
      { identities: [Buffer.from('client')], buffers: [Buffer.from([0, 255])] },
    );
    const { msg: got, wire } = session.receive(delivered(session.frames(msg)));
    assert.equal(got.header.msg_id, msg.header.msg_id);
    const relayed = [Buffer.from('engine'), ...wire].map((f) => Buffer.from(f));
    const out = new Session(KEY).receive(relayed).msg;
    assert.deepEqual(out.identities, [Buffer.from('engine')]);
    assert.deepEqual(out.content, msg.content);
    assert.deepEqual(out.buffers, msg.buffers);
  });

  it('gives a relay a message that came in a batch unsigned, and signs it if it goes on alone', () => {
    const msgs = ['a', 'b'].map((text) => session.msg('stream', { name: 'stdout', text }));
    const batch = delivered(
      session.batch(
        [],
        msgs.map((m) => session.draft(m)),
      ),
    );
    const [first] = session.unbatch(batch).map((f) => session.receive(f));
    assert.equal(first.wire[1].length, 0, "the batch's signature covered it");
    rejects(() => new Session(KEY).receive(delivered(first.wire)), /signature is missing/);
    const out = new Session(KEY).receive(delivered(session.seal(first.wire))).msg;
    assert.deepEqual(out.content, msgs[0].content);
  });

  it('gives a relay that changed the content frames signed anew, the other parts as they came', () => {
    const msg = session.msg(
      'apply_request',
      { source: '(s) => s + "é"', mode: 'call', refs: [], options: { balanced: true } },
      { identities: [Buffer.from('client')], metadata: { attempt: 2 } },
    );
    const { wire } = session.receive(delivered(session.frames(msg)));
    const content = { ...msg.content, sources: { a: { inline: 1 } } };
    const body = session.rebody(wire, content, [Buffer.from([7])]);
    const out = new Session(KEY).receive(delivered([Buffer.from('engine'), ...body])).msg;
    assert.deepEqual(out.header, msg.header);
    assert.deepEqual(out.metadata, { attempt: 2 });
    assert.deepEqual(out.content, content);
    assert.deepEqual(out.buffers, [Buffer.from([7])]);
  });

  describe('rejects a wrong signature', () => {
    const wrongSignature = /signature is missing or wrong/;
    const frames = (): Buffer[] =>
      delivered(
        session.frames(
          session.msg('result_request', { msg_id: 'abc' }, { identities: [Buffer.from('c')] }),
        ),
      );
    // frames: [identity, delimiter, signature, header, parent, metadata, content]

    it('when the content frame was changed', () => {
      const f = frames();
      f[6] = Buffer.from(JSON.stringify({ msg_id: 'abd' }));
      rejects(() => session.receive(f).msg, wrongSignature);
    });

    it('when the header was changed', () => {
      const f = frames();
      const header = JSON.parse(f[3].toString()) as Record<string, unknown>;
      f[3] = Buffer.from(JSON.stringify({ ...header, username: 'mallory' }));
      rejects(() => session.receive(f).msg, wrongSignature);
    });

    it('when the signature frame is empty', () => {
      const f = frames();
      f[2] = Buffer.alloc(0);
      rejects(() => session.receive(f).msg, wrongSignature);
    });

    it('when the message was signed with another key', () => {
      const f = delivered(
        new Session('another-key').frames(session.msg('result_request', { msg_id: 'a' })),
      );
      rejects(() => session.receive(f).msg, wrongSignature);
    });

    it('when the signature has the right length but wrong bytes', () => {
      const f = frames();
      f[2] = Buffer.from('0'.repeat(f[2].length));
      rejects(() => session.receive(f).msg, wrongSignature);
    });
  });

  describe('rejects malformed frames, naming the problem', () => {
    it('without a <IDS|MSG> delimiter', () => {
      const f = delivered(session.frames(session.msg('heartbeat', {}))).slice(1);
      rejects(() => session.receive(f).msg, /no <IDS\|MSG> delimiter/);
    });

    it('with too few frames after the delimiter', () => {
      const f = delivered(session.frames(session.msg('heartbeat', {}))).slice(0, 5);
      rejects(() => session.receive(f).msg, /4 frames after the delimiter, needs 5/);
    });

    it('with a frame that is not JSON (correctly signed)', () => {
      const [header, parent, metadata] = applyParts(session);
      const f = signedFrames(KEY, [header, parent, metadata, '{"source": ']);
      rejects(() => session.receive(f).msg, /not valid JSON/);
    });

    it('with a JSON frame that is not UTF-8 (correctly signed)', () => {
      const [header, parent, metadata] = applyParts(session);
      const f = signedFrames(KEY, [header, parent, metadata, '{}']);
      f[f.length - 1] = Buffer.from([0x22, 0xf0, 0x90, 0x80, 0x22]); // a cut-off 4-byte sequence
      const hmac = createHmac('sha256', KEY);
      for (const p of f.slice(2)) hmac.update(p);
      f[1] = Buffer.from(hmac.digest('hex'));
      rejects(() => session.receive(f).msg, /not UTF-8/);
    });

    it('with an unknown msg_type', () => {
      const [header, parent, metadata, content] = applyParts(session);
      const f = signedFrames(KEY, [
        { ...header, msg_type: 'frobnicate_request' },
        parent,
        metadata,
        content,
      ]);
      rejects(() => session.receive(f).msg, /unknown message type "frobnicate_request"/);
    });

    it('with a header missing its msg_id', () => {
      const [header, parent, metadata, content] = applyParts(session);
      delete header.msg_id;
      rejects(
        () => session.receive(signedFrames(KEY, [header, parent, metadata, content])).msg,
        /header is malformed/,
      );
    });

    it('with metadata that is not an object', () => {
      const [header, parent, , content] = applyParts(session);
      rejects(
        () => session.receive(signedFrames(KEY, [header, parent, [1], content])).msg,
        /apply_request: parent header and metadata must be objects/,
      );
    });

    type Change = (c: Record<string, unknown>) => Record<string, unknown>;
    const badContent: [string, Change, RegExp][] = [
      ["mode 'x'", (c) => ({ ...c, mode: 'x' }), /content\.mode is not one of call, map/],
      ['no options', ({ options: _options, ...c }) => c, /content\.options is not an object/],
      [
        'options without balanced',
        (c) => ({ ...c, options: { targets: [0] } }),
        /content\.options\.balanced is not true or false/,
      ],
      [
        'an unknown task option',
        (c) => ({ ...c, options: { balanced: true, priority: 3 } }),
        /content\.options\.priority is not a known field \(targets, balanced/,
      ],
      [
        'a task option of the wrong type',
        (c) => ({ ...c, options: { balanced: true, retries: '2' } }),
        /content\.options\.retries is not a number/,
      ],
      [
        'refs that are not numbers',
        (c) => ({ ...c, refs: ['a'] }),
        /content\.refs\[0\] is not a number/,
      ],
    ];
    for (const [what, change, where] of badContent) {
      it(`with apply_request content that has ${what}, naming the field`, () => {
        const [header, parent, metadata, content] = applyParts(session);
        const f = signedFrames(KEY, [header, parent, metadata, change({ ...content })]);
        rejects(
          () => session.receive(f).msg,
          /apply_request: content does not match the message type/,
        );
        rejects(() => session.receive(f).msg, where);
      });
    }

    it('with a reply whose status is neither ok nor a well-formed error', () => {
      const msg = session.msg('apply_reply', { status: 'ok' });
      const parts = [msg.header, msg.parent_header, msg.metadata];
      for (const content of [{ status: 'maybe' }, { status: 'error', ename: 'E' }]) {
        rejects(
          () => session.receive(signedFrames(KEY, [...parts, content])).msg,
          /apply_reply: content does not match/,
        );
      }
    });
  });

  describe('checks messages carried inside another (direct_tasks, direct_replies)', () => {
    const task = session.msg(
      'apply_request',
      { source: '(x) => x', mode: 'call', refs: [], options: { balanced: false, targets: [0] } },
      { buffers: [Buffer.from('arg')] },
    );

    it('unpacks each with its own buffers, as sent', () => {
      const { carried, buffers } = packCarried([task, { ...task, buffers: [] }]);
      const tasks = carried.map((c) => ({ ...c, engine_id: 0 }));
      const msg = session.msg('direct_tasks', { tasks }, { buffers });
      const got = session.receive(delivered(session.frames(msg))).msg;
      assert.ok(isMsg(got, 'direct_tasks'));
      const [a, b] = unpackCarried(got.content.tasks, got.buffers, [Buffer.from('c')]);
      assert.deepEqual(a.content, task.content);
      assert.deepEqual(a.buffers, [Buffer.from('arg')]);
      assert.deepEqual(a.identities, [Buffer.from('c')]);
      assert.deepEqual(b.buffers, []);
    });

    it('refuses one whose buffer counts do not add up to the buffers sent', () => {
      const { carried } = packCarried([task]);
      const msg = session.msg('direct_tasks', { tasks: [{ ...carried[0], engine_id: 0 }] });
      rejects(
        () => session.receive(delivered(session.frames(msg))).msg,
        /direct_tasks: the carried messages count 1 buffers, the message has 0/,
      );
    });

    it('refuses a carried message of a type the carrier does not carry, or bad content', () => {
      const { carried } = packCarried([task]);
      const one = { ...carried[0], engine_id: 0 };
      const wrongType = { ...one, header: { ...one.header, msg_type: 'shutdown_request' } };
      const badContent = { ...one, content: { ...one.content, mode: 'sideways' } };
      for (const [bad, where] of [
        [wrongType, /content\.tasks\[0\]\.header is not one of apply_request, execute_request/],
        [badContent, /content\.tasks\[0\]\.content\.mode is not one of call, map/],
      ] as const) {
        const header = { ...task.header, msg_type: 'direct_tasks' };
        rejects(
          () => session.receive(signedFrames(KEY, [header, {}, {}, { tasks: [bad] }])).msg,
          where,
        );
      }
    });
  });

  describe('with an empty key', () => {
    const unsigned = new Session('');

    it('sends an empty signature and round-trips', () => {
      const msg = unsigned.msg(
        'stream',
        { name: 'stdout', text: 'hi\n' },
        { buffers: [Buffer.from('b')] },
      );
      const frames = delivered(unsigned.frames(msg));
      assert.equal(frames[1].length, 0);
      const out = unsigned.receive(frames).msg;
      assert.deepEqual(out.content, { name: 'stdout', text: 'hi\n' });
      assert.deepEqual(out.buffers, [Buffer.from('b')]);
    });

    it('is rejected by a session that has a key', () => {
      const frames = delivered(unsigned.frames(unsigned.msg('heartbeat', {})));
      rejects(() => session.receive(frames).msg, /signature is missing or wrong/);
    });
  });
});

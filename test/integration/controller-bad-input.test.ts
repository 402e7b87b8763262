import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as zmq from 'zeromq';
import { Session } from '../../protocol/session';
import { useCluster } from './fixture';
import { delivered } from '../delivered';

/** Frames a peer without the key, or with bugs, might send. */
function badMessages(): Buffer[][] {
  const stranger = new Session('not the key');
  const noKey = new Session('');
  const b = (s: string): Buffer => Buffer.from(s);
  return [
    [b('garbage')],
    [b('<IDS|MSG>')],
    [b('<IDS|MSG>'), b('sig'), b('{'), b('{}'), b('{}'), b('{}')],
    delivered(stranger.frames(stranger.msg('queue_status_request', {}))),
    delivered(noKey.frames(noKey.msg('shutdown_request', { hub: true, targets: null }))),
    delivered(
      stranger.frames(stranger.msg('registration_request', { uuid: 'x', pid: 1, hostname: 'h' })),
    ),
  ];
}

describe('the controller under malformed and unsigned messages', () => {
  const t = useCluster(1);

  it('drops them on every socket, acts on none, and keeps serving', async () => {
    const engineFile = t.cluster.clientFile.replace(/client\.json$/, 'engine.json');
    const engineInfo = JSON.parse(readFileSync(engineFile, 'utf8')) as Record<string, string>;
    const addresses = [t.rc.connection.client, engineInfo.engine, engineInfo.heartbeat];
    for (const address of addresses) {
      const peer = new zmq.Dealer({ linger: 0 });
      peer.connect(address);
      for (const frames of badMessages()) await peer.send(frames);
      peer.close();
    }
    // A peer with the key whose request does not fit its type is told so, not left waiting.
    const key = (JSON.parse(readFileSync(t.cluster.clientFile, 'utf8')) as { key: string }).key;
    const insider = new Session(key);
    const peer = new zmq.Dealer({ linger: 0 });
    peer.connect(t.rc.connection.client);
    const bad = insider.msg('abort_request', { msg_ids: [5 as unknown as string] });
    await peer.send(insider.frames(bad));
    const answer = insider.receive(await peer.receive()).msg;
    peer.close();
    assert.equal(answer.header.msg_type, 'abort_reply');
    assert.equal(answer.parent_header.msg_id, bad.header.msg_id);
    assert.ok(answer.content && 'ename' in answer.content);
    assert.equal(answer.content.ename, 'ProtocolError');
    assert.match(answer.content.evalue, /abort_request: content does not match/);
    // A well-formed request after them is answered, and nothing was shut down or registered.
    assert.deepEqual(await t.rc.directView().apply(() => 'still here'), ['still here']);
    const status = await t.rc.queueStatus();
    assert.deepEqual(Object.keys(status).sort(), ['0', 'unassigned']);
    assert.deepEqual(t.rc.ids, [0]);
  });
});

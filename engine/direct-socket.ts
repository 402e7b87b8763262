/**
 * The engine's own ROUTER, where clients send it tasks straight (a direct path, as Ray's owners
 * submit to workers), so that the work itself never waits on the hub; through it too go replies
 * to tasks from the hub whose client is connected to it. It is bound on this host's
 * address toward the controller, on an ephemeral port, and told to the hub at registration; the
 * hub tells clients. When the cluster encrypts, the socket is a CURVE server with a key pair of
 * the engine's own: clients learn its public key from the hub, whose own key they already
 * trust, and no engine ever holds the controller's secret key.
 */
import { createSocket } from 'node:dgram';
import * as zmq from 'zeromq';
import { Channel, NO_DROPPING, notifyDisconnects } from '../protocol/channel';
import type { EngineConnectionInfo } from '../protocol/connection';
import type { DirectAddress } from '../protocol/messages';
import type { Session } from '../protocol/session';

/** Hosts that mean this machine, where the engine listens on loopback only. */
const LOOPBACK = /^(127\.|localhost$|0\.0\.0\.0$|\*$)/;

/** An engine's direct socket, and the address clients reach it at. */
export interface DirectSocket {
  channel: Channel;
  address: DirectAddress;
  /**
   * Notes a client's `direct_hello`: the engine may answer it straight (see
   * `EngineServer.reply`) until its connection closes. Ignored where libzmq cannot tell of
   * closed connections, as a reply to a client no longer connected is dropped unseen.
   */
  greet(identity: Buffer): void;
  /** Whether the client whose session is `session` said hello and is still connected. */
  reaches(session: string): boolean;
}

/**
 * The socket, or `undefined` when no address toward the controller could be found (then
 * clients send this engine's tasks through the hub).
 */
export async function openDirectSocket(
  info: EngineConnectionInfo,
  session: Session,
  log: (line: string) => void,
): Promise<DirectSocket | undefined> {
  const host = await hostToward(info.engine);
  if (host === undefined) {
    log(`no address toward the controller at ${info.engine}: tasks come through the hub only`);
    return undefined;
  }
  const keys = info.curve_serverkey === undefined ? undefined : zmq.curveKeyPair();
  const socket = new zmq.Router({
    ...NO_DROPPING,
    linger: 1000,
    ...(keys ? { curveServer: true, curveSecretKey: keys.secretKey } : {}),
  });
  // Clients' routing ids are their sessions' ids.
  const greeted = new Set<string>();
  let tellsGone = true;
  try {
    notifyDisconnects(socket);
  } catch (e) {
    tellsGone = false;
    log(`replies to tasks from the hub go back through it: ${(e as Error).message}`);
  }
  await socket.bind(`tcp://${host}:*`);
  const channel = new Channel(
    socket,
    session,
    (e) => log(`dropped a message on the direct socket: ${e.message}`),
    { peerGone: (identity) => greeted.delete(identity.toString()) },
  );
  const address: DirectAddress = { address: socket.lastEndpoint as string };
  if (keys) address.curve_serverkey = keys.publicKey;
  return {
    channel,
    address,
    greet: (identity) => {
      if (tellsGone) greeted.add(identity.toString());
    },
    reaches: (id) => greeted.has(id),
  };
}

/** This host's address on the route to `endpoint` (`tcp://host:port`); loopback for a local one. */
async function hostToward(endpoint: string): Promise<string | undefined> {
  const match = /^tcp:\/\/(.+):(\d+)$/.exec(endpoint);
  if (!match) return undefined;
  const [, host, port] = match;
  if (LOOPBACK.test(host)) return '127.0.0.1';
  // Connecting a UDP socket sends nothing; it only asks the kernel which route, and so which
  // local address, a packet to the controller would take.
  const udp = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.connect(Number(port), host.replace(/^\[|\]$/g, ''), resolve);
    });
    const local = udp.address().address;
    return local.includes(':') ? `[${local}]` : local;
  } catch {
    return undefined;
  } finally {
    udp.close();
  }
}

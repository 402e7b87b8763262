/**
 * Connection files: where the controller listens and the key that signs messages. Clients read
 * `controller-client.json`, engines `controller-engine.json`, both under
 * `$TSPARALLEL_DIR/profile_<name>/security/` and readable by their owner only.
 */
import { randomBytes } from 'node:crypto';
import { curveKeyPair } from 'zeromq';
import { promises as fs } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { defineOptions, string, type SpecsOf } from '../options/schema';
import { ConnectionError } from './errors';

interface Common {
  key: string;
  signature_scheme: 'hmac-sha256';
  cluster_id: string;
  /** The controller's CURVE public key (Z85), present when it encrypts (`--curve`). */
  curve_serverkey?: string;
}

/** The controller's CURVE key pair (Z85), kept in a file of its own so that a restart reuses it. */
export interface CurveServerKeys {
  curve_publickey: string;
  curve_secretkey: string;
}

/** What `controller-client.json` holds: where clients connect. */
export interface ClientConnectionInfo extends Common {
  /** ROUTER the client's DEALER talks to. */
  client: string;
  /** PUB that notifications and engine output go out on. */
  iopub: string;
}

/** What `controller-engine.json` holds: where engines connect. */
export interface EngineConnectionInfo extends Common {
  /** ROUTER for registration, tasks and output. */
  engine: string;
  /** ROUTER for heartbeats and control (signals, aborts, shutdown). */
  heartbeat: string;
}

/** Which of the two connection files. */
export type ConnectionRole = 'client' | 'engine';
type InfoFor<R extends ConnectionRole> = R extends 'client'
  ? ClientConnectionInfo
  : EngineConnectionInfo;

const requiredFields: Record<ConnectionRole, string[]> = {
  client: ['client', 'iopub', 'key', 'signature_scheme'],
  engine: ['engine', 'heartbeat', 'key', 'signature_scheme'],
};

/** `$TSPARALLEL_DIR`, or `~/.tsparallel`. */
export function tsparallelDir(): string {
  return process.env.TSPARALLEL_DIR ?? join(homedir(), '.tsparallel');
}

/** A profile's folder: its connection files, cluster files and logs. */
export function profileDir(profile = 'default'): string {
  return join(tsparallelDir(), `profile_${profile}`);
}

function securityDir(profile = 'default'): string {
  return join(profileDir(profile), 'security');
}

/** Profile and cluster names become part of file names: one harmless path segment. */
function fileNameProblem(name: string): string | undefined {
  return name === '' || /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)
    ? undefined
    : `"${name}" may hold only letters, digits, "_", "." and "-"`;
}

/** Names a cluster, so several can share a profile; no default here (each use has its own). */
export const clusterIdSpec = {
  kind: string('<id>'),
  check: fileNameProblem,
  help: 'names the cluster, so several can share a profile',
};

/** Where a controller's files are (and a cluster's, and an engine finds them). */
export interface PlaceOptions {
  /** Profile whose files to use; default `default`. */
  profile?: string;
  /** Names the cluster, so several can share a profile; default `''`, the profile's default cluster. */
  clusterId?: string;
}

/** `PlaceOptions`' schema. */
export const placeOptions = defineOptions('controller', {
  profile: {
    kind: string('<name>'),
    default: 'default',
    help: 'profile whose files to use',
    check: fileNameProblem,
  },
  clusterId: { ...clusterIdSpec, default: '' },
} satisfies SpecsOf<PlaceOptions>);

/** `controller-client.json`, or `controller-<id>-client.json` for a named cluster. */
export function connectionFilePath(
  role: ConnectionRole,
  options: { profile?: string; clusterId?: string } = {},
): string {
  const id = options.clusterId ? `${options.clusterId}-` : '';
  return join(securityDir(options.profile), `controller-${id}${role}.json`);
}

/** Where a controller keeps its CURVE key pair: beside the connection files, never shared. */
export function curveKeysPath(options: { profile?: string; clusterId?: string } = {}): string {
  return connectionFilePath('engine', options).replace(/engine\.json$/, 'curve-secret.json');
}

/** A new CURVE key pair for a controller. */
export function newCurveServerKeys(): CurveServerKeys {
  const { publicKey, secretKey } = curveKeyPair();
  return { curve_publickey: publicKey, curve_secretkey: secretKey };
}

/**
 * Socket options for a client or engine socket: CURVE encryption, with a key pair of its own,
 * when the connection file names the controller's public key; nothing otherwise.
 */
export function curveClientOptions(info: Common): {
  curveServerKey?: string;
  curvePublicKey?: string;
  curveSecretKey?: string;
} {
  if (info.curve_serverkey === undefined) return {};
  const { publicKey, secretKey } = curveKeyPair();
  return {
    curveServerKey: info.curve_serverkey,
    curvePublicKey: publicKey,
    curveSecretKey: secretKey,
  };
}

/** A 256-bit random key, hex encoded. */
export function newKey(): string {
  return randomBytes(32).toString('hex');
}

/** Writes `info` so that only its owner can read it (mode 0600 from creation on). */
export async function writeConnectionFile(path: string, info: object): Promise<void> {
  await fs.mkdir(join(path, '..'), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
  await fs.rename(tmp, path);
}

/** Reads and checks a connection file; `ConnectionError` says what is wrong and what to do. */
export async function readConnectionFile<R extends ConnectionRole>(
  path: string,
  role: R,
): Promise<InfoFor<R>> {
  let text: string;
  try {
    const stat = await fs.stat(path);
    if ((stat.mode & 0o077) !== 0 && process.platform !== 'win32') {
      throw new ConnectionError(
        `connection file ${path} is readable by other users (mode ${(stat.mode & 0o777).toString(8)}); ` +
          `run "chmod 600 ${path}" or start the cluster again`,
      );
    }
    text = await fs.readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof ConnectionError) throw e;
    throw new ConnectionError(
      `cannot read connection file ${path}: is a cluster running? Start one with "tsparallel cluster start"`,
      { cause: e },
    );
  }
  let info: Record<string, unknown>;
  try {
    info = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new ConnectionError(`connection file ${path} is not valid JSON`, { cause: e });
  }
  const missing = requiredFields[role].filter((f) => !(f in info));
  if (missing.length > 0) {
    throw new ConnectionError(
      `connection file ${path} lacks ${missing.join(', ')}: is it a ${role} connection file?`,
    );
  }
  if (typeof info.key !== 'string' || info.key.length === 0) {
    throw new ConnectionError(
      `connection file ${path} has no key, so messages would go unsigned; start the cluster again to get a new one`,
    );
  }
  if (
    info.curve_serverkey !== undefined &&
    !/^[0-9A-Za-z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/.test(String(info.curve_serverkey))
  ) {
    throw new ConnectionError(
      `connection file ${path} has a curve_serverkey that is not a 40-character Z85 key`,
    );
  }
  if (info.signature_scheme !== 'hmac-sha256') {
    throw new ConnectionError(
      `connection file ${path} uses signature scheme "${String(info.signature_scheme)}"; only hmac-sha256 is supported`,
    );
  }
  return { cluster_id: '', ...info } as unknown as InfoFor<R>;
}

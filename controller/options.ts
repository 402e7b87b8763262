/**
 * Everything a controller can be told, once: `ControllerServer.start`, `tsparallel controller`,
 * `tsparallel cluster start` and `Cluster.start({ controller })` all take their options, flags,
 * defaults and checks from here. A new option is one entry below (and its use).
 */
import { isIP } from 'node:net';
import { join } from 'node:path';
import {
  defineOptions,
  flag,
  integer,
  oneOf,
  string,
  type Kind,
  type SpecsOf,
} from '../options/schema';
import { placeOptions, profileDir, type PlaceOptions } from '../protocol/connection';
import { schemeNames, type Scheme } from './schedulers/load-balanced';
import { DEFAULT_RECORD_BYTE_LIMIT, DEFAULT_RECORD_LIMIT } from './task-records';

const ipAddress: Kind<string> = {
  ...string('<address>'),
  expected: 'an IP address such as 127.0.0.1',
  allows: (v) => isIP(v) !== 0,
};

/** Milliseconds of silence before an engine is dead, unless three periods are longer. */
const DEFAULT_HEARTBEAT_DEADLINE = 3000;

/** The deadline when none is given: the default, or three missed beats if periods are long. */
function defaultDeadline(heartbeatPeriod: number): number {
  return Math.max(DEFAULT_HEARTBEAT_DEADLINE, 3 * heartbeatPeriod);
}

/**
 * Controller options a cluster passes on to the controller it starts (`tsparallel controller
 * --help` lists them as flags).
 * @example await Cluster.start({ controller: { db: 'sqlite', heartbeatPeriod: 500 } })
 */
export interface ControllerSettings {
  /** Address to listen on; default `127.0.0.1` (beyond loopback only with `curve` or `insecure`). */
  ip?: string;
  /** Load-balancing scheme; default `leastload`. */
  scheme?: Scheme;
  /** Load-balanced tasks an engine may hold at once; default 1. */
  hwm?: number;
  /**
   * Load-balanced tasks an engine may hold when each is known to run under a millisecond and
   * every engine is at `hwm`: a tiny task then does not wait a round trip; default 16, at most
   * `hwm` turns it off.
   */
  quickDepth?: number;
  /** Where task records live: `memory` (default), or `sqlite[:PATH]` to keep them on disk. */
  db?: string;
  /** Encrypt every connection with CurveZMQ (keys go in the connection files); default false. */
  curve?: boolean;
  /** Allow listening beyond loopback without `curve`; default false. */
  insecure?: boolean;
  /** Finished task records kept. */
  recordLimit?: number;
  /** Bytes of finished tasks' arguments and results kept. */
  recordBytes?: number;
  /** Milliseconds between engine heartbeats; default 1000. */
  heartbeatPeriod?: number;
  /** Milliseconds of silence before an engine is dead; default 3000, at least 3 periods. */
  heartbeatDeadline?: number;
  /**
   * Milliseconds a client's lease on engine slots lasts (load-balanced tasks sent straight to
   * engines); a client renews it while it has work. Default 1000.
   */
  leaseTerm?: number;
  /**
   * Milliseconds within which the controller notices a client whose host stopped answering, and
   * lets go what it held; one whose process ended is noticed at once. Default 30000.
   */
  clientDeadline?: number;
}

/** `ControllerSettings`' schema. */
export const controllerSettings = defineOptions(
  'controller',
  {
    ip: { kind: ipAddress, default: '127.0.0.1', help: 'address to listen on' },
    scheme: {
      kind: oneOf(schemeNames),
      default: 'leastload' as Scheme,
      help: 'load-balancing scheme',
    },
    hwm: { kind: integer(1), default: 1, help: 'load-balanced tasks an engine may hold at once' },
    quickDepth: {
      kind: integer(0),
      default: 16,
      help: 'load-balanced tasks an engine may hold while all run under 1 ms and every engine is at --hwm (at most --hwm: off)',
    },
    db: {
      kind: string('<store>'),
      default: 'memory',
      help: 'where task records live: memory, or sqlite[:PATH] to keep every record and result on disk',
      check: (db: string) =>
        db === 'memory' || db === 'sqlite' || /^sqlite:./.test(db)
          ? undefined
          : `"${db}" is not a task store; use memory, sqlite or sqlite:PATH`,
    },
    curve: {
      kind: flag,
      default: false,
      help: 'encrypt every connection with CurveZMQ (keys go in the connection files)',
    },
    insecure: {
      kind: flag,
      default: false,
      help: 'allow listening beyond loopback without --curve',
    },
    recordLimit: {
      kind: integer(1),
      default: DEFAULT_RECORD_LIMIT,
      help: 'finished task records kept',
    },
    recordBytes: {
      kind: integer(0),
      default: DEFAULT_RECORD_BYTE_LIMIT,
      help: "bytes of finished tasks' arguments and results kept",
    },
    heartbeatPeriod: {
      kind: integer(10, '<ms>'),
      default: 1000,
      help: 'milliseconds between engine heartbeats',
    },
    heartbeatDeadline: {
      kind: integer(20, '<ms>'),
      default: (o: Readonly<Record<string, unknown>>) =>
        defaultDeadline(o.heartbeatPeriod as number),
      help: `milliseconds of silence before an engine is dead (default: ${DEFAULT_HEARTBEAT_DEADLINE}, at least 3 periods)`,
    },
    leaseTerm: {
      kind: integer(10, '<ms>'),
      default: 1000,
      help: "milliseconds a client's lease on engine slots lasts (load-balanced tasks sent straight to engines)",
    },
    clientDeadline: {
      kind: integer(3000, '<ms>'),
      default: 30_000,
      help: 'milliseconds within which a client whose host stopped answering counts as gone, its kept values freed (one whose process ended counts at once)',
    },
  } satisfies SpecsOf<ControllerSettings>,
  settingsProblem,
);

/** Everything a controller can be told, with the defaults filled in. */
export interface ControllerOptions extends Required<ControllerSettings>, Required<PlaceOptions> {
  /** Take over from a controller that stopped: reuse its files and finish its database's tasks. */
  restore: boolean;
  /** Where the controller's log lines go. */
  log: (line: string) => void;
}

/** Everything `tsparallel controller` and `ControllerServer.start` take, but the log. */
export const controllerOptions = defineOptions(
  'controller',
  {
    ...controllerSettings.specs,
    ...placeOptions.specs,
    restore: {
      kind: flag,
      default: false,
      help: "take over from a controller that stopped: reuse its connection files and finish its database's tasks",
    },
  } satisfies SpecsOf<Partial<Omit<ControllerOptions, 'log'>>>,
  settingsProblem,
);

/** The SQLite file of the `db` option, or `null` for memory (the option is checked already). */
export function sqlitePath(
  db: string,
  where: { profile: string; clusterId: string },
): string | null {
  if (db === 'memory') return null;
  if (db === 'sqlite') {
    return join(profileDir(where.profile), `tasks-${where.clusterId || 'default'}.db`);
  }
  return db.slice('sqlite:'.length);
}

/** What is wrong across the controller's settings, naming each as `name` spells it. */
function settingsProblem(
  o: {
    heartbeatPeriod: number;
    heartbeatDeadline: number;
    ip: string;
    curve: boolean;
    insecure: boolean;
  },
  name: (option: string) => string,
): string | undefined {
  if (o.heartbeatDeadline <= o.heartbeatPeriod) {
    return (
      `${name('heartbeatDeadline')} (${o.heartbeatDeadline}) must be longer than ` +
      `${name('heartbeatPeriod')} (${o.heartbeatPeriod}), or every engine would count as dead between its beats`
    );
  }
  if (!o.curve && !o.insecure && !isLoopback(o.ip)) {
    return (
      `refusing to listen on ${o.ip} without encryption: anyone on the network could read the ` +
      `tasks and their data; add ${name('curve')} (or ${name('insecure')} if the network is trusted)`
    );
  }
  return undefined;
}

function isLoopback(ip: string): boolean {
  return isIP(ip) === 4 ? ip.startsWith('127.') : ip === '::1';
}

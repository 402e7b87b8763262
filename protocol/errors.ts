import type { IHeader } from './messages';

/**
 * The error classes of tsparallel, one per condition. Every class sets `name` so that a
 * `RemoteError` can carry it across the wire and the client can rebuild the right class.
 */

/** An exception raised by user code on an engine. */
export class RemoteError extends Error {
  override name = 'RemoteError';
  constructor(
    /** The remote exception's class name, e.g. `TypeError`. */
    readonly ename: string,
    /** The remote exception's message. */
    readonly evalue: string,
    /** The engine's stack trace, one entry per line. */
    readonly traceback: string[],
    /** The engine that raised it. */
    readonly engineId: number,
  ) {
    super(`[engine ${engineId}] ${ename}: ${evalue}`);
  }
}

/** Several tasks failed; `errors` holds each one. Printing shows a bounded number of them. */
export class CompositeError extends Error {
  override name = 'CompositeError';
  static readonly shownTracebacks = 4;
  constructor(readonly errors: Error[]) {
    const shown = errors.slice(0, CompositeError.shownTracebacks).map((e) => `  ${e.message}`);
    const more = errors.length - shown.length;
    super(
      `${errors.length} tasks failed:\n${shown.join('\n')}` +
        (more > 0 ? `\n  ... and ${more} more (see .errors)` : ''),
    );
  }
}

/** The engine running a task died, was stopped, or could not be reached. */
export class EngineError extends Error {
  override name = 'EngineError';
  constructor(
    message: string,
    readonly engineId?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A wait ended before the result arrived; the task itself may still be running. */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** The task was aborted before or while it ran. */
export class TaskAbortedError extends Error {
  override name = 'TaskAbortedError';
}

/** A task's code was interrupted by a signal (`rc.sendSignal`, `abort`, interrupting a cell). */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
}

/**
 * A task's `after`/`follow` dependencies, or the tasks whose results are its arguments, failed
 * or can no longer be met; `cause` is the failed dependency's own error when it had one.
 */
export class DependencyError extends Error {
  override name = 'DependencyError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * A result's value was asked for after it was let go: `ar.release()` was called before it was
 * awaited, or the engine that kept it freed it.
 */
export class ReleasedError extends Error {
  override name = 'ReleasedError';
}

/**
 * A task asks for resources (`withOptions({ resources })`) that no live engine holds, so it
 * could never be placed; the message names the resource and what the engines hold.
 */
export class ResourceError extends Error {
  override name = 'ResourceError';
}

/** A call to an actor after its `release()`: the instance is gone from its engine. */
export class ActorReleasedError extends Error {
  override name = 'ActorReleasedError';
}

/** A value cannot travel between processes; `path` says where in the value it sits. */
export class SerializationError extends Error {
  override name = 'SerializationError';
  constructor(
    message: string,
    readonly path: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * A value sent through shared memory cannot be read: its segment is gone (freed once delivered)
 * or is not what its message says.
 */
export class SharedMemoryError extends Error {
  override name = 'SharedMemoryError';
}

/** The controller cannot be reached, or a connection file is missing or wrong. */
export class ConnectionError extends Error {
  override name = 'ConnectionError';
}

/** The controller has no record of a task: it never saw it, or let it go to bound its memory. */
export class UnknownTaskError extends Error {
  override name = 'UnknownTaskError';
}

/** The controller failed on a request: a bug in the hub, reported instead of leaving the caller waiting. */
export class HubError extends Error {
  override name = 'HubError';
}

/** The reasons a received message is dropped, as counted by each socket. */
export type DropKind = 'signature' | 'replay' | 'malformed';

/** Bytes that do not form a valid, correctly signed tsparallel message. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
  constructor(
    message: string,
    /** Why the message was refused: a bad signature, a replay, or anything else. */
    readonly kind: DropKind = 'malformed',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
  /**
   * Set when the message was correctly signed and its header readable, so that its sender, a
   * peer holding the key with a bug, can be told what was wrong instead of waiting forever.
   */
  refused?: { identities: Buffer[]; header: IHeader };
}

/** What an error reply says, as far as rebuilding the error needs it. */
export interface WireError {
  ename: string;
  evalue: string;
  traceback: string[];
  engine_id?: number;
  /** The error that made this one (a failed dependency's). */
  cause?: WireError;
}

/**
 * tsparallel's own conditions by the name they travel under (an error reply's `ename`), each
 * with how the receiving side rebuilds it. The hub and the engines name only these; a request
 * with a value out of range is refused as `RangeError`, as a local call would be.
 */
const conditions = {
  EngineError: (evalue, engineId) => new EngineError(evalue, engineId),
  TimeoutError: (evalue) => new TimeoutError(evalue),
  TaskAbortedError: (evalue) => new TaskAbortedError(evalue),
  InterruptedError: (evalue) => new InterruptedError(evalue),
  DependencyError: (evalue, _engineId, cause) => new DependencyError(evalue, { cause }),
  ReleasedError: (evalue) => new ReleasedError(evalue),
  SerializationError: (evalue) => new SerializationError(evalue, ''),
  ConnectionError: (evalue) => new ConnectionError(evalue),
  SharedMemoryError: (evalue) => new SharedMemoryError(evalue),
  UnknownTaskError: (evalue) => new UnknownTaskError(evalue),
  ProtocolError: (evalue) => new ProtocolError(evalue),
  RangeError: (evalue) => new RangeError(evalue),
  HubError: (evalue) => new HubError(evalue),
  ResourceError: (evalue) => new ResourceError(evalue),
} satisfies Record<
  string,
  (evalue: string, engineId: number | undefined, cause: Error | undefined) => Error
>;

/** The `ename` of each of tsparallel's own conditions. */
export type ConditionName = keyof typeof conditions;

/** True when `ename` names one of tsparallel's own conditions rather than user code's error. */
function isCondition(ename: string): ename is ConditionName {
  return Object.hasOwn(conditions, ename);
}

/**
 * The error an error reply stands for: tsparallel's own class when the hub or an engine named
 * one of its conditions (they send no traceback), a `RemoteError` when user code threw, with the
 * user's own `ename`. `engineId` is where the task ran, when the reply does not say.
 */
export function errorFromWire(reply: WireError, engineId: number | null): Error {
  const id = reply.engine_id ?? engineId;
  if (reply.traceback.length === 0) {
    const cause = reply.cause && errorFromWire(reply.cause, null);
    if (isCondition(reply.ename))
      return conditions[reply.ename](reply.evalue, id ?? undefined, cause);
    if (id === null) return Object.assign(new Error(reply.evalue), { name: reply.ename });
  }
  return new RemoteError(reply.ename, reply.evalue, reply.traceback, id ?? -1);
}

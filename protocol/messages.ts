/**
 * Every message tsparallel puts on the wire, typed once. `msg_type` values reuse Jupyter's and
 * ipyparallel's names (`<noun>_request` / `<noun>_reply`, plain nouns for output).
 * `validateMessage` checks a decoded message against its type; `Session.receive` calls it (or the
 * `accept` its caller gives) and is the one gate where bytes off a socket become a typed message.
 */
import {
  arrayOf,
  bool,
  explain,
  is,
  isObject,
  nullable,
  num,
  obj,
  oneOf,
  onlyFields,
  optional,
  recordOf,
  shape,
  str,
  type Check,
} from './validate';
import { resourcesProblem, type Resources } from './resources';

/** Engine ids are small integers handed out by the controller, never reused. */
export type EngineId = number;

/** Where a task may run and what it waits for; set by the client, read by the schedulers. */
export interface TaskOptions {
  /** Direct: exactly one engine. Load-balanced: the engines allowed, or absent for any. */
  targets?: EngineId[];
  balanced: boolean;
  /** Message ids that must finish successfully before this task starts. */
  after?: string[];
  /** Message ids whose engine this task must run on. */
  follow?: string[];
  /** How many times to rerun the task elsewhere if its engine dies. */
  retries?: number;
  label?: string;
  /** What the task occupies on its engine while it runs (`{ gpu: 1 }`); nothing when absent. */
  resources?: Resources;
}

/** A registered engine, as the hub tells clients about it. */
export interface EngineInfo {
  id: EngineId;
  uuid: string;
  pid: number;
  hostname: string;
  registered: string;
  /** The launch that started the engine (a cluster's engine set), when a cluster started it. */
  engine_set?: string;
  /** The engine's place in its MPI job, when `mpiexec` started it. */
  mpi?: MpiPlace;
  /**
   * The shared memory the engine sees (`sharedMemoryHost()`): a client that sees the same sends
   * it large values through `/dev/shm`.
   */
  shared_memory?: string;
  /** Where clients may send the engine tasks straight, bypassing the hub. */
  direct?: DirectAddress;
  /** What the engine holds for tasks to ask for (`declaredResources`: one CPU by default). */
  resources: Resources;
}

/**
 * An engine's own ROUTER, where clients send it tasks without the hub (see
 * `engine/direct-socket.ts`), with the engine's CURVE public key when the cluster encrypts.
 */
export interface DirectAddress {
  address: string;
  curve_serverkey?: string;
}

/** An MPI process's rank and the size of its job (`MPI_COMM_WORLD`). */
export interface MpiPlace {
  rank: number;
  size: number;
}

/** The content of every error reply: tsparallel conditions and user exceptions alike. */
export interface ErrorContent {
  status: 'error';
  ename: string;
  evalue: string;
  traceback: string[];
  engine_id?: EngineId;
  /** What made this error: a `DependencyError`'s failed dependency, as its own reply said. */
  cause?: Omit<ErrorContent, 'status'>;
}

/**
 * An argument that is the result of other tasks (an `AsyncResult` given to `apply` or in a
 * `map` sequence): the engine puts in its place what `await` on that result gives.
 */
export interface ResultArg {
  /** `[i]`: apply's argument i; `[i, j]`: element j of the i-th sequence's chunk of a map. */
  path: number[];
  /** The tasks whose values make the argument, in the result's order. */
  msg_ids: string[];
  /**
   * How their values make it, as `await` does: `one` the single value (a load-balanced apply),
   * `array` one per task (a direct view's apply), `flat` the tasks' lists joined (a map).
   */
  combine: 'one' | 'array' | 'flat';
}

/**
 * Where the value of a task a dependant needs is, as the hub tells the engine that runs the
 * dependant: in the request's last buffers (`inline` of them, in the order of `sources`), or kept
 * on engine `kept_on`, fetched from its direct socket (`direct`) unless that is the engine itself.
 */
export type ValueSource = { inline: number } | { kept_on: EngineId; direct?: DirectAddress };

/** A reply: `status: "ok"` with its fields, or an error. */
export type ReplyStatus<T> = ({ status: 'ok' } & T) | ErrorContent;

/** One engine's share of the work, from `queue_status_request`. */
export interface QueueCounts {
  /** Tasks sent to the engine and not yet finished. */
  queue: number;
  completed: number;
  /** Of `queue`, the tasks placed by the load-balanced scheduler. */
  tasks: number;
  /** The engine's process as its latest heartbeat measured it, once it has sent one. */
  usage?: EngineUsage;
  /** Of the engine's resources, what the tasks it holds occupy (only those in use). */
  resources_in_use?: Resources;
}

/**
 * An engine process's CPU (percent of one core since its previous beat) and memory (RSS bytes),
 * and the bytes of the results its engines keep (see `apply_reply`).
 */
export interface EngineUsage {
  cpu: number;
  rss: number;
  kept: number;
}

/** A task's record as `result_request` returns it. */
export interface TaskRecordSummary {
  msg_id: string;
  engine_id: EngineId | null;
  state: 'pending' | 'running' | 'completed' | 'failed' | 'aborted';
  submitted: string;
  started: string | null;
  completed: string | null;
  label: string | null;
  /** The reply's content when finished; result values ride in the message's buffers. */
  reply: ReplyStatus<object> | null;
  /** The result was let go to bound the hub's memory. */
  buffers_dropped: boolean;
  /**
   * How many of the reply's buffers, after the result's, hold the latest data the task
   * published; absent when it published none.
   */
  data_buffers?: number;
}

/**
 * A message carried inside another (`direct_tasks`, `direct_replies`): its JSON parts, and how
 * many of the carrier's buffers are its own, in order.
 */
export type Carried<T extends MsgType> = {
  [K in T]: {
    header: IHeader<K>;
    parent_header: IHeader | Record<string, never>;
    metadata: Record<string, unknown>;
    content: ContentMap[K];
    buffers: number;
  };
}[T];

/** Content of every message type, keyed by `msg_type`. */
export interface ContentMap {
  // Tasks: client -> controller -> engine, and back.
  apply_request: {
    source: string;
    mode: 'call' | 'map';
    refs: number[];
    options: TaskOptions;
    /** Arguments that are other tasks' results; each of their tasks is also in `after`. */
    results?: ResultArg[];
    /** Set by the hub as it sends the task: where each of those tasks' values is, by msg id. */
    sources?: Record<string, ValueSource>;
  };
  /**
   * `kept`: the result's size in bytes when it stays on the engine that made it
   * (`value_request` fetches it): when it is large, or its request's metadata says
   * `intermediate` (other tasks take it, its client does not await it yet). Else the value
   * rides in the buffers. A small kept one
   * rides all the same to the hub, which keeps it for the tasks that take it, but never on to
   * the client.
   */
  apply_reply: ReplyStatus<{ kept?: number }>;
  execute_request: { code: string; silent: boolean; options: TaskOptions };
  execute_reply: ReplyStatus<{ execution_count: number }>;
  // Output from engines, relayed to the owning client and published to all.
  stream: { name: 'stdout' | 'stderr'; text: string };
  display_data: { data: Record<string, string>; metadata: Record<string, unknown> };
  execute_result: {
    data: Record<string, string>;
    metadata: Record<string, unknown>;
    execution_count: number;
  };
  // Engine lifecycle.
  registration_request: {
    uuid: string;
    pid: number;
    hostname: string;
    engine_set?: string;
    mpi?: MpiPlace;
    shared_memory?: string;
    direct?: DirectAddress;
    /** What the engine declares it holds; one CPU when absent. */
    resources?: Resources;
  };
  registration_reply: ReplyStatus<{
    id: EngineId;
    heartbeat_period: number;
    heartbeat_deadline: number;
  }>;
  /** The sender's identity says which engine leaves. */
  unregistration_request: Record<string, never>;
  /**
   * The sender's identity says whose beat it is, or `engines` names them: the lightweight
   * engines of one process beat together over its shared link (engine/shared-link.ts). A beat
   * carries its process's usage, the hub's answer nothing.
   */
  heartbeat: { usage?: EngineUsage; engines?: string[] };
  /** Hub to an engine it does not know (dropped, or the hub restarted): register again. */
  registration_lost: { reason: string };
  registration_notification: { engine: EngineInfo };
  unregistration_notification: { id: EngineId; reason: string };
  // Direct paths: what went between clients and engines without the hub, told to the hub
  // afterwards, batched, so that its records, retries and aborts cover those tasks too.
  /** Client to hub: tasks this client sent straight to engines, each with the engine's id. */
  direct_tasks: { tasks: (Carried<TaskRequestType> & { engine_id: EngineId })[] };
  /**
   * Engine to hub: its replies that went to clients straight, as the clients got them, at most
   * `DIRECT_REPORT_MS` later (as its turn ends for tasks that came through the hub).
   */
  direct_replies: { replies: Carried<ReplyType<TaskRequestType>>[] };
  /**
   * Client to engine, first on each direct socket: the client is connected, so the engine may
   * answer it straight, and tell the hub afterwards, for tasks that came through the hub too.
   */
  direct_hello: Record<string, never>;
  // Requests a client makes of the hub, and control the hub sends engines.
  connection_request: Record<string, never>;
  connection_reply: ReplyStatus<{ engines: EngineInfo[] }>;
  /**
   * A client asks to send load-balanced tasks straight to engines, up to `slots` at a time on
   * each; the hub lends what it can spare for `term` milliseconds (see `controller/leases.ts`).
   * A new request replaces the client's lease; one for 0 slots gives it back. `waiting`: tasks
   * waiting in the client for a slot, which queue status counts as unassigned while it holds
   * the lease (adaptive scaling grows the cluster for them).
   */
  lease_request: { slots: number; waiting: number };
  /** `mark`: the hub's high-water mark, the depth for a task not known quick (see leases.ts). */
  lease_reply: ReplyStatus<{ leases: Record<string, number>; term: number; mark: number }>;
  queue_status_request: Record<string, never>;
  queue_status_reply: ReplyStatus<{ engines: Record<string, QueueCounts>; unassigned: number }>;
  abort_request: { msg_ids: string[] };
  abort_reply: ReplyStatus<{ aborted: string[] }>;
  signal_request: { signal: string; targets: EngineId[] | null };
  signal_reply: ReplyStatus<{ targets: EngineId[] }>;
  result_request: { msg_id: string };
  result_reply: ReplyStatus<{ record: TaskRecordSummary }>;
  /** `new_msg_ids[i]` becomes the id of the rerun of `msg_ids[i]`. */
  resubmit_request: { msg_ids: string[]; new_msg_ids: string[] };
  resubmit_reply: ReplyStatus<{ resubmitted: Record<string, string> }>;
  shutdown_request: { hub: boolean; targets: EngineId[] | null };
  shutdown_reply: ReplyStatus<object>;
  /**
   * Provisional data a running task gave `publish(data)` (ipyparallel's `data_message`): the
   * value rides in the buffers, and it travels as the task's output does.
   */
  data_message: Record<string, never>;
  // Values kept on engines (intermediates, and results too large to travel unasked; see
  // `apply_reply`).
  /**
   * To an engine's direct socket, from a client awaiting the value or an engine running a task
   * that needs it; the reply carries it in its buffers or a shared memory segment.
   */
  value_request: { msg_id: string };
  value_reply: ReplyStatus<object>;
  /**
   * Client to hub: it holds no `AsyncResult` for these tasks any more. Hub to engine: nobody
   * needs these kept values any more; free them.
   */
  value_release: { msg_ids: string[] };
  /**
   * Client to hub: code awaits these intermediates after all, sent through the hub and not
   * ended yet: their replies bring the hub's copy of a small value along.
   */
  value_wanted: { msg_ids: string[] };
}

/** Every `msg_type` tsparallel knows. */
export type MsgType = keyof ContentMap;

/** A message's header, as in the Jupyter protocol. */
export interface IHeader<T extends string = MsgType> {
  msg_id: string;
  msg_type: T;
  session: string;
  username: string;
  date: string;
  version: string;
}

/** A message of type `T`, decoded and verified. */
export interface IMessage<T extends MsgType = MsgType> {
  /** ZeroMQ routing identities before the `<IDS|MSG>` delimiter. */
  identities: Buffer[];
  header: IHeader<T>;
  /** The header of the message this one answers, or `{}`. */
  parent_header: IHeader | Record<string, never>;
  metadata: Record<string, unknown>;
  content: ContentMap[T];
  buffers: Buffer[];
}

/** A message of any of the types `T`, discriminated by `header.msg_type`. */
export type MessageOf<T extends MsgType> = { [K in T]: IMessage<K> }[T];

/** The union of every message, discriminated by `header.msg_type`. */
export type Message = MessageOf<MsgType>;

/** Narrows a message to its type. */
export function isMsg<T extends MsgType>(msg: Message, type: T): msg is IMessage<T> & Message {
  return msg.header.msg_type === type;
}

/** The `<noun>_request` types that have a `<noun>_reply`; the compiler derives the list. */
export type RequestType = {
  [T in MsgType]: T extends `${infer Noun}_request`
    ? `${Noun}_reply` extends MsgType
      ? T
      : never
    : never;
}[MsgType];

/** The reply type a request's name calls for; `replyTypes` is checked against it. */
type ReplyOf<T extends RequestType> = T extends `${infer Noun}_request`
  ? Extract<`${Noun}_reply`, MsgType>
  : never;

/**
 * How long an engine may hold a direct task's reply, already sent to its client, before telling
 * the hub (`direct_replies`): a run of round trips then wakes the hub once, not once per task,
 * which on two cores costs each round trip a sixth of its time. The hub holds an answer about
 * such a task that long and more (see `TaskDispatcher.whenSettled`).
 */
export const DIRECT_REPORT_MS = 5;

/**
 * Each request's reply type, the one place it is spelt; a new request with a reply fails to
 * compile until it is listed here.
 */
export const replyTypes: { readonly [T in RequestType]: ReplyOf<T> } = {
  apply_request: 'apply_reply',
  execute_request: 'execute_reply',
  registration_request: 'registration_reply',
  connection_request: 'connection_reply',
  lease_request: 'lease_reply',
  queue_status_request: 'queue_status_reply',
  abort_request: 'abort_reply',
  signal_request: 'signal_reply',
  result_request: 'result_reply',
  resubmit_request: 'resubmit_reply',
  shutdown_request: 'shutdown_reply',
  value_request: 'value_reply',
};

/** The reply type of request type `T`. */
export type ReplyType<T extends RequestType> = (typeof replyTypes)[T];

/** True for a request that has a reply, which a sender waits for. */
export function isRequestType(type: string): type is RequestType {
  return Object.hasOwn(replyTypes, type);
}

/** The requests that carry a task through the hub to an engine. */
export type TaskRequestType = 'apply_request' | 'execute_request';
/** The requests only engines send, on their task socket. */
export type EngineRequestType = 'registration_request';
/** The requests that go to an engine's direct socket, from clients and other engines. */
export type PeerRequestType = 'value_request';
/** The requests a client may send the hub: every request but the engines' own. */
export type ClientRequestType = Exclude<RequestType, EngineRequestType | PeerRequestType>;

// --- validation -------------------------------------------------------------------------------

const reply = (fields: Record<string, Check>): Check => {
  const status = shape({ status: oneOf(['ok', 'error']) });
  const ok = shape(fields);
  return (v) =>
    status(v) ?? ((v as { status: string }).status === 'error' ? errorContent(v) : ok(v));
};

const resourceMap: Check = (v) => {
  const problem = resourcesProblem(v);
  return problem === undefined ? null : { path: [], expected: `resources (it ${problem})` };
};
const optionChecks: Record<keyof TaskOptions, Check> = {
  targets: arrayOf(num),
  balanced: bool,
  after: arrayOf(str),
  follow: arrayOf(str),
  retries: num,
  label: str,
  resources: resourceMap,
};
const requiredOptions = shape({ balanced: bool });
const knownOptions = onlyFields(optionChecks);
const taskOptions: Check = (v) => requiredOptions(v) ?? knownOptions(v);
const directAddress = shape({ address: str, curve_serverkey: optional(str) });
const launchFields = {
  engine_set: optional(str),
  mpi: optional(shape({ rank: num, size: num })),
  direct: optional(directAddress),
};
const engineInfo = shape({
  id: num,
  uuid: str,
  pid: num,
  hostname: str,
  registered: str,
  ...launchFields,
  shared_memory: optional(str),
  resources: resourceMap,
});
const engineUsage = shape({ cpu: num, rss: num, kept: num });
const queueCounts = shape({
  queue: num,
  completed: num,
  tasks: num,
  usage: optional(engineUsage),
  resources_in_use: optional(resourceMap),
});
const errorFields = {
  ename: str,
  evalue: str,
  traceback: arrayOf(str),
  engine_id: optional(num),
  cause: optional((v) => errorCause(v)),
};
const errorCause: Check = shape(errorFields);
const errorContent = shape({ status: oneOf(['error']), ...errorFields });
const resultArg = shape({
  path: arrayOf(num),
  msg_ids: arrayOf(str),
  combine: oneOf(['one', 'array', 'flat']),
});
const valueSource: Check = (v) =>
  isObject(v) && 'inline' in v
    ? shape({ inline: num })(v)
    : shape({ kept_on: num, direct: optional(directAddress) })(v);
const okContent = shape({ status: oneOf(['ok']) });
const taskRecord = shape({
  msg_id: str,
  engine_id: nullable(num),
  state: oneOf(['pending', 'running', 'completed', 'failed', 'aborted']),
  submitted: str,
  started: nullable(str),
  completed: nullable(str),
  label: nullable(str),
  reply: nullable((v) => (okContent(v) === null ? null : errorContent(v))),
  buffers_dropped: bool,
  data_buffers: optional(num),
});
const stringMap = recordOf(str);

const contentChecks: Record<MsgType, Check> = {
  apply_request: shape({
    source: str,
    mode: oneOf(['call', 'map']),
    refs: arrayOf(num),
    options: taskOptions,
    results: optional(arrayOf(resultArg)),
    sources: optional(recordOf(valueSource)),
  }),
  apply_reply: reply({ kept: optional(num) }),
  execute_request: shape({ code: str, silent: bool, options: taskOptions }),
  execute_reply: reply({ execution_count: num }),
  stream: shape({ name: oneOf(['stdout', 'stderr']), text: str }),
  display_data: shape({ data: stringMap, metadata: obj }),
  execute_result: shape({ data: stringMap, metadata: obj, execution_count: num }),
  registration_request: shape({
    uuid: str,
    pid: num,
    hostname: str,
    ...launchFields,
    shared_memory: optional(str),
    resources: optional(resourceMap),
  }),
  direct_tasks: shape({
    tasks: arrayOf(carried(['apply_request', 'execute_request'], { engine_id: num })),
  }),
  direct_replies: shape({ replies: arrayOf(carried(['apply_reply', 'execute_reply'])) }),
  direct_hello: obj,
  registration_reply: reply({ id: num, heartbeat_period: num, heartbeat_deadline: num }),
  unregistration_request: obj,
  heartbeat: shape({ usage: optional(engineUsage), engines: optional(arrayOf(str)) }),
  registration_lost: shape({ reason: str }),
  registration_notification: shape({ engine: engineInfo }),
  unregistration_notification: shape({ id: num, reason: str }),
  connection_request: obj,
  connection_reply: reply({ engines: arrayOf(engineInfo) }),
  lease_request: shape({ slots: num, waiting: num }),
  lease_reply: reply({ leases: recordOf(num), term: num, mark: num }),
  queue_status_request: obj,
  queue_status_reply: reply({ engines: recordOf(queueCounts), unassigned: num }),
  abort_request: shape({ msg_ids: arrayOf(str) }),
  abort_reply: reply({ aborted: arrayOf(str) }),
  signal_request: shape({ signal: str, targets: nullable(arrayOf(num)) }),
  signal_reply: reply({ targets: arrayOf(num) }),
  result_request: shape({ msg_id: str }),
  result_reply: reply({ record: taskRecord }),
  resubmit_request: shape({ msg_ids: arrayOf(str), new_msg_ids: arrayOf(str) }),
  resubmit_reply: reply({ resubmitted: stringMap }),
  shutdown_request: shape({ hub: bool, targets: nullable(arrayOf(num)) }),
  shutdown_reply: reply({}),
  data_message: obj,
  value_request: shape({ msg_id: str }),
  value_reply: reply({}),
  value_release: shape({ msg_ids: arrayOf(str) }),
  value_wanted: shape({ msg_ids: arrayOf(str) }),
};

/**
 * A carried message (see `Carried`) of one of `types`, its content checked as its own type's;
 * looked up when called, as the table it uses is built after it.
 */
function carried(types: MsgType[], more: Record<string, Check> = {}): Check {
  const parts = shape({
    ...more,
    header: (v) => headerCheck(v) ?? oneOf(types)((v as { msg_type: unknown }).msg_type) ?? null,
    parent_header: obj,
    metadata: obj,
    buffers: is((v) => Number.isInteger(v) && (v as number) >= 0, 'a count of buffers'),
  });
  return (v) => {
    const problem = parts(v);
    if (problem) return problem;
    const { header, content } = v as { header: { msg_type: MsgType }; content: unknown };
    const bad = contentChecks[header.msg_type](content);
    if (bad) bad.path.unshift('content');
    return bad;
  };
}

/** The messages that carry others, and where in their content the carried ones are. */
const carriers: { [T in MsgType]?: (content: ContentMap[T]) => { buffers: number }[] } = {
  direct_tasks: (c) => c.tasks,
  direct_replies: (c) => c.replies,
};

/**
 * The messages `carried` holds, whole: each with `identities` and its share of `buffers`, which
 * the gate checked add up (`validateMessage`).
 */
export function unpackCarried<T extends MsgType>(
  carried: Carried<T>[],
  buffers: Buffer[],
  identities: Buffer[],
): MessageOf<T>[] {
  let at = 0;
  return carried.map(({ header, parent_header, metadata, content, buffers: n }) => {
    const own = buffers.slice(at, (at += n));
    return { header, parent_header, metadata, content, identities, buffers: own } as MessageOf<T>;
  });
}

/** What `unpackCarried`'s caller carries: messages as they would go on the wire on their own. */
export function packCarried<T extends MsgType>(
  messages: IMessage<T>[],
): { carried: Carried<T>[]; buffers: Buffer[] } {
  const buffers: Buffer[] = [];
  const carried = messages.map((m) => {
    buffers.push(...m.buffers);
    const { header, parent_header, metadata, content } = m;
    return { header, parent_header, metadata, content, buffers: m.buffers.length } as Carried<T>;
  });
  return { carried, buffers };
}

/** True for the `msg_type` of a message tsparallel knows. */
function isMsgType(type: string): type is MsgType {
  return Object.hasOwn(contentChecks, type);
}

const headerCheck = shape({ msg_id: str, msg_type: str, session: str, username: str, date: str });

/** True for a well-formed header, whatever its type. */
export function isHeader(v: unknown): v is IHeader {
  return headerCheck(v) === null && typeof (v as { version?: unknown }).version === 'string';
}

/**
 * Checks a decoded message's header and content against its `msg_type`. Throws `TypeError`
 * naming what is wrong; past this point the message is trusted to match its type.
 */
export function validateMessage(msg: {
  header: unknown;
  parent_header: unknown;
  metadata: unknown;
  content: unknown;
  buffers?: unknown[];
}): asserts msg is Message {
  const badHeader = headerCheck(msg.header);
  if (badHeader)
    throw new TypeError(`message header is malformed: ${explain(badHeader, 'header')}`);
  const type = (msg.header as { msg_type: string }).msg_type;
  if (!isMsgType(type)) throw new TypeError(`unknown message type "${type}"`);
  if (!isObject(msg.parent_header) || !isObject(msg.metadata)) {
    throw new TypeError(`${type}: parent header and metadata must be objects`);
  }
  const badContent = contentChecks[type](msg.content);
  if (badContent) {
    throw new TypeError(
      `${type}: content does not match the message type (${explain(badContent, 'content')})`,
    );
  }
  const carriedIn = carriers[type] as ((c: unknown) => { buffers: number }[]) | undefined;
  if (carriedIn && msg.buffers) {
    const counted = carriedIn(msg.content).reduce((n, m) => n + m.buffers, 0);
    if (counted !== msg.buffers.length) {
      throw new TypeError(
        `${type}: the carried messages count ${counted} buffers, the message has ${msg.buffers.length}`,
      );
    }
  }
}

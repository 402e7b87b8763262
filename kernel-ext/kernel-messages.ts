/**
 * The Jupyter kernel messages this kernel answers itself rather than leaving to tslab: execution
 * (so that magics run before tslab sees a cell), comms, and interrupts. Each request's content is
 * checked once, in `parseKernelRequest`; tslab handles every other type.
 */
import type { Envelope, RawEnvelope } from '../protocol/session';
import { isHeader } from '../protocol/messages';
import {
  bool,
  explain,
  isObject,
  obj,
  optional,
  shape,
  str,
  type Check,
} from '../protocol/validate';

/** The content of each request the kernel handles. */
export interface RequestContent {
  execute_request: {
    code: string;
    silent: boolean;
    store_history?: boolean;
    stop_on_error?: boolean;
  };
  comm_info_request: { target_name?: string };
  comm_open: { comm_id: string; target_name: string; data: unknown };
  comm_msg: { comm_id: string; data: unknown };
  comm_close: { comm_id: string; data?: unknown };
  interrupt_request: Record<string, never>;
}

/** Rich output: data by MIME type, as Jupyter's display messages carry it. */
export interface DisplayContent {
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  transient?: { display_id?: string };
}

/** The content of an `error` message (and of an error reply, with `status`). */
export interface ErrorContent {
  ename: string;
  evalue: string;
  traceback: string[];
}

/** The content of each IOPub message the kernel publishes itself. */
export interface IopubContent {
  status: { execution_state: 'busy' | 'idle' };
  execute_input: { code: string; execution_count: number };
  stream: { name: 'stdout' | 'stderr'; text: string };
  display_data: DisplayContent;
  update_display_data: DisplayContent;
  execute_result: DisplayContent & { execution_count: number };
  error: ErrorContent;
  comm_msg: { comm_id: string; data: unknown };
  comm_close: { comm_id: string; data: unknown };
}

/** The content of each reply the kernel sends itself. */
export interface ReplyContent {
  execute_reply:
    | { status: 'ok'; execution_count: number; user_expressions: object; payload: object[] }
    | ({ status: 'error'; execution_count: number } & ErrorContent);
  comm_info_reply: { status: 'ok'; comms: Record<string, { target_name: string }> };
  interrupt_reply: { status: 'ok' };
}

/** A request type the kernel handles itself. */
export type RequestType = keyof RequestContent;

/** A verified request: its type, its content, and the message it came in (for replies). */
export type KernelRequest = {
  [T in RequestType]: { type: T; content: RequestContent[T]; envelope: Envelope };
}[RequestType];

const checks: Record<RequestType, Check> = {
  execute_request: shape({
    code: str,
    silent: bool,
    store_history: optional(bool),
    stop_on_error: optional(bool),
  }),
  comm_info_request: shape({ target_name: optional(str) }),
  comm_open: shape({ comm_id: str, target_name: str }),
  comm_msg: shape({ comm_id: str }),
  comm_close: shape({ comm_id: str }),
  interrupt_request: obj,
};

/**
 * The request `msg` is, when it is one the kernel handles; undefined for any other type (tslab
 * answers those). Throws `TypeError` when a handled type comes with malformed content.
 */
export function parseKernelRequest(msg: RawEnvelope): KernelRequest | undefined {
  if (!isHeader(msg.header)) return undefined;
  const type: string = msg.header.msg_type;
  if (!Object.hasOwn(checks, type)) return undefined;
  const problem = checks[type as RequestType](msg.content);
  if (problem) {
    throw new TypeError(
      `${type}: content does not match the message type (${explain(problem, 'content')})`,
    );
  }
  const { parent_header: parent, metadata } = msg;
  if (!isObject(parent) || !isObject(metadata)) {
    throw new TypeError(`${type}: parent header and metadata must be objects`);
  }
  const envelope: Envelope = {
    ...msg,
    header: msg.header,
    parent_header: parent as Envelope['parent_header'],
    metadata,
  };
  return { type, content: msg.content, envelope } as KernelRequest;
}

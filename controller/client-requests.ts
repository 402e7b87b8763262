/**
 * The requests a client makes of the hub, one handler each in a table the compiler keeps
 * complete: a request type with a reply (`replyTypes`) fails to compile until it has a handler
 * here, or is one of the engines' own (`EngineRequestType` in `protocol/messages.ts`).
 */
import type { ConditionName } from '../protocol/errors';
import { constants } from 'node:os';
import {
  isMsg,
  unpackCarried,
  type ClientRequestType,
  type IMessage,
  type QueueCounts,
} from '../protocol/messages';
import type { Session } from '../protocol/session';
import { hasSegment } from '../protocol/shared-memory';
import type { EngineRegistry, RegisteredEngine } from './engine-registry';
import type { HandlerTable, HubOutlet, Replies } from './hub-outlet';
import type { LeaseTable } from './leases';
import { notRegistered, type TaskDispatcher } from './task-dispatcher';
import { summary, summaryBuffers, type TaskRecordStore, type TaskRequest } from './task-records';

/** Answers clients' requests; see the file's comment. */
export class ClientRequests {
  constructor(
    private readonly session: Session,
    private readonly out: HubOutlet,
    private readonly replies: Replies,
    private readonly engines: EngineRegistry,
    private readonly records: TaskRecordStore,
    private readonly tasks: TaskDispatcher,
    private readonly leases: LeaseTable,
  ) {}

  /** One handler per request type a client may send, and for what it tells of direct paths. */
  readonly handlers: HandlerTable<
    ClientRequestType | 'direct_tasks' | 'value_release' | 'value_wanted'
  > = {
    apply_request: (m, wire) => this.tasks.submit(m, wire),
    direct_tasks: (m) => {
      const { tasks } = m.content;
      unpackCarried(tasks, m.buffers, m.identities).forEach((task, i) => {
        const id = tasks[i].engine_id;
        const leased = task.content.options.balanced && this.leases.holds(m.identities[0], id);
        this.tasks.adopt(task, id, leased);
      });
    },
    value_release: (m) => this.tasks.release(m.content.msg_ids),
    value_wanted: (m) => this.tasks.want(m.identities[0], m.content.msg_ids),
    lease_request: (m) => {
      const { slots, waiting } = m.content;
      const leases = this.leases.grant(m.identities[0], slots, this.tasks.queue.size, waiting);
      this.replies.ok(m, { status: 'ok', leases, ...this.leases.terms });
      // Slots given back are the scheduler's again.
      this.tasks.queue.schedule();
    },
    execute_request: (m, wire) => this.tasks.submit(m, wire),
    connection_request: (m) => this.replies.ok(m, { status: 'ok', engines: this.engines.infos }),
    queue_status_request: (m) => {
      const engines: Record<string, QueueCounts> = {};
      for (const e of this.engines.values()) engines[e.id] = e.counts;
      const unassigned = this.tasks.queue.size + this.leases.waiting;
      this.replies.ok(m, { status: 'ok', engines, unassigned });
    },
    abort_request: (m) => {
      const { aborted, onEngines } = this.tasks.abort(m.content.msg_ids);
      // Queued or running on an engine: the engine drops or interrupts it and replies aborted.
      for (const [id, msgIds] of onEngines) {
        const e = this.engines.get(id);
        if (e) this.control(e, this.session.msg('abort_request', { msg_ids: msgIds }));
      }
      this.replies.ok(m, { status: 'ok', aborted });
      this.tasks.queue.schedule();
    },
    signal_request: (m) => {
      if (!Object.hasOwn(constants.signals, m.content.signal)) {
        this.fail(
          m,
          'RangeError',
          `unknown signal "${m.content.signal}"; use a name such as SIGINT`,
        );
        return;
      }
      const targets = this.targetEngines(m, m.content.targets);
      if (!targets) return;
      for (const e of targets) {
        const only = [e.id];
        this.control(
          e,
          this.session.msg('signal_request', { signal: m.content.signal, targets: only }),
        );
      }
      this.replies.ok(m, { status: 'ok', targets: targets.map((e) => e.id) });
    },
    result_request: (m) =>
      this.tasks.whenSettled(m.content.msg_id, () => {
        const r = this.records.get(m.content.msg_id);
        if (!r) {
          this.fail(
            m,
            'UnknownTaskError',
            `no task record for ${m.content.msg_id}: ${this.records.retention}`,
          );
          return;
        }
        this.replies.ok(m, { status: 'ok', record: summary(r) }, summaryBuffers(r));
      }),
    resubmit_request: (m) => {
      const { msg_ids: ids, new_msg_ids: newIds } = m.content;
      // A record whose arguments were let go, or went through shared memory (freed once the
      // task ended), cannot be run again either.
      const missing = ids.find((id) => {
        const r = this.records.get(id);
        return r === undefined || r.buffersDropped || hasSegment(r.request.metadata);
      });
      const taken = newIds.find((id) => this.records.get(id));
      if (missing !== undefined || taken !== undefined || newIds.length !== ids.length) {
        const why =
          missing !== undefined
            ? `has no record of ${missing} or its arguments (the hub keeps the latest ones, ` +
              'and none that went through shared memory)'
            : taken !== undefined
              ? `cannot reuse the id ${taken}`
              : 'needs one new id per task';
        this.fail(m, 'UnknownTaskError', `resubmit ${why}; nothing was resubmitted`);
        return;
      }
      const resubmitted: Record<string, string> = {};
      ids.forEach((msgId, i) => {
        const old = this.records.get(msgId)?.request as TaskRequest;
        const opts = { identities: m.identities, buffers: old.buffers };
        const again: TaskRequest = isMsg(old, 'apply_request')
          ? this.session.msg('apply_request', old.content, opts)
          : this.session.msg('execute_request', (old as IMessage<'execute_request'>).content, opts);
        again.header.msg_id = newIds[i];
        resubmitted[msgId] = newIds[i];
        this.tasks.submit(again);
      });
      this.replies.ok(m, { status: 'ok', resubmitted });
    },
    shutdown_request: (m) => {
      const targets = this.targetEngines(m, m.content.targets);
      if (!targets) return;
      for (const e of targets) {
        this.control(e, this.session.msg('shutdown_request', { hub: false, targets: [e.id] }));
      }
      this.replies.ok(m, { status: 'ok' });
      if (m.content.hub) this.out.shutdown();
    },
  };

  /**
   * The engines a signal or shutdown names, `null` meaning every engine; an unknown id gets an
   * error reply and `undefined`.
   */
  private targetEngines(
    m: IMessage<'signal_request' | 'shutdown_request'>,
    targets: number[] | null,
  ): RegisteredEngine[] | undefined {
    const ids = targets ?? this.engines.ids;
    const unknown = ids.filter((id) => !this.engines.has(id));
    if (unknown.length > 0) {
      this.fail(m, 'EngineError', notRegistered(unknown, this.engines.ids));
      return undefined;
    }
    return ids.flatMap((id) => this.engines.get(id) ?? []);
  }

  private fail(m: IMessage<ClientRequestType>, ename: ConditionName, evalue: string): void {
    this.replies.error(m.identities, m.header, ename, evalue);
  }

  private control(engine: RegisteredEngine, msg: IMessage): void {
    this.out.toEngineControl({ ...msg, identities: engine.controlRoute });
  }
}

/**
 * A task's way through the hub: taken from its client, sent to an engine (at once when direct,
 * through the `TaskQueue` when load-balanced), and ended by its engine's reply or by the hub
 * (dead engine, abort, unmet dependency), the reply going back to the client. Output an engine
 * prints for a task goes to the task's client and to every subscriber.
 *
 * A task the client sent straight to its engine (a direct path) is told to the hub afterwards
 * (`adopt`) and so are its engine's reply (`finishDirect`) and data (`relayData`), in either
 * order: the hub records them without sending anything the client already has, and fails,
 * retries or aborts such a task as any other. An engine may answer a task from the hub
 * straight too, and tell the hub in the same way.
 */
import type { ConditionName } from '../protocol/errors';
import {
  DIRECT_REPORT_MS,
  replyTypes,
  type ErrorContent,
  type IMessage,
  type ValueSource,
} from '../protocol/messages';
import { shortOf, unsatisfiable } from '../protocol/resources';
import { hasSegment } from '../protocol/shared-memory';
import type { Frame, Session } from '../protocol/session';
import type { Clock } from './heartbeat';
import {
  engineIdentity,
  type EngineRegistry,
  type Hold,
  type RegisteredEngine,
} from './engine-registry';
import type { HubOutlet, Replies } from './hub-outlet';
import { KeptValueTable } from './kept-values';
import { TaskQueue, type Placement } from './schedulers/task-queue';
import type { Scheme } from './schedulers/load-balanced';
import {
  isFinal,
  type TaskRecord,
  type TaskRecordStore,
  type TaskReply,
  type TaskRequest,
} from './task-records';

/**
 * How long an answer about a running task waits for its engine's news (see `whenSettled`): the
 * engine's `DIRECT_REPORT_MS`, with room for a busy engine, hub or machine.
 */
export const SETTLE_MS = 20 * DIRECT_REPORT_MS;
/** Direct tasks whose engines' news is kept until their clients tell of them. */
const EARLY_MEMORY = 10_000;
/** Gone clients whose direct tasks' values are freed as their replies come (`goneSessions`). */
const GONE_MEMORY = 10_000;

/** What an engine sent of a direct task before the hub knew of it (see `early`). */
interface EarlyNews {
  engineId: number;
  data?: Buffer[];
  reply?: TaskReply;
}

/** Takes tasks in, sends them to engines and their replies back; see the file's comment. */
export class TaskDispatcher implements Placement {
  /** Load-balanced tasks waiting for an engine or their dependencies. */
  readonly queue: TaskQueue;
  /**
   * The frames a waiting task came in, as its client signed them: forwarded unchanged when the
   * task is first sent, and let go then or when it ends unsent.
   */
  private readonly clientFrames = new Map<string, Frame[]>();
  /** Unfinished tasks that went straight from their client to their engine. */
  private readonly direct = new Set<string>();
  /** Answers about direct tasks that wait for their engines' news (see `whenSettled`). */
  private readonly settling = new Map<string, (() => void)[]>();
  /**
   * What engines sent of direct tasks whose client has not told the hub of them yet (the two
   * travel apart): the latest published data and the reply, with the engine; bounded, as a
   * client may die before telling.
   */
  private readonly early = new Map<string, EarlyNews>();
  /**
   * The sessions of clients gone (`clientGone`) that have not come back: the value an early
   * reply to one of their tasks says is kept is freed as the reply comes. Bounded, the oldest
   * forgotten first.
   */
  private readonly goneSessions = new Set<string>();
  /** Who still needs the values engines keep, and when to free them. */
  private readonly kept: KeptValueTable;
  /**
   * Unfinished intermediates whose clients await them after all (`want`): the hub's copy of a
   * small value goes with the reply.
   */
  private readonly wanted = new Set<string>();
  /** Tasks sent to fetch kept values from other engines, with those engines' ids. */
  private readonly fetching = new Map<string, number[]>();
  /** Of `fetching`, those whose value an engine lost and a rerun remakes (see `refetch`). */
  private readonly fetchingRemade = new Set<string>();

  constructor(
    private readonly session: Session,
    private readonly out: HubOutlet,
    private readonly replies: Replies,
    private readonly engines: EngineRegistry,
    private readonly records: TaskRecordStore,
    settings: { scheme: Scheme; hwm: number; quickDepth: number },
    private readonly clock: Clock,
  ) {
    this.queue = new TaskQueue(engines, records, settings, this);
    this.kept = new KeptValueTable(
      (engineId, msgIds) => this.free(engineId, msgIds),
      (msgId) => {
        const r = this.records.get(msgId);
        return r && isFinal(r.state) ? { keptOn: this.keptOn(r) } : undefined;
      },
    );
  }

  /** A client's new task, with the frames it came in when it may be forwarded as it is. */
  submit(request: TaskRequest, wire?: Frame[]): void {
    if (this.records.get(request.header.msg_id)) {
      this.replies.error(
        request.identities,
        request.header,
        'ProtocolError',
        `task ${request.header.msg_id} exists already; every task needs a new msg_id`,
      );
      return;
    }
    const r = this.records.add(request);
    this.kept.need(resultIds(r));
    try {
      this.route(r, wire);
    } catch (e) {
      // A store write failed part way (a lost disk): the task must not wait for ever.
      if (!isFinal(r.state)) {
        const why = e instanceof Error ? e.message : String(e);
        this.fail(r, 'HubError', `the hub failed on this task: ${why}`);
      }
      throw e;
    }
  }

  /**
   * A task its client sent straight to engine `engineId` (`leased`: a load-balanced task in a
   * slot the client holds a lease on): recorded as running there, and finished at once if the
   * engine's reply came first. One whose engine is gone is failed (or rerun, when load-balanced
   * with retries), as if the engine died running it.
   */
  adopt(request: TaskRequest, engineId: number, leased: boolean): void {
    const msgId = request.header.msg_id;
    if (this.records.get(msgId)) return;
    const r = this.records.add(request, request.header.date);
    const engine = this.engines.get(engineId);
    if (!engine) {
      this.queue.retryOrFail(
        r,
        `${notRegistered([engineId], this.engines.ids)}; it left before this task ended`,
      );
      this.queue.schedule();
      return;
    }
    this.direct.add(msgId);
    const hold = leased ? 'leased' : holdOf(r);
    this.engines.assign(engine, msgId, hold, r.options.resources, this.queue.isQuick(r));
    this.records.assign(r, engine.id);
    const early = this.early.get(msgId);
    this.early.delete(msgId);
    if (early?.engineId !== engine.id) return;
    if (early.data) this.records.published(r, early.data);
    if (early.reply) this.finishDirect(early.reply, early.engineId);
  }

  /**
   * Keeps what engine `engineId` sent of a task the hub does not know yet (see `early`); a reply
   * to a task of a client gone has the value it keeps freed at once (see `clientGone`).
   */
  private keepEarly(msgId: string, engineId: number, news: Omit<EarlyNews, 'engineId'>): void {
    const known = this.early.get(msgId);
    const early = { ...(known?.engineId === engineId && known), ...news, engineId };
    this.early.set(msgId, early);
    if (news.reply && this.goneSessions.has(String(news.reply.parent_header.session))) {
      this.freeEarly(msgId, early);
    }
    // Looked at only past the bound: reaching a Map's oldest entry steps over those deleted.
    if (this.early.size <= EARLY_MEMORY) return;
    for (const id of this.early.keys()) {
      if (this.early.size <= EARLY_MEMORY) break;
      this.early.delete(id);
    }
  }

  /**
   * Calls `then` once the hub's record of task `msgId` is as up to date as its client: at once,
   * unless the task runs on an engine, which may have answered the client straight and tell the
   * hub up to `DIRECT_REPORT_MS` later (so that a client asking right after the reply finds the
   * record final); then once the record ends, or after `SETTLE_MS` if it still runs.
   */
  whenSettled(msgId: string, then: () => void): void {
    const r = this.records.get(msgId);
    if (!r || isFinal(r.state) || r.engineId === null) {
      then();
      return;
    }
    const answer = (): void => {
      stopTimer();
      const rest = this.settling.get(msgId)?.filter((a) => a !== answer) ?? [];
      if (rest.length > 0) this.settling.set(msgId, rest);
      else this.settling.delete(msgId);
      then();
    };
    const stopTimer = this.clock.every(SETTLE_MS, answer);
    this.settling.set(msgId, [...(this.settling.get(msgId) ?? []), answer]);
  }

  /**
   * Engine `engineId`'s reply to a task, which it sent the task's client straight: one the
   * client sent it straight, or one from the hub (see the engine's `straightTo`). Kept for
   * `adopt` when the client has not told of the task yet.
   */
  finishDirect(reply: TaskReply, engineId: number): void {
    const msgId = String(reply.parent_header.msg_id);
    const r = this.records.get(msgId);
    if (!r) {
      this.keepEarly(msgId, engineId, { reply });
      return;
    }
    if (isFinal(r.state) || r.engineId !== engineId) return;
    this.end(r, { ...reply, identities: [r.client] }, 'straight');
    this.queue.schedule();
  }

  /** Sends a new task on its way: straight to its engine, or into the queue. */
  private route(r: TaskRecord, wire: Frame[] | undefined): void {
    const { options } = r;
    if (!options.balanced && options.follow?.length) {
      this.fail(r, 'DependencyError', 'follow applies to load-balanced tasks only');
      return;
    }
    // A direct task waits in the queue too for the tasks whose results it takes (its `after`).
    if (options.balanced || options.after?.length) {
      if (wire) this.clientFrames.set(r.msgId, wire);
      this.queue.add(r);
      this.queue.schedule();
      return;
    }
    const id = options.targets?.[0];
    const engine = id === undefined ? undefined : this.engines.get(id);
    if (!engine || options.targets?.length !== 1) {
      this.fail(r, 'EngineError', notRegistered([id], this.engines.ids));
      return;
    }
    // A direct task occupies what it asks too; its engine must hold that much.
    const short = shortOf(engine.resources, options.resources ?? {});
    if (short.length > 0) {
      this.fail(
        r,
        'ResourceError',
        unsatisfiable(options.resources ?? {}, short, [engine], engine.id),
      );
      return;
    }
    this.place(r, engine, wire);
  }

  /**
   * Sends a queued task to the engine the queue chose; one that takes other tasks' results goes
   * with where their values are (see `withSources`).
   */
  send(r: TaskRecord, engine: RegisteredEngine): void {
    const wire = this.clientFrames.get(r.msgId);
    if (wire) this.clientFrames.delete(r.msgId);
    if (resultIds(r).length === 0) {
      this.place(r, engine, wire);
      return;
    }
    const request = this.withSources(r);
    if (typeof request === 'string') {
      this.fail(r, 'DependencyError', request);
      return;
    }
    const keepers = Object.values(request.content.sources ?? {}).flatMap((s) =>
      'kept_on' in s && s.kept_on !== engine.id ? s.kept_on : [],
    );
    this.fetchingRemade.delete(r.msgId);
    if (keepers.length > 0) this.fetching.set(r.msgId, keepers);
    const body = wire && this.session.rebody(wire, request.content, request.buffers);
    this.place(r, engine, body, request);
  }

  /**
   * Task `r`'s request with where each value it takes is: a small one in the request's own
   * buffers (the hub has it from the reply), a kept one on the engine keeping it. A value that
   * is gone gives the error text instead.
   */
  private withSources(r: TaskRecord): IMessage<'apply_request'> | string {
    const sources: Record<string, ValueSource> = {};
    const inline: Buffer[] = [];
    for (const id of resultIds(r)) {
      const d = this.records.get(id);
      const reply = d?.reply;
      if (!d || !reply || reply.content.status !== 'ok') {
        return `the hub has no result of task ${id} any more (${this.records.retention})`;
      }
      // A small value kept on its engine is here too, unless the hub let it go.
      const kept = keptBytes(reply);
      if (kept === undefined || (reply.buffers.length > 0 && !d.buffersDropped)) {
        if (d.buffersDropped) {
          return `the hub let the result of task ${id} go to bound its memory; raise --record-bytes`;
        }
        sources[id] = { inline: reply.buffers.length };
        inline.push(...reply.buffers);
        continue;
      }
      const keeper = d.engineId === null ? undefined : this.engines.get(d.engineId);
      if (!keeper) {
        return `the value of task ${id} is lost: engine ${String(d.engineId)}, which kept it, is gone`;
      }
      sources[id] = {
        kept_on: keeper.id,
        ...(keeper.info.direct && { direct: keeper.info.direct }),
      };
    }
    const request = r.request as IMessage<'apply_request'>;
    return {
      ...request,
      content: { ...request.content, sources },
      buffers: [...request.buffers, ...inline],
    };
  }

  /**
   * Runs task `msgId` again, where its `retries` allow, because tasks waiting for its value need
   * it and the engine keeping it is gone: those tasks then wait for the rerun. A task whose
   * arguments the hub no longer holds cannot be rerun; its dependants fail (`withSources`).
   */
  private remake(msgId: string): boolean {
    const r = this.records.get(msgId);
    if (!r || !r.options.balanced || r.retriesLeft <= 0) return false;
    if (r.buffersDropped || hasSegment(r.request.metadata)) return false;
    // A small value the hub holds a copy of needs no rerun: the tasks taking it get the copy.
    if (r.reply && r.reply.buffers.length > 0) return false;
    this.records.requeue(r);
    this.kept.rerun(msgId);
    this.queue.add(r);
    return true;
  }

  /**
   * The tasks running elsewhere that fetch from engine `lost` a value being remade: each runs on
   * unless its engine answers that the fetch failed (`refetch`). One that fetched the value
   * already must run to its end, and only once.
   */
  private awaitRemake(lost: number, remade: Set<string>): void {
    for (const [msgId, keepers] of this.fetching) {
      const r = this.records.get(msgId);
      if (!r || isFinal(r.state) || r.engineId === null || !keepers.includes(lost)) continue;
      if (resultIds(r).some((id) => remade.has(id))) this.fetchingRemade.add(msgId);
    }
  }

  /**
   * Whether task `r` waits again, for the rerun, without spending a retry: it does when `reply`
   * says it failed to fetch a value that is being remade (see `awaitRemake`), before any of its
   * code ran.
   */
  private refetch(r: TaskRecord, reply: TaskReply): boolean {
    if (!this.fetchingRemade.delete(r.msgId) || !fetchFailed(reply)) return false;
    this.fetching.delete(r.msgId);
    if (r.engineId !== null) this.engines.get(r.engineId)?.release(r.msgId, false);
    this.records.requeue(r, false);
    this.queue.add(r);
    this.queue.schedule();
    return true;
  }

  /** The client holds these tasks' results no more: their kept values may go. */
  release(msgIds: readonly string[]): void {
    this.kept.release(msgIds.filter((id) => this.records.get(id) !== undefined));
  }

  /** Client `client` awaits these tasks of its own, unfinished intermediates (see `wanted`). */
  want(client: Buffer, msgIds: readonly string[]): void {
    for (const id of msgIds) {
      const r = this.records.get(id);
      if (r && !isFinal(r.state) && r.client.equals(client)) this.wanted.add(id);
    }
  }

  /**
   * The client `client` (its ROUTER identity) is gone without releasing what it held: the values
   * of its tasks are let go, as the client would on closing, those of its unfinished tasks once
   * they end. Its tasks themselves run on: their records stay for `result_request`. So are the
   * values of the direct tasks it sent and never told of (it was killed in between), which the
   * hub knows by their replies' sessions only: a client's ROUTER identity is its session's id
   * (see `Client.open`).
   */
  clientGone(client: Buffer): void {
    const ofClient = (id: string): boolean => this.records.get(id)?.client.equals(client) === true;
    const held = [...this.kept.held()].filter(ofClient);
    const unfinished = this.records.inFlight().filter((r) => r.client.equals(client));
    this.kept.release([...held, ...unfinished.map((r) => r.msgId)]);
    const session = client.toString();
    for (const [msgId, news] of this.early) {
      if (news.reply?.parent_header.session === session) this.freeEarly(msgId, news);
    }
    this.goneSessions.add(session);
    if (this.goneSessions.size > GONE_MEMORY) {
      this.goneSessions.delete(this.goneSessions.values().next().value as string);
    }
  }

  /**
   * A message came from client `client`: one gone is back (its connection broke and was made
   * again), and the values of its direct tasks are kept again.
   */
  heardFrom(client: Buffer): void {
    if (this.goneSessions.size > 0) this.goneSessions.delete(client.toString());
  }

  /** Frees the value an early reply (see `early`) says its engine keeps, if any. */
  private freeEarly(msgId: string, news: EarlyNews): void {
    if (news.reply && keptBytes(news.reply) !== undefined) this.free(news.engineId, [msgId]);
  }

  /** Tells engine `engineId` to free the values of these tasks. */
  private free(engineId: number, msgIds: string[]): void {
    const engine = this.engines.get(engineId);
    if (!engine) return;
    const release = this.session.msg('value_release', { msg_ids: msgIds });
    this.out.toEngine({ ...release, identities: engine.route });
  }

  /** Where task `r`'s value is kept, when it ended with it kept on an engine still here. */
  private keptOn(r: TaskRecord): number | undefined {
    const kept = r.reply ? keptBytes(r.reply) : undefined;
    return kept !== undefined && r.engineId !== null && this.engines.has(r.engineId)
      ? r.engineId
      : undefined;
  }

  /** Ends a task the hub itself fails (dead engine, abort, unmet dependency, a failing store). */
  fail(r: TaskRecord, ename: ConditionName, evalue: string, cause?: ErrorContent['cause']): void {
    this.queue.remove(r.msgId);
    this.clientFrames.delete(r.msgId);
    const content: ErrorContent = { status: 'error', ename, evalue, traceback: [] };
    if (r.engineId !== null) content.engine_id = r.engineId;
    if (cause) content.cause = cause;
    const reply = this.session.msg(replyTypes[r.request.header.msg_type], content, {
      parent: r.request.header,
      identities: [r.client],
      metadata: { engine_id: r.engineId },
    }) as TaskReply;
    this.end(r, reply, 'hub');
  }

  /** An engine's reply to a task it ran; the reply's frames go on as the engine signed them. */
  finish(reply: TaskReply, wire?: Frame[]): void {
    const r = this.records.get(String(reply.parent_header.msg_id));
    if (!r || isFinal(r.state) || r.engineId === null) return;
    if (r.engineId !== this.engines.idOf(engineIdentity(reply.identities))) return;
    // An earlier run of a task sent again to the same engine (`refetch`) is not its run now.
    if (reply.metadata.attempt !== r.request.metadata.attempt) return;
    if (this.refetch(r, reply)) return;
    // The engine names itself in the reply; when it names itself as the hub knows it, the reply
    // goes to the client as the engine signed it, else with the hub's id, signed again.
    const signedAsKnown = reply.metadata.engine_id === r.engineId;
    const toClient = {
      ...reply,
      identities: [r.client],
      metadata: { ...reply.metadata, engine_id: r.engineId },
    };
    this.end(r, toClient, 'engine', signedAsKnown ? wire : undefined);
    this.queue.schedule();
  }

  /**
   * Data a running task published: kept as the latest on its record and relayed as its output
   * is. Data from an engine the task no longer runs on (one dropped, whose task was rerun
   * elsewhere) is not the task's: it is dropped.
   */
  relayData(m: IMessage<'data_message'>): void {
    const msgId = String(m.parent_header.msg_id);
    const r = this.records.get(msgId);
    const engineId = this.engines.idOf(engineIdentity(m.identities));
    if (engineId === undefined) return;
    if (!r) this.keepEarly(msgId, engineId, { data: m.buffers });
    else if (!isFinal(r.state) && r.engineId === engineId) this.records.published(r, m.buffers);
    else return;
    this.relayOutput(m);
  }

  /** Output an engine printed: to the task's client, and published for every subscriber. */
  relayOutput(m: IMessage<'stream' | 'display_data' | 'execute_result' | 'data_message'>): void {
    const r = this.records.get(String(m.parent_header.msg_id));
    const engineId = this.engines.joinedId(engineIdentity(m.identities));
    const tagged = { ...m, metadata: { ...m.metadata, engine_id: engineId } };
    // A direct task's client has its output from the engine.
    if (r && !this.direct.has(r.msgId)) this.out.toClient({ ...tagged, identities: [r.client] });
    this.out.publish(`engine.${String(engineId)}.${m.header.msg_type}`, tagged);
  }

  /**
   * The tasks of an engine that is gone: rerun elsewhere where retries allow, else failed; the
   * values it kept are gone with it.
   */
  engineLost(engine: RegisteredEngine, reason: string): void {
    const remade = this.kept.engineLost(engine.id).filter((msgId) => this.remake(msgId));
    if (remade.length > 0) this.awaitRemake(engine.id, new Set(remade));
    for (const msgId of engine.outstanding) {
      const r = this.records.get(msgId);
      if (!r || isFinal(r.state)) continue;
      // A rerun goes through the hub, and its reply back the same way.
      this.direct.delete(msgId);
      this.queue.retryOrFail(r, `engine ${engine.id} died while running this task (${reason})`);
    }
  }

  /**
   * Takes over the unfinished tasks of a controller that stopped without finishing them (its
   * records came back from the database): those that never reached an engine wait again, those
   * that were running are rerun where `retries` allows and fail with `EngineError` otherwise, as
   * their engines' replies went to the controller that is gone.
   */
  restore(): void {
    for (const r of this.records.unfinished()) {
      if (r.engineId === null) {
        this.queue.add(r);
      } else {
        this.queue.retryOrFail(
          r,
          `the controller restarted while engine ${r.engineId} ran this task, so its result is lost; ` +
            'run it again (rc.resubmit), or give load-balanced tasks retries',
        );
      }
    }
    this.queue.schedule();
  }

  /**
   * Aborts the unfinished tasks among `msgIds`: a waiting one fails at once with
   * `TaskAbortedError`; one on an engine is never rerun, and is returned by engine for the hub
   * to ask that engine to drop or interrupt it (the engine then replies aborted).
   */
  abort(msgIds: string[]): { aborted: string[]; onEngines: Map<number, string[]> } {
    const aborted: string[] = [];
    const onEngines = new Map<number, string[]>();
    for (const msgId of msgIds) {
      const r = this.records.get(msgId);
      if (!r || isFinal(r.state)) continue;
      aborted.push(msgId);
      if (r.engineId === null) {
        this.fail(r, 'TaskAbortedError', 'the task was aborted before it started');
      } else {
        // Not run again, not even for a value being remade.
        this.fetchingRemade.delete(msgId);
        this.records.cancelRetries(r);
        onEngines.set(r.engineId, [...(onEngines.get(r.engineId) ?? []), msgId]);
      }
    }
    return { aborted, onEngines };
  }

  /** Sends task `r` to `engine`: the engine counts it and its record says where it runs. */
  private place(
    r: TaskRecord,
    engine: RegisteredEngine,
    wire: Frame[] | undefined,
    request = r.request,
  ): void {
    this.engines.assign(engine, r.msgId, holdOf(r), r.options.resources, this.queue.isQuick(r));
    this.records.assign(r, engine.id);
    this.out.toEngine({ ...request, identities: engine.route }, wire);
  }

  /**
   * Ends task `r` with `reply`, addressed to its client: its engine stops counting it, the
   * client gets the reply unless its engine sent it straight, and the record finishes.
   */
  private end(r: TaskRecord, reply: TaskReply, from: ReplyFrom, wire?: Frame[]): void {
    const replied = from !== 'hub';
    // The engine says whether the run was quick (see schedulers/task-queue.ts).
    const quick = replied && reply.metadata.quick === true;
    if (replied) this.queue.ran(r, quick);
    if (r.engineId !== null) this.engines.get(r.engineId)?.release(r.msgId, replied, quick);
    // Unless the engine answered the client itself, the hub does, without the copy of a kept
    // value that the hub holds for the tasks that take it (see `apply_reply`) unless the client
    // wants it after all.
    const wanted = this.wanted.delete(r.msgId);
    if (from !== 'straight') {
      const hubsCopy = keptBytes(reply) !== undefined && reply.buffers.length > 0;
      if (hubsCopy && !wanted) this.replies.send({ ...reply, buffers: [] });
      else this.replies.send(reply, wire);
    }
    this.direct.delete(r.msgId);
    this.records.finish(r, reply);
    for (const answer of this.settling.get(r.msgId) ?? []) answer();
    this.queue.ended(r.msgId);
    this.fetching.delete(r.msgId);
    this.fetchingRemade.delete(r.msgId);
    if (reply.content.status !== 'ok') this.queue.dependencyFailed();
    this.kept.needed(resultIds(r));
    this.kept.ended(r.msgId, this.keptOn(r));
  }
}

/**
 * Who made the reply a task ends with: the hub (a failure), or its engine, for the hub to send
 * on or sent to the client already (`straight`).
 */
type ReplyFrom = 'hub' | 'engine' | 'straight';

/** `resultIds` of each request content that has results, worked out once per task. */
const resultIdsOf = new WeakMap<TaskRequest['content'], string[]>();

/** The tasks whose results task `r` takes as arguments, each once. */
function resultIds(r: TaskRecord): readonly string[] {
  const { content } = r.request;
  const results = 'results' in content ? content.results : undefined;
  if (!results) return [];
  let ids = resultIdsOf.get(content);
  if (!ids) {
    ids = [...new Set(results.flatMap((x) => x.msg_ids))];
    resultIdsOf.set(content, ids);
  }
  return ids;
}

/** The size of the value `reply` says its engine keeps, if it keeps one. */
function keptBytes(reply: TaskReply): number | undefined {
  const { content } = reply;
  return content.status === 'ok' && 'kept' in content ? content.kept : undefined;
}

/**
 * Whether `reply` is its engine's word that it could not fetch the values its task takes, so
 * that none of the task's code ran (see the engine's kernel).
 */
function fetchFailed(reply: TaskReply): boolean {
  const { content } = reply;
  return (
    content.status === 'error' &&
    content.ename === 'DependencyError' &&
    reply.metadata.inputs_failed === true
  );
}

/** How an engine holds a task the hub sent it. */
function holdOf(r: TaskRecord): Hold {
  return r.options.balanced ? 'balanced' : 'named';
}

/** The error text for tasks or requests naming engines that are not registered. */
export function notRegistered(ids: (number | undefined)[], live: number[]): string {
  return `engine ${ids.map(String).join(', ')} is not registered; live engines: ${live.join(', ') || 'none'}`;
}

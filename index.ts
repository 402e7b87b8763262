/** tsparallel: parallel computing for TypeScript notebooks and Node. */
export { Client, type ClientEvent, type ConnectOptions, type ResultRecord } from './client/client';
/** @deprecated The name before 0.2: a task's record from `rc.result`; use `ResultRecord`. */
export type { ResultRecord as TaskRecord } from './client/client';
export {
  DirectView,
  LoadBalancedView,
  BroadcastView,
  type Targets,
  type ViewOptions,
} from './client/views';
export {
  AsyncResult,
  AsyncMapResult,
  type ExecuteReply,
  type TaskMetadata,
  type TaskOutput,
} from './client/async-result';
export type { Actor, ActorCall, ActorHandle, ActorMethods, TaskResult } from './client/actor';
export { Reference } from './client/reference';
export type { CacheInfo, CacheOption } from './client/result-cache';
export { Cluster, type ClusterOptions } from './cluster/cluster';
export { Adaptive, type AdaptOptions } from './cluster/adapt';
export {
  renderBatchScript,
  type BatchJob,
  type LauncherName,
  type LauncherOptionsMap,
  type MpiOptions,
  type SshOptions,
  type SlurmOptions,
  type QueueOptions,
} from './cluster/launchers';
export type { EngineInfo, MpiPlace } from './protocol/messages';
export { notebookClient, notebookCluster } from './kernel-ext/notebook';
export {
  RemoteError,
  CompositeError,
  EngineError,
  TimeoutError,
  TaskAbortedError,
  DependencyError,
  SerializationError,
  SharedMemoryError,
  ConnectionError,
  UnknownTaskError,
  HubError,
  InterruptedError,
  ResourceError,
  ActorReleasedError,
} from './protocol/errors';
export type { Resources } from './protocol/resources';

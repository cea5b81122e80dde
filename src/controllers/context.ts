// What every controller that reconciles namespaced objects is given.
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { CaConfig } from '../config/ca-spec.js';
import type { Clock } from '../kube/clock.js';
import type { EventSink } from '../kube/events.js';
import type { AuthorityState } from './authority/state.js';
import type { SharedCaches } from './caches.js';

export interface ControllerContext {
  caches: SharedCaches;
  core: CoreV1Api;
  log: Logger;
  events: EventSink;
  caNamespace: string;
  config: () => CaConfig;
  authority: () => AuthorityState;
  /** Only the leader writes; checked at every reconcile. */
  canWrite: () => boolean;
  workers: number;
  /** Time and timers (requeue-after); the system clock when absent. */
  clock?: Clock;
}

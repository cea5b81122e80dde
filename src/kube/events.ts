// Kubernetes Events about the objects alcazar acts on. The same event about
// the same object is written at most once per window, so a stuck object
// cannot flood the API server with Events.
import { randomBytes } from 'node:crypto';
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeApiError } from './client.js';

export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
  uid?: string;
}

export type EventType = 'Normal' | 'Warning';

export interface EventSink {
  record(object: InvolvedObject, type: EventType, reason: string, message: string): void;
}

const COMPONENT = 'alcazar';
const MAX_MESSAGE = 1024;

export class EventRecorder implements EventSink {
  private readonly lastWritten = new Map<string, number>();

  constructor(
    private readonly core: CoreV1Api,
    private readonly log: Logger,
    private readonly opts: { instance: string; eventNamespace: string; dedupeWindowMs?: number },
  ) {}

  record(object: InvolvedObject, type: EventType, reason: string, message: string): void {
    const dedupeKey = `${object.uid ?? `${object.namespace}/${object.name}`}|${type}|${reason}|${message}`;
    const now = Date.now();
    const window = this.opts.dedupeWindowMs ?? 10 * 60_000;
    const last = this.lastWritten.get(dedupeKey);
    if (last !== undefined && now - last < window) return;
    this.lastWritten.set(dedupeKey, now);
    if (this.lastWritten.size > 10_000) this.prune(now, window);

    const namespace = object.namespace ?? this.opts.eventNamespace;
    const timestamp = new Date(now);
    this.core
      .createNamespacedEvent({
        namespace,
        body: {
          metadata: { name: `${object.name.slice(0, 200)}.${randomBytes(8).toString('hex')}`, namespace },
          involvedObject: object,
          type,
          reason,
          message: message.slice(0, MAX_MESSAGE),
          source: { component: COMPONENT },
          reportingComponent: `${COMPONENT}.dev/ca`,
          reportingInstance: this.opts.instance,
          firstTimestamp: timestamp,
          lastTimestamp: timestamp,
          count: 1,
        },
      })
      .catch((err: unknown) => {
        // An Event is a courtesy; failing to write one must not fail the reconcile.
        this.log.warn(
          { err: describeApiError(err), reason, object: `${namespace}/${object.name}` },
          'could not write Event',
        );
      });
  }

  private prune(now: number, window: number): void {
    for (const [key, at] of this.lastWritten) if (now - at >= window) this.lastWritten.delete(key);
  }
}

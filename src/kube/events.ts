// Kubernetes Events about the objects alcazar acts on. The same event about
// the same object is written at most once per window, so a stuck object
// cannot flood the API server with Events. All Events share a token bucket
// (--event-qps, --event-burst) and a short queue written in the background:
// a cold start that issues 10,000 certificates must not write 10,000 Events
// in competition with the Secrets themselves. Warnings are written before
// Normal Events; what does not fit is dropped, counted and logged.
import { createHash, randomBytes } from 'node:crypto';
import type { CoreV1Event } from '@kubernetes/client-node';
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
const CLUSTER_SCOPED_EVENT_NAMESPACE = 'default';
const MAX_MESSAGE = 1024;
/** Events being written at once. */
const MAX_IN_FLIGHT = 4;
/** Events waiting for a token; beyond this, Normal Events are dropped first. */
const MAX_PENDING = 1_000;
const DROP_REPORT_INTERVAL_MS = 60_000;

export interface EventLimits {
  /** Events written per second once the burst is spent. */
  qps: number;
  /** Events that may be written back to back. */
  burst: number;
}

export interface EventRecorderOptions {
  instance: string;
  dedupeWindowMs?: number;
  limits?: EventLimits;
  onDropped?: (type: EventType) => void;
  now?: () => number;
}

interface PendingEvent {
  object: InvolvedObject;
  type: EventType;
  reason: string;
  message: string;
  at: number;
}

/** Writes one Event (a core/v1 Event as JSON) to the namespace. */
export type EventWriter = (namespace: string, event: CoreV1Event) => Promise<unknown>;

export class EventRecorder implements EventSink {
  private readonly lastWritten = new Map<string, number>();
  private readonly warnings: PendingEvent[] = [];
  private readonly normals: PendingEvent[] = [];
  private readonly limits: EventLimits;
  private readonly now: () => number;
  private tokens: number;
  private refilledAt: number;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private droppedSinceReport = 0;
  private reportedAt = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly writeEvent: EventWriter,
    private readonly log: Logger,
    private readonly opts: EventRecorderOptions,
  ) {
    this.limits = opts.limits ?? { qps: 10, burst: 100 };
    this.now = opts.now ?? Date.now;
    this.tokens = this.limits.burst;
    this.refilledAt = this.now();
  }

  record(object: InvolvedObject, type: EventType, reason: string, message: string): void {
    const dedupeKey = dedupeDigest(
      `${object.uid ?? `${object.namespace}/${object.name}`}|${type}|${reason}|${message}`,
    );
    const now = this.now();
    const window = this.opts.dedupeWindowMs ?? 10 * 60_000;
    this.forgetExpired(now, window);
    const last = this.lastWritten.get(dedupeKey);
    if (last !== undefined && now - last < window) return;
    // Deleted and set again, so the map stays in the order of writing and expiry is found at its front.
    this.lastWritten.delete(dedupeKey);
    this.lastWritten.set(dedupeKey, now);

    const event: PendingEvent = { object, type, reason, message, at: now };
    if (this.warnings.length + this.normals.length >= MAX_PENDING) {
      // Full: a Warning displaces the oldest Normal Event; anything else is dropped.
      if (type === 'Warning' && this.normals.length > 0) this.dropped(this.normals.shift()!.type);
      else {
        this.dropped(type);
        return;
      }
    }
    (type === 'Warning' ? this.warnings : this.normals).push(event);
    this.pump();
  }

  /** Resolves once nothing is queued or being written (for tests and shutdown). */
  whenIdle(): Promise<void> {
    if (this.idle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private idle(): boolean {
    return this.inFlight === 0 && this.warnings.length === 0 && this.normals.length === 0;
  }

  private pump(): void {
    while (this.inFlight < MAX_IN_FLIGHT && (this.warnings.length > 0 || this.normals.length > 0)) {
      this.refill();
      if (this.tokens < 1) {
        if (!this.timer) {
          const waitMs = Math.ceil(((1 - this.tokens) / this.limits.qps) * 1000);
          this.timer = setTimeout(() => {
            this.timer = undefined;
            this.pump();
          }, waitMs);
          this.timer.unref();
        }
        return;
      }
      this.tokens -= 1;
      const event = this.warnings.shift() ?? this.normals.shift()!;
      this.inFlight++;
      void this.write(event).finally(() => {
        this.inFlight--;
        this.pump();
        if (this.idle()) for (const resolve of this.idleWaiters.splice(0)) resolve();
      });
    }
  }

  private refill(): void {
    const now = this.now();
    const elapsed = Math.max(0, now - this.refilledAt) / 1000;
    this.refilledAt = now;
    this.tokens = Math.min(this.limits.burst, this.tokens + elapsed * this.limits.qps);
  }

  private dropped(type: EventType): void {
    this.opts.onDropped?.(type);
    this.droppedSinceReport++;
    const now = this.now();
    if (now - this.reportedAt < DROP_REPORT_INTERVAL_MS) return;
    this.log.warn(
      { dropped: this.droppedSinceReport, qps: this.limits.qps, burst: this.limits.burst },
      'Events dropped: more than --event-qps/--event-burst allow (see alcazar_events_dropped_total)',
    );
    this.reportedAt = now;
    this.droppedSinceReport = 0;
  }

  private async write({ object, type, reason, message, at }: PendingEvent): Promise<void> {
    // The API server takes an Event about a cluster-scoped object (the CertificateAuthority) only
    // in namespace "default", as client-go's recorder writes them.
    const namespace = object.namespace ?? CLUSTER_SCOPED_EVENT_NAMESPACE;
    const timestamp = new Date(at);
    try {
      await this.writeEvent(namespace, {
        apiVersion: 'v1',
        kind: 'Event',
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
      });
    } catch (err) {
      // An Event is a courtesy; failing to write one must not fail the reconcile.
      this.log.warn(
        { err: describeApiError(err), reason, object: `${namespace}/${object.name}` },
        'could not write Event',
      );
    }
  }

  /**
   * Drops what left the window, oldest first, stopping at the first entry still in it: O(1) per
   * Event on average. (A full scan whenever more than 10,000 were remembered made a cold start of
   * N ServiceAccounts cost O(N²): every CertificateIssued message is unique.)
   */
  private forgetExpired(now: number, window: number): void {
    for (const [key, at] of this.lastWritten) {
      if (now - at < window) return;
      this.lastWritten.delete(key);
    }
  }
}

/** The dedupe key kept per written Event: a digest, not the message (~300 bytes per certificate issued). */
function dedupeDigest(text: string): string {
  return createHash('sha256').update(text).digest('base64');
}

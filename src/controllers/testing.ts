// For controller unit tests: the shared caches over an in-memory API server,
// on a fake clock, with Events collected. No cluster, no mocks of client-node.
import pino from 'pino';
import { generateRootData } from '../ca/self-signed.js';
import type { EventSink, EventType, InvolvedObject } from '../kube/events.js';
import { FakeApiServer } from '../kube/fake-api.js';
import { FakeClock, settle } from '../kube/fake-clock.js';
import { AuthorityController, type AuthorityControllerOptions } from './authority/controller.js';
import { SharedCaches } from './caches.js';
import type { ControllerContext } from './context.js';

export const CA_NAMESPACE = 'istio-system';

export class RecordedEvents implements EventSink {
  readonly events: Array<{ object: InvolvedObject; type: EventType; reason: string; message: string }> = [];
  record(object: InvolvedObject, type: EventType, reason: string, message: string): void {
    this.events.push({ object, type, reason, message });
  }
  reasons(): string[] {
    return this.events.map((e) => e.reason);
  }
}

export interface ControllerTestBed {
  api: FakeApiServer;
  clock: FakeClock;
  caches: SharedCaches;
  events: RecordedEvents;
  log: pino.Logger;
  /** Starts every cache and waits for them to sync. */
  start(): Promise<void>;
  /** Stops what was tracked (last first), then the caches. */
  stop(): Promise<void>;
  track<T extends { stop(): Promise<void> }>(running: T): T;
  /** Lets watch events and reconciles run to their next wait. */
  settle(): Promise<void>;
  /**
   * Settles until `condition` holds (work off the clock, e.g. key generation); fails once `timeoutMs`
   * of real time has passed (not a count of turns: a loaded machine needs more of them).
   */
  until(what: string, condition: () => boolean, timeoutMs?: number): Promise<void>;
  namespace(name: string, opts?: { labels?: Record<string, string>; terminating?: boolean }): void;
}

export function controllerTestBed(): ControllerTestBed {
  const api = new FakeApiServer();
  const clock = new FakeClock();
  const log = pino({ level: 'silent' });
  const caches = new SharedCaches({
    raw: api,
    watch: api.watchSource,
    metadataWatch: api.metadataWatchSource,
    clock,
    caNamespace: CA_NAMESPACE,
    log,
    resyncPeriodMs: 3_600_000,
    stallTimeoutMs: 3_600_000,
  });
  const tracked: Array<{ stop(): Promise<void> }> = [];
  return {
    api,
    clock,
    caches,
    events: new RecordedEvents(),
    log,
    async start() {
      await caches.startCa();
      await caches.start();
    },
    async stop() {
      for (const running of tracked.splice(0).reverse()) await running.stop();
      await caches.stop();
    },
    track(running) {
      tracked.push(running);
      return running;
    },
    settle: () => settle(),
    async until(what, condition, timeoutMs = 10_000) {
      const deadline = performance.now() + timeoutMs;
      for (let i = 0; performance.now() < deadline; i++) {
        if (condition()) return;
        await settle(1);
        if (i % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      if (condition()) return;
      throw new Error(`still waiting for ${what} after ${timeoutMs} ms`);
    },
    namespace(name, opts = {}) {
      api.seed(`/api/v1/namespaces/${name}`, {
        metadata: {
          name,
          labels: opts.labels ?? {},
          ...(opts.terminating
            ? { deletionTimestamp: new Date(clock.now()).toISOString() as unknown as Date }
            : {}),
        },
        ...(opts.terminating ? { status: { phase: 'Terminating' } } : {}),
      });
    },
  };
}

/** An AuthorityController on the bed (not started). */
export function authorityOn(
  bed: ControllerTestBed,
  canWrite = true,
  continuity?: AuthorityControllerOptions['continuity'],
): AuthorityController {
  return new AuthorityController({
    caches: bed.caches,
    raw: bed.api,
    namespace: CA_NAMESPACE,
    log: bed.log,
    canWrite: () => canWrite,
    clock: bed.clock,
    continuity,
  });
}

/** Starts an AuthorityController on the bed and waits until it signs with a root it created. */
export async function readyAuthority(bed: ControllerTestBed): Promise<AuthorityController> {
  const authority = bed.track(authorityOn(bed));
  await authority.start();
  await bed.until('the CA', () => bed.caches.state.authority.current.status === 'ready');
  return authority;
}

/**
 * A started bed with a ready CA, for a namespaced controller's test: `seed` fills the API server
 * (namespaces, objects, failures to inject) before the caches start. Stop it after the test.
 */
export async function bedWithReadyAuthority(
  seed: (bed: ControllerTestBed) => void,
): Promise<ControllerTestBed> {
  const bed = controllerTestBed();
  seed(bed);
  await bed.start();
  await readyAuthority(bed);
  return bed;
}

/** What a namespaced controller is given, on the bed: every write goes through `raw`, none through `core`. */
export function controllerContext(bed: ControllerTestBed): ControllerContext & { raw: FakeApiServer } {
  return {
    caches: bed.caches,
    core: undefined as never,
    raw: bed.api,
    log: bed.log,
    events: bed.events,
    caNamespace: CA_NAMESPACE,
    config: () => bed.caches.state.config.current,
    authority: () => bed.caches.state.authority.current,
    canWrite: () => true,
    workers: 2,
    clock: bed.clock,
  };
}

/** Adds a second root to istio-ca-secret's bundle (as a rotation's Publishing does); returns its PEM. */
export async function growCaBundle(bed: ControllerTestBed): Promise<string> {
  const path = `/api/v1/namespaces/${CA_NAMESPACE}/secrets/istio-ca-secret`;
  const secret = bed.api.get(path)!;
  const other = await generateRootData({
    trustDomain: 'cluster.local',
    keyAlgorithm: 'ECDSA_P256',
    ttlMs: 3_600_000,
    now: new Date(bed.clock.now()),
  });
  const current = Buffer.from(secret.data['ca-cert.pem'], 'base64').toString();
  await bed.api.request('PATCH', path, {
    data: { 'root-cert.pem': Buffer.from(current + other['ca-cert.pem']).toString('base64') },
  });
  return other['ca-cert.pem']!.trim();
}

// The loop every controller runs: N workers over a keyed queue, failures
// retried with backoff and logged with their key, and one line when the
// first pass over everything is done.
import type { Logger } from 'pino';
import { describeApiError } from '../kube/client.js';
import { runWorkers, WorkQueue, type WorkQueueOptions } from '../kube/workqueue.js';
import type { Metrics } from '../telemetry/metrics.js';

export interface ReconcileLoopOptions {
  queue: WorkQueue;
  workers: number;
  reconcile: (key: string) => Promise<void>;
  log: Logger;
  /** Fields for the log line of a failed key, e.g. { namespace, name }. */
  describeKey: (key: string) => Record<string, string>;
  onError?: (key: string, err: unknown) => void;
  metrics?: Metrics;
  /** Extra fields for the 'initial reconcile finished' line. */
  idleDetails?: () => Record<string, unknown>;
  /** No 'initial reconcile finished' line (controllers of one key). */
  quietFirstPass?: boolean;
}

export function startReconcileLoop(opts: ReconcileLoopOptions): Promise<void> {
  const started = Date.now();
  const { metrics } = opts;
  const reconcile = metrics
    ? (key: string) => metrics.timeReconcile(() => opts.reconcile(key))
    : opts.reconcile;
  const running = runWorkers(opts.queue, opts.workers, reconcile, (key, err, retryInMs) => {
    opts.onError?.(key, err);
    opts.log.warn(
      { ...opts.describeKey(key), err: describeApiError(err), retryInMs },
      'reconcile failed; will retry',
    );
  });
  if (!opts.quietFirstPass)
    void opts.queue.whenIdle().then(() => {
      opts.log.info(
        { ...opts.idleDetails?.(), durationMs: Date.now() - started },
        'initial reconcile finished',
      );
    });
  return running;
}

/**
 * The loop of a controller with one key (the CA, the rotation, the CertificateAuthority): one
 * worker; resolves, with the running loop, once the first reconcile of `key` is done.
 */
export async function startOneKeyLoop(
  queue: WorkQueue,
  key: string,
  reconcile: () => Promise<void>,
  log: Logger,
): Promise<{ running: Promise<void> }> {
  const running = startReconcileLoop({
    queue,
    workers: 1,
    reconcile,
    log,
    describeKey: () => ({}),
    quietFirstPass: true,
  });
  queue.add(key);
  await queue.whenIdle();
  return { running };
}

/**
 * A controller with one key (the CA, the rotation, the CertificateAuthority): a queue of its own
 * with one worker. start() resolves once the first reconcile is done; stop() waits for the one in
 * flight.
 */
export abstract class OneKeyController {
  readonly queue: WorkQueue;
  private running: Promise<void> | undefined;

  protected constructor(
    private readonly key: string,
    queue: WorkQueueOptions,
    private readonly loopLog: Logger,
  ) {
    this.queue = new WorkQueue(queue);
  }

  abstract reconcile(): Promise<void>;

  async start(): Promise<void> {
    const loop = await startOneKeyLoop(this.queue, this.key, () => this.reconcile(), this.loopLog);
    this.running = loop.running;
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    await this.running;
  }

  /** Asks for a reconcile now; resolves once the queue is idle again (at once before start()). */
  protected reconcileNow(): Promise<void> {
    this.queue.add(this.key);
    return this.running ? this.queue.whenIdle() : Promise.resolve();
  }
}

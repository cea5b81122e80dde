// Fences the leader's writes at the transport. The gate every reconcile
// checks (LeaderElector.isLeader) decides whether to *start* a write; a write
// that then hangs on a partitioned network could still reach the API server
// long after the renew deadline, when another replica leads — the one overlap
// leader election alone cannot rule out. So every write request carries an
// AbortSignal from here: a write begun while not leading is refused before it
// is sent, and every write in flight is aborted (its connection closed, so
// nothing buffered is delivered later) the moment leadership ends.
import { setMaxListeners } from 'node:events';
import {
  type Configuration,
  createConfiguration,
  type KubeConfig,
  type Middleware,
  ServerConfiguration,
} from '@kubernetes/client-node';

export class NotLeaderError extends Error {
  override name = 'NotLeaderError';
}

/** One signal is shared by every write in flight: each adds an abort listener while it runs. */
function sharedController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

export class WriteFence {
  private current = sharedController();

  /** `isLeader` is read at the start of every write (with leader election off: always true). */
  constructor(private readonly isLeader: () => boolean) {}

  /** The signal for a write starting now: already aborted unless we lead. */
  signalForWrite(): AbortSignal {
    if (!this.isLeader()) {
      return AbortSignal.abort(
        new NotLeaderError('not the leader (or past the renew deadline): write not sent'),
      );
    }
    return this.current.signal;
  }

  /** Leadership ended: abort every write in flight. */
  revoke(reason: string): void {
    const ending = this.current;
    this.current = sharedController();
    ending.abort(new NotLeaderError(`write aborted: ${reason}`));
  }
}

export const isWrite = (method: string): boolean => method !== 'GET' && method !== 'HEAD';

/** An API client like `kubeConfig.makeApiClient(type)` whose writes carry the fence's signal. */
export function fencedApiClient<T>(
  kubeConfig: KubeConfig,
  apiClientType: new (configuration: Configuration) => T,
  fence: WriteFence,
): T {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('no cluster in the kubeconfig');
  const middleware: Middleware = {
    pre: async (context) => {
      if (isWrite(context.getHttpMethod())) {
        const signal = fence.signalForWrite();
        if (signal.aborted) throw signal.reason;
        context.setSignal(signal);
      }
      return context;
    },
    post: async (response) => response,
  };
  return new apiClientType(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: kubeConfig },
      promiseMiddleware: [middleware],
    }),
  );
}

// Bulk API traffic for the fault and churn tests: bounded concurrency, and
// calls that ride out an apiserver that is restarting.
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreV1Api } from '@kubernetes/client-node';
import { statusCodeOf } from './kube.js';

/** Runs `fn` over `items` with at most `concurrency` calls in flight, in order of start. */
export async function runPool<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await fn(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** Whether a failed call may succeed when repeated: no answer at all, or 429 / 5xx. */
export function isTransient(err: unknown): boolean {
  const code = statusCodeOf(err);
  return code === undefined || code === 429 || code >= 500;
}

/**
 * Repeats `call` while it fails transiently (e.g. the apiserver is down),
 * until `timeoutMs`; resolves with the API status it finally failed with
 * (`ok` codes count as success), or undefined on success.
 */
export async function persistently(
  call: () => Promise<unknown>,
  { ok = [] as number[], timeoutMs = 60_000 } = {},
): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await call();
      return undefined;
    } catch (err) {
      const code = statusCodeOf(err);
      if (code !== undefined && ok.includes(code)) return code;
      if (!isTransient(err) || Date.now() > deadline) throw err;
      await sleep(250);
    }
  }
}

/** Creates a ServiceAccount, riding out a restarting apiserver; AlreadyExists counts as done. */
export async function ensureServiceAccount(core: CoreV1Api, namespace: string, name: string): Promise<void> {
  await persistently(() => core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } }), {
    ok: [409],
  });
}

/** Deletes a ServiceAccount, riding out a restarting apiserver; NotFound counts as done. */
export async function removeServiceAccount(core: CoreV1Api, namespace: string, name: string): Promise<void> {
  await persistently(() => core.deleteNamespacedServiceAccount({ namespace, name }), { ok: [404] });
}

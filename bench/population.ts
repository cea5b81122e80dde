// The objects the scenarios run against: namespaces bench-p000, bench-p001, …
// each holding 99 ServiceAccounts plus the `default` one the
// controller-manager adds, so 100 managed ServiceAccounts per namespace.
// Only the first N/100 namespaces carry ca.istio.io/override=true; with
// namespaces.managedByDefault=false nothing else (kube-system, default,
// istio-system) is managed, so exactly N Secrets are due.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../test/cluster/paths.js';
import { runPool } from '../test/integration/support/load.js';
import { type Api, waitUntil } from './api.js';
import { CA_NAMESPACE } from './controller.js';

export const PER_NAMESPACE = 100;
export const BENCH_LABEL = 'alcazar.dev/bench';
export const OVERRIDE_LABEL = 'ca.istio.io/override';
export const MANAGED_SELECTOR = 'app.kubernetes.io/managed-by=alcazar';
const CA_PATH = '/apis/alcazar.dev/v1alpha1/certificateauthorities';

export type KeyAlgorithm = 'ECDSA_P256' | 'RSA_2048';

export const namespaceName = (i: number) => `bench-p${String(i).padStart(3, '0')}`;
export const serviceAccountNames = (): string[] => [
  'default',
  ...Array.from({ length: PER_NAMESPACE - 1 }, (_, i) => `sa-${String(i).padStart(2, '0')}`),
];

interface Meta {
  metadata: { name: string; namespace?: string; uid: string; labels?: Record<string, string> };
}

export interface ManagedServiceAccount {
  namespace: string;
  name: string;
  uid: string;
}

export function installCrds(kubeconfig: string): void {
  const kubectl = (args: string[]) =>
    execFileSync('kubectl', ['--kubeconfig', kubeconfig, ...args], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  kubectl(['apply', '-f', join(repoRoot, 'crds')]);
  kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/certificateauthorities.alcazar.dev']);
}

export async function ensureNamespace(api: Api, name: string, labels: Record<string, string>): Promise<void> {
  const res = await api.call('POST', '/api/v1/namespaces', { metadata: { name, labels } }, { accept: [409] });
  if (res.status === 409) {
    await api.call(
      'PATCH',
      `/api/v1/namespaces/${name}`,
      { metadata: { labels } },
      { contentType: 'application/merge-patch+json' },
    );
  }
}

/**
 * Makes exactly `n` ServiceAccounts managed (n a multiple of 100) and returns them. Creates what is
 * missing; namespaces beyond n/100 are kept but labelled unmanaged.
 */
export async function ensurePopulation(
  api: Api,
  n: number,
  log: (line: string) => void,
): Promise<ManagedServiceAccount[]> {
  await ensureNamespace(api, CA_NAMESPACE, {});
  const wanted = n / PER_NAMESPACE;
  const existing = (
    await api.listAll<Meta>('/api/v1/namespaces', { labelSelector: `${BENCH_LABEL}=population` })
  ).items;
  const count = Math.max(wanted, existing.length);
  await runPool(
    Array.from({ length: count }, (_, i) => i),
    16,
    (i) =>
      ensureNamespace(api, namespaceName(i), {
        [BENCH_LABEL]: 'population',
        [OVERRIDE_LABEL]: i < wanted ? 'true' : 'false',
      }),
  );
  const have = new Set(
    (
      await api.listAll<Meta>('/api/v1/serviceaccounts', { labelSelector: `${BENCH_LABEL}=population` })
    ).items.map((sa) => `${sa.metadata.namespace}/${sa.metadata.name}`),
  );
  const missing: Array<[string, string]> = [];
  for (let i = 0; i < wanted; i++) {
    for (const sa of serviceAccountNames().slice(1)) {
      if (!have.has(`${namespaceName(i)}/${sa}`)) missing.push([namespaceName(i), sa]);
    }
  }
  if (missing.length > 0) {
    const started = Date.now();
    await runPool(missing, 32, async ([namespace, name]) => {
      await api.call(
        'POST',
        `/api/v1/namespaces/${namespace}/serviceaccounts`,
        { metadata: { name, labels: { [BENCH_LABEL]: 'population' } } },
        { accept: [409] },
      );
    });
    log(`created ${missing.length} ServiceAccounts in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  // The controller-manager adds `default` to each new namespace; wait for all of them.
  const managed = await waitUntil(
    `the ${n} managed ServiceAccounts`,
    async () => {
      const all: ManagedServiceAccount[] = [];
      for (let i = 0; i < wanted; i++) {
        const items = (await api.listAll<Meta>(`/api/v1/namespaces/${namespaceName(i)}/serviceaccounts`))
          .items;
        for (const sa of items)
          all.push({ namespace: namespaceName(i), name: sa.metadata.name, uid: sa.metadata.uid });
      }
      return all.length === n ? all : undefined;
    },
    120_000,
    1000,
  );
  return managed;
}

/** Deletes every workload Secret in the bench's namespaces and waits until none is left. */
export async function deleteWorkloadSecrets(api: Api): Promise<void> {
  const namespaces = (
    await api.listAll<Meta>('/api/v1/namespaces', { labelSelector: BENCH_LABEL })
  ).items.map((ns) => ns.metadata.name);
  await runPool(namespaces, 8, async (ns) => {
    await api.call(
      'DELETE',
      `/api/v1/namespaces/${ns}/secrets?${new URLSearchParams({ labelSelector: MANAGED_SELECTOR })}`,
      undefined,
      { accept: [404] },
    );
  });
  await waitUntil(
    'workload Secrets to be deleted',
    async () => (await countWorkloadSecrets(api)) === 0,
    120_000,
    500,
  );
}

export async function countWorkloadSecrets(api: Api): Promise<number> {
  const { items } = await api.listAll<Meta>('/api/v1/secrets', { labelSelector: MANAGED_SELECTOR });
  return items.filter((s) => s.metadata.namespace?.startsWith('bench-p')).length;
}

/** Creates or replaces the CertificateAuthority `default` with the bench's spec. */
export async function setCertificateAuthority(
  api: Api,
  keyAlgorithm: KeyAlgorithm,
  annotations: Record<string, string> = {},
): Promise<void> {
  const body = {
    apiVersion: 'alcazar.dev/v1alpha1',
    kind: 'CertificateAuthority',
    metadata: { name: 'default', annotations },
    spec: { namespaces: { managedByDefault: false }, workloadCertificates: { keyAlgorithm } },
  };
  const existing = await api.send<{
    metadata: { resourceVersion: string; annotations?: Record<string, string> };
  }>('GET', `${CA_PATH}/default`);
  if (existing.status === 404) {
    await api.call('POST', CA_PATH, body);
    return;
  }
  await api.call('PUT', `${CA_PATH}/default`, {
    ...body,
    metadata: {
      ...body.metadata,
      annotations: { ...(existing.body.metadata.annotations ?? {}), ...annotations },
      resourceVersion: existing.body.metadata.resourceVersion,
    },
  });
}

/** Sets an annotation on the CertificateAuthority `default` (e.g. the rotate-root request). */
export async function annotateCertificateAuthority(api: Api, key: string, value: string): Promise<void> {
  await api.call(
    'PATCH',
    `${CA_PATH}/default`,
    { metadata: { annotations: { [key]: value } } },
    { contentType: 'application/merge-patch+json' },
  );
}

/** Reaction namespaces an interrupted run left behind: unmanaged at once, then deleted. */
export async function removeLeftovers(api: Api): Promise<void> {
  const { items } = await api.listAll<Meta>('/api/v1/namespaces', {
    labelSelector: `${BENCH_LABEL}=reaction`,
  });
  for (const ns of items) {
    await api.call(
      'PATCH',
      `/api/v1/namespaces/${ns.metadata.name}`,
      { metadata: { labels: { [OVERRIDE_LABEL]: 'false' } } },
      { contentType: 'application/merge-patch+json', accept: [404, 409] },
    );
    await api.call('DELETE', `/api/v1/namespaces/${ns.metadata.name}`, undefined, { accept: [404, 409] });
  }
}

// Churn: a seeded random interleaving of 1,000 ServiceAccount creations with
// deletions, name reuse, and namespaces created and deleted, while the
// controller runs. Afterwards the state is exact: every ServiceAccount has
// exactly one valid Secret owned by it (uid), no workload Secret outlives its
// ServiceAccount, every namespace publishes the trust bundle, and deleted
// namespaces are gone. Re-run an interleaving with ALCAZAR_CHURN_SEED=<seed>.
import { randomInt } from 'node:crypto';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { type Audit, auditNamespaces, caRootsOf, describeAudit } from './support/audit.js';
import { type ControllerProcess, startController } from './support/controller.js';
import { recordKeyDigests } from './support/key-digests.js';
import { adminKubeConfig, createTestNamespace, statusCodeOf } from './support/kube.js';
import { persistently } from './support/load.js';
import { waitFor } from './support/wait.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const SEED = Number(process.env.ALCAZAR_CHURN_SEED ?? randomInt(2 ** 31));
const SERVICE_ACCOUNT_CREATIONS = 1_000;
const CONCURRENCY = 12;

let controller: ControllerProcess | undefined;
const namespacesToRemove = new Set<string>();

afterAll(async () => {
  await controller?.stop();
  await Promise.all(
    [...namespacesToRemove].map((name) =>
      core.deleteNamespace({ name }).catch((err: unknown) => {
        if (statusCodeOf(err) !== 404) throw err;
      }),
    ),
  );
});

/** mulberry32: a small, seedable PRNG, so an interleaving can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

type Op =
  | { kind: 'createServiceAccount' | 'deleteServiceAccount'; namespace: string; name: string }
  | { kind: 'createNamespace' | 'deleteNamespace'; namespace: string };

/**
 * The operations, in the order the seed chose. A model of what exists keeps
 * them meaningful: deletions pick something that exists, names are reused
 * after deletion, SAs are only created in namespaces that exist.
 */
function plan(seed: number, prefix: string): Op[] {
  const next = random(seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!;
  const alive = new Map<string, Set<string>>();
  const ops: Op[] = [];
  let namespaces = 0;
  const createNamespace = () => {
    const namespace = `${prefix}-${namespaces++}`;
    alive.set(namespace, new Set());
    ops.push({ kind: 'createNamespace', namespace });
  };
  for (let i = 0; i < 6; i++) createNamespace();
  let creations = 0;
  while (creations < SERVICE_ACCOUNT_CREATIONS) {
    const roll = next();
    const names = [...alive.keys()];
    if (roll < 0.012) {
      createNamespace();
    } else if (roll < 0.02 && names.length > 4) {
      const namespace = pick(names);
      alive.delete(namespace);
      ops.push({ kind: 'deleteNamespace', namespace });
    } else if (roll < 0.4) {
      const namespace = pick(names);
      const existing = [...alive.get(namespace)!];
      if (existing.length === 0) continue;
      const name = pick(existing);
      alive.get(namespace)!.delete(name);
      ops.push({ kind: 'deleteServiceAccount', namespace, name });
    } else {
      const namespace = pick(names);
      // A small name pool per namespace, so deleted names come back (with a new uid).
      const name = `sa-${Math.floor(next() * 150)}`;
      if (alive.get(namespace)!.has(name)) continue;
      alive.get(namespace)!.add(name);
      ops.push({ kind: 'createServiceAccount', namespace, name });
      creations++;
    }
  }
  return ops;
}

/** Runs the ops with bounded concurrency; an op waits for earlier ops on the same object or namespace. */
async function execute(ops: Op[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const count = (what: string) => {
    counts[what] = (counts[what] ?? 0) + 1;
  };
  let running = 0;
  const slots: Array<() => void> = [];
  const acquire = async () => {
    if (running < CONCURRENCY) {
      running++;
      return;
    }
    await new Promise<void>((resolve) => slots.push(resolve));
  };
  const release = () => {
    const next = slots.shift();
    if (next) next();
    else running--;
  };
  const last = new Map<string, Promise<void>>(); // per ServiceAccount key
  const byNamespace = new Map<string, Promise<void>[]>();
  const all: Promise<void>[] = [];
  const call = async (op: Op) => {
    switch (op.kind) {
      case 'createNamespace':
        await persistently(() =>
          core.createNamespace({
            body: { metadata: { name: op.namespace, labels: { 'alcazar.dev/test': 'true' } } },
          }),
        );
        return;
      case 'deleteNamespace':
        await persistently(() => core.deleteNamespace({ name: op.namespace }), { ok: [404] });
        return;
      case 'createServiceAccount':
        await persistently(
          () =>
            core.createNamespacedServiceAccount({
              namespace: op.namespace,
              body: { metadata: { name: op.name } },
            }),
          { ok: [409] },
        );
        return;
      case 'deleteServiceAccount':
        await persistently(
          () => core.deleteNamespacedServiceAccount({ namespace: op.namespace, name: op.name }),
          {
            ok: [404],
          },
        );
        return;
    }
  };
  for (const op of ops) {
    const inNamespace = byNamespace.get(op.namespace) ?? [];
    byNamespace.set(op.namespace, inNamespace);
    const key = 'name' in op ? `${op.namespace}/${op.name}` : undefined;
    let deps: Promise<void>[];
    if (key !== undefined) deps = [inNamespace[0]!, last.get(key) ?? Promise.resolve()];
    else deps = op.kind === 'deleteNamespace' ? [...inNamespace] : [];
    const done = (async () => {
      await Promise.all(deps);
      await acquire();
      try {
        await call(op);
        count(op.kind);
      } finally {
        release();
      }
    })();
    all.push(done);
    inNamespace.push(done);
    if (key !== undefined) last.set(key, done);
  }
  await Promise.all(all);
  return counts;
}

describe('churn', () => {
  it('1,000 ServiceAccounts created and deleted among namespaces that come and go: the end state is exact', async () => {
    const started = Date.now();
    const ca = await createTestNamespace(core, 'ca');
    namespacesToRemove.add(ca.name);
    const prefix = `churn-${SEED.toString(36)}`;
    const ops = plan(SEED, prefix);
    const created = ops.filter((o) => o.kind === 'createNamespace').map((o) => o.namespace);
    const deleted = new Set(ops.filter((o) => o.kind === 'deleteNamespace').map((o) => o.namespace));
    for (const ns of created) namespacesToRemove.add(ns);
    console.log(
      `[churn] seed ${SEED} (replay with ALCAZAR_CHURN_SEED=${SEED}): ${ops.length} operations, ` +
        `${created.length} namespaces created, ${deleted.size} deleted`,
    );
    controller = await startController({ caNamespace: ca.name });

    const counts = await execute(ops);
    const applied = Date.now() - started;
    const remaining = created.filter((ns) => !deleted.has(ns));

    let last: Audit | undefined;
    const audit = await waitFor(
      'the exact end state',
      async () => {
        last = await auditNamespaces(core, remaining, await caRootsOf(core, ca.name));
        return last.problems.length === 0 ? last : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1_000 },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${last ? describeAudit(last) : 'no audit completed'}`);
    });
    recordKeyDigests(audit.keyDigests);
    const converged = Date.now() - started;
    await waitFor(
      'the deleted namespaces (and everything in them) to be gone',
      async () => {
        const left = await core.listNamespace({ labelSelector: 'alcazar.dev/test=true' });
        return !left.items.some((n) => deleted.has(n.metadata?.name ?? ''));
      },
      { timeoutMs: 120_000, intervalMs: 1_000 },
    );
    console.log(
      `[churn] ${JSON.stringify(counts)}; applied in ${applied} ms, converged at ${converged} ms, ` +
        `namespaces gone at ${Date.now() - started} ms; ${audit.serviceAccounts} ServiceAccounts and ` +
        `${audit.secrets} Secrets in ${audit.namespaces} namespaces`,
    );
    expect(audit.namespaces).toBe(remaining.length);
    expect(audit.secrets).toBe(audit.serviceAccounts);
    expect(counts.createServiceAccount).toBe(SERVICE_ACCOUNT_CREATIONS);
    // Still the one process and the one root.
    expect(controller.lines.filter((l) => l.msg === 'controller started')).toHaveLength(1);
    expect(
      controller.lines.filter((l) => String(l.msg).startsWith('generated a new self-signed root')),
    ).toHaveLength(1);
  }, 300_000);
});

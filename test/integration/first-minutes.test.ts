// What a newcomer meets in the first minutes: a controller that cannot lead says why, invalid
// settings are reported with their value, a shortened ttl takes effect, counters count what they say.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControllerProcess } from './support/controller.js';
import { useHarness } from './support/harness.js';
import { readyz, sample, scrape } from './support/metrics.js';
import { waitFor } from './support/wait.js';
import {
  leafOf,
  setCertificateAuthoritySpec,
  waitForSecretGone,
  waitForWorkloadSecret,
} from './support/workload.js';

const harness = useHarness({ cleanup: 'each', certificateAuthority: true });
const { core, customObjects } = harness;
const namespace = () => harness.namespace('fm');

async function setNamespaceLabel(name: string, label: string, value: string | undefined) {
  const ns = await core.readNamespace({ name });
  const labels = { ...ns.metadata?.labels };
  if (value === undefined) delete labels[label];
  else labels[label] = value;
  await core.replaceNamespace({ name, body: { ...ns, metadata: { ...ns.metadata, labels } } });
}

describe('a CA namespace that does not exist', () => {
  it('is named in /readyz and the log, not retried silently; creating it lets the controller lead', async () => {
    const caNamespace = `fm-missing-${randomBytes(3).toString('hex')}`;
    harness.trackNamespace(caNamespace);
    const controller = await harness.controller({ caNamespace, args: ['--leader-elect=true'] });
    const logged = await controller.waitForLog('why it cannot lead', (l) =>
      /cannot acquire Lease .*not found; create the namespace/.test(l.msg),
    );
    expect(logged.level).toBe('warn');
    const notReady = await waitFor('readyz to fail on leader election', async () => {
      const r = await readyz(controller);
      return r.status === 503 && r;
    });
    expect(notReady.body).toMatch(
      new RegExp(
        `\\[-\\]leader-election failed: cannot acquire Lease ${caNamespace}/alcazar-leader: .*not found`,
      ),
    );

    await core.createNamespace({ body: { metadata: { name: caNamespace } } });
    await controller.waitForLog('leading', (l) => l.msg === 'became leader');
    await controller.waitForLog('recovery', (l) => l.msg === 'the Lease is reachable again');
    const ready = await waitFor('readyz to pass', async () => {
      const r = await readyz(controller);
      return r.status === 200 && r;
    });
    expect(ready.body).toContain('readyz check passed');
    // The same failure is logged once, then at most once a minute: not a line every retry.
    const repeats = controller.lines.filter((l) => /cannot acquire Lease/.test(l.msg));
    expect(repeats.length).toBe(1);
  });
});

describe('with a running controller', () => {
  let caNamespace: string;
  let controller: ControllerProcess;

  beforeAll(async () => {
    caNamespace = await namespace();
    controller = await harness.controller({ caNamespace });
  });
  afterAll(harness.cleanUp);

  it('an invalid duration is refused with its value, not its type', async () => {
    const err = await customObjects
      .createClusterCustomObject({
        group: 'alcazar.dev',
        version: 'v1alpha1',
        plural: 'certificateauthorities',
        dryRun: 'All',
        body: {
          apiVersion: 'alcazar.dev/v1alpha1',
          kind: 'CertificateAuthority',
          metadata: { name: 'default' },
          spec: { workloadCertificates: { ttl: 'banana', minGracePeriod: '1fortnight' } },
        },
      })
      .then(
        () => undefined,
        (e: unknown) => e as { code?: number; body?: string },
      );
    expect(err?.code).toBe(422);
    expect(String(err?.body)).toContain("'banana' is not a positive duration");
    expect(String(err?.body)).toContain("'1fortnight' is not a duration");
  });

  it('counts a Secret as re-created after deletion only when someone else deleted it', async () => {
    const ns = await namespace();
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'cart' } } });
    const first = await waitForWorkloadSecret(core, ns, 'cart');
    const metric = 'citadel_secret_controller_secret_deleted_cert_count';
    const before = sample(await scrape(controller), metric);

    // alcazar deletes it (namespace no longer managed) and creates it again (managed again): not counted.
    await setNamespaceLabel(ns, 'ca.istio.io/override', 'false');
    await waitForSecretGone(core, ns, 'istio.cart');
    await setNamespaceLabel(ns, 'ca.istio.io/override', undefined);
    const second = await waitForWorkloadSecret(
      core,
      ns,
      'cart',
      (s) => s.metadata?.uid !== first.metadata?.uid,
    );

    // A person deletes it: counted once.
    await core.deleteNamespacedSecret({ namespace: ns, name: 'istio.cart' });
    await waitForWorkloadSecret(core, ns, 'cart', (s) => s.metadata?.uid !== second.metadata?.uid);
    const after = await waitFor('the counter to move', async () => {
      const value = sample(await scrape(controller), metric);
      return value > before && value;
    });
    expect(after - before).toBe(1);
  });

  it('shortening the ttl reissues certificates that would outlive a fresh one', async () => {
    await setCertificateAuthoritySpec(customObjects, {});
    const ns = await namespace();
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'web' } } });
    const long = await waitForWorkloadSecret(core, ns, 'web');
    expect(leafOf(long).notAfter.getTime() - Date.now()).toBeGreaterThan(80 * 86_400_000);

    await setCertificateAuthoritySpec(customObjects, { workloadCertificates: { ttl: '24h' } });
    const short = await waitForWorkloadSecret(
      core,
      ns,
      'web',
      (s) => leafOf(s).notAfter.getTime() < Date.now() + 25 * 3_600_000,
    );
    expect(leafOf(short).serialNumberHex).not.toBe(leafOf(long).serialNumberHex);
    const reissued = await controller.waitForLog(
      'a TTLShortened reissue',
      (l) => l.reason === 'TTLShortened' && l.namespace === ns,
    );
    expect(reissued.level).toBe('info');
  });
});

import { describe, expect, it } from 'vitest';
import { explainMissingSecret, type MissingSecretFacts } from './missing.js';

const now = new Date('2026-11-30T12:00:00Z');
const found = <T>(value: T) => ({ ok: true as const, value });
const absent = { ok: true as const, value: undefined };

function facts(overrides: Partial<MissingSecretFacts> = {}): MissingSecretFacts {
  return {
    namespace: 'shop',
    serviceAccount: 'cart',
    caNamespace: 'istio-system',
    leaseName: 'alcazar-leader',
    sa: found({ metadata: { name: 'cart' } }),
    workloadNamespace: found({ metadata: { name: 'shop' } }),
    caNamespaceObject: found({ metadata: { name: 'istio-system' } }),
    lease: found({
      spec: { holderIdentity: 'pod-a', renewTime: new Date(now.getTime() - 2_000), leaseDurationSeconds: 15 },
    }),
    certificateAuthority: absent,
    ...overrides,
  };
}

describe('why a workload Secret is missing', () => {
  it('names a missing ServiceAccount first', () => {
    expect(explainMissingSecret(facts({ sa: absent }), now)).toMatch(/does not exist either/);
  });

  it('a missing CA namespace says to create it', () => {
    const hint = explainMissingSecret(facts({ caNamespaceObject: absent, lease: absent }), now);
    expect(hint).toMatch(/CA namespace istio-system does not exist/);
    expect(hint).toMatch(/kubectl create namespace istio-system/);
  });

  it('no Lease holder asks whether the controller runs', () => {
    expect(explainMissingSecret(facts({ lease: absent }), now)).toMatch(
      /no controller holds the Lease istio-system\/alcazar-leader/,
    );
  });

  it('an expired Lease says how long ago it was renewed', () => {
    const lease = found({
      spec: {
        holderIdentity: 'pod-a',
        renewTime: new Date(now.getTime() - 60_000),
        leaseDurationSeconds: 15,
      },
    });
    expect(explainMissingSecret(facts({ lease }), now)).toMatch(
      /held by pod-a has expired \(last renewed 60 s ago\)/,
    );
  });

  it('an unmanaged namespace names the labels that decide', () => {
    const workloadNamespace = found({
      metadata: { name: 'shop', labels: { 'ca.istio.io/override': 'false' } },
    });
    expect(explainMissingSecret(facts({ workloadNamespace }), now)).toMatch(/namespace shop is not managed/);
  });

  it('a CertificateAuthority that is not Ready gives its reason', () => {
    const certificateAuthority = found({
      spec: {},
      status: { conditions: [{ type: 'Ready', status: 'False', reason: 'KeyMismatch', message: 'bad key' }] },
    });
    expect(explainMissingSecret(facts({ certificateAuthority }), now)).toMatch(
      /not Ready: KeyMismatch: bad key/,
    );
  });

  it('otherwise points at the Events and logs', () => {
    expect(explainMissingSecret(facts(), now)).toMatch(/describe serviceaccount cart/);
  });
});

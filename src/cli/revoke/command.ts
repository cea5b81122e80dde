// The `alcazar revoke` command: create the CertificateRevocation, optionally wait for its outcome.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { certificateRevocationResource as resource } from '../../config/revocation-spec.js';
import { type CertificateRevocationObject, observeRevocation } from '../../controllers/revocation/observe.js';
import { describeApiError, loadKubeConfig } from '../../kube/client.js';
import {
  EXIT,
  parseRevokeArgs,
  REVOKE_USAGE,
  type RevokeArgs,
  RevokeUsageError,
  revocationObject,
} from './args.js';

export interface RevokeIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

const processIo: RevokeIo = { out: (t) => console.log(t), err: (t) => console.error(t) };

export async function runRevokeCommand(argv: string[], io: RevokeIo = processIo): Promise<number> {
  let args: RevokeArgs | undefined;
  try {
    args = parseRevokeArgs(argv);
  } catch (err) {
    if (!(err instanceof RevokeUsageError)) throw err;
    io.err(`alcazar revoke: ${err.message}\n\n${REVOKE_USAGE}`);
    return EXIT.usage;
  }
  if (!args) {
    io.out(REVOKE_USAGE);
    return EXIT.ok;
  }
  let kubeConfig: KubeConfig;
  try {
    kubeConfig = loadKubeConfig(args.kubeconfig);
  } catch (err) {
    io.err(`alcazar revoke: cannot load the kubeconfig: ${(err as Error).message}`);
    return EXIT.usage;
  }
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  const target = {
    group: resource.group,
    version: resource.version,
    namespace: args.namespace,
    plural: resource.plural,
  };
  let created: CertificateRevocationObject;
  try {
    created = (await api.createNamespacedCustomObject({
      ...target,
      body: revocationObject(args),
    })) as CertificateRevocationObject;
  } catch (err) {
    io.err(`alcazar revoke: cannot create the CertificateRevocation: ${describeApiError(err)}`);
    return EXIT.apiError;
  }
  const name = created.metadata?.name ?? '';
  io.out(`certificaterevocation.alcazar.dev/${name} created in namespace ${args.namespace}`);
  if (!args.wait) return EXIT.ok;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    let current: CertificateRevocationObject;
    try {
      current = (await api.getNamespacedCustomObject({ ...target, name })) as CertificateRevocationObject;
    } catch (err) {
      // Created, but its outcome cannot be read (a 403 for get, the object deleted, the network).
      io.err(`alcazar revoke: created, but cannot read its outcome: ${describeApiError(err)}`);
      return EXIT.apiError;
    }
    const decided = observeRevocation(current).decided;
    const condition = current.status?.conditions?.find(
      (c) => c.type === (decided?.applied ? 'Applied' : 'Refused'),
    );
    if (decided && condition) {
      io.out(`${decided.applied ? 'applied' : `refused (${condition.reason})`}: ${condition.message}`);
      for (const r of current.status?.revoked ?? [])
        io.out(`  revoked serial ${r.serialNumber} (valid until ${r.notAfter})`);
      if (!decided.applied)
        io.out(
          `(the refused object stays as a record: kubectl -n ${args.namespace} delete certificaterevocation ${name})`,
        );
      return decided.applied ? EXIT.ok : EXIT.refused;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  io.err('alcazar revoke: no outcome within 60 s: is the controller running?');
  return EXIT.noOutcome;
}

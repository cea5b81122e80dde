// The command line of `alcazar revoke`: usage, parsing, and the object it creates.
import { parseArgs } from 'node:util';
import { certificateRevocationResource as resource } from '../../config/revocation-spec.js';
import { CRL_REASONS, normalizeSerialHex } from '../../pki/crl.js';

export const REVOKE_USAGE = `usage: alcazar revoke <namespace>/<serviceaccount> [--reason R] [flags]
       alcazar revoke --serial HEX [--serial HEX …] -n NAMESPACE [--reason R] [flags]

Creates a CertificateRevocation: alcazar reissues the ServiceAccount's Secret with a new key at once
and lists the revoked certificates in the CRL it publishes as ConfigMap istio-ca-crl (key
ca-crl.pem) in every managed namespace. Revoke from the workload's own namespace; the CA namespace
may revoke any serial alcazar issued.

flags:
  --reason R            ${CRL_REASONS.join(', ')} (default unspecified)
  --serial HEX          a serial number as openssl prints it (repeatable); needs -n
  -n, --namespace NS    the namespace of the identity the serials were issued to
  --name NAME           name of the CertificateRevocation (default: generated)
  --wait                wait until alcazar has applied or refused it, and print the outcome
  --kubeconfig PATH     kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
  -h, --help            show this help

exit status: 0 created (with --wait: applied), 1 refused, 2 usage error, 3 no outcome within 60 s
(--wait; the object stays), 4 the API refused a request`;

export const EXIT = { ok: 0, refused: 1, usage: 2, noOutcome: 3, apiError: 4 } as const;

export class RevokeUsageError extends Error {
  override name = 'RevokeUsageError';
}

export interface RevokeArgs {
  namespace: string;
  serviceAccount?: string;
  serials: string[];
  reason: (typeof CRL_REASONS)[number];
  name?: string;
  wait: boolean;
  kubeconfig?: string;
}

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** undefined when --help was asked for. */
export function parseRevokeArgs(argv: string[]): RevokeArgs | undefined {
  let parsed: ReturnType<typeof flags>;
  try {
    parsed = flags(argv);
  } catch (err) {
    throw new RevokeUsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return undefined;
  const reason = values.reason ?? 'unspecified';
  if (!(CRL_REASONS as readonly string[]).includes(reason)) {
    throw new RevokeUsageError(`--reason must be one of ${CRL_REASONS.join(', ')}; got "${reason}"`);
  }
  const serials = (values.serial ?? []).map((text) => {
    const serial = normalizeSerialHex(text);
    if (!serial) throw new RevokeUsageError(`--serial "${text}" is not a hexadecimal serial number`);
    return serial;
  });
  if (positionals.length > 1)
    throw new RevokeUsageError(`expected one <namespace>/<serviceaccount>, got ${positionals.length}`);
  let namespace = values.namespace;
  let serviceAccount: string | undefined;
  if (positionals.length === 1) {
    const match = /^([a-z0-9][-a-z0-9]*)\/([a-z0-9][-a-z0-9.]*)$/.exec(positionals[0]!);
    if (!match) throw new RevokeUsageError(`expected <namespace>/<serviceaccount>, got "${positionals[0]}"`);
    if (namespace !== undefined && namespace !== match[1])
      throw new RevokeUsageError(`-n ${namespace} disagrees with ${positionals[0]}`);
    namespace = match[1]!;
    serviceAccount = match[2]!;
  }
  if (serviceAccount === undefined && serials.length === 0)
    throw new RevokeUsageError(
      'what to revoke? give <namespace>/<serviceaccount> or --serial HEX -n NAMESPACE',
    );
  if (namespace === undefined)
    throw new RevokeUsageError('--serial needs -n NAMESPACE: the namespace the certificate was issued to');
  if (!NAME.test(namespace)) throw new RevokeUsageError(`"${namespace}" is not a namespace name`);
  if (values.name !== undefined && !NAME.test(values.name))
    throw new RevokeUsageError(`--name "${values.name}" is not a valid object name`);
  return {
    namespace,
    ...(serviceAccount !== undefined && { serviceAccount }),
    serials,
    reason: reason as RevokeArgs['reason'],
    ...(values.name !== undefined && { name: values.name }),
    wait: values.wait ?? false,
    ...(values.kubeconfig !== undefined && { kubeconfig: values.kubeconfig }),
  };
}

/** The CertificateRevocation to create. */
export function revocationObject(args: RevokeArgs) {
  return {
    apiVersion: `${resource.group}/${resource.version}`,
    kind: resource.kind,
    metadata: {
      namespace: args.namespace,
      ...(args.name !== undefined
        ? { name: args.name }
        : {
            generateName: `${(args.serviceAccount ?? 'serials').slice(0, 40).replace(/\.+$/, '').replace(/\./g, '-')}-`,
          }),
    },
    spec: {
      ...(args.serviceAccount !== undefined && { serviceAccountName: args.serviceAccount }),
      ...(args.serials.length > 0 && { serialNumbers: args.serials }),
      reason: args.reason,
    },
  };
}

function flags(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      reason: { type: 'string' },
      serial: { type: 'string', multiple: true },
      namespace: { type: 'string', short: 'n' },
      name: { type: 'string' },
      wait: { type: 'boolean' },
      kubeconfig: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

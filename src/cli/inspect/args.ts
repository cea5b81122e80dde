// The command line of `alcazar inspect`: its usage text, its exit statuses, and parsing its arguments.
import { parseArgs } from 'node:util';
import { serviceAccountOfSecret, workloadSecretName } from '../../model/names.js';

export const INSPECT_USAGE = `usage: alcazar inspect <namespace>/<serviceaccount> [flags]
       alcazar inspect --secret <namespace>/<secret-name> [flags]

Reports on a workload Secret (istio.<serviceaccount>, or the one named): its SPIFFE ID, validity,
chain of trust, whether key and certificate match, and when alcazar renews it. Read-only.

flags:
  --secret NS/NAME      inspect this Secret instead of istio.<serviceaccount>
  -o, --output FORMAT   text (default) or json
  --kubeconfig PATH     kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
  --ca-namespace NAME   namespace of the CA Secrets (default: istio-system)
  --lease-name NAME     the controller's leader-election Lease (default: alcazar-leader), named
                        when the Secret is missing and no controller holds it
  --csr-dns-names LIST  the controller's --csr-dns-names, comma-separated: names no workload may
                        have (default: alcazar.<ca-namespace>.svc,istiod.<ca-namespace>.svc)
  -h, --help            show this help

exit status: 0 healthy, 1 problems found, 2 usage error, 3 Secret not found,
             4 the Secret could not be read (API unreachable, forbidden)`;

export const EXIT = { healthy: 0, problems: 1, usage: 2, notFound: 3, unreadable: 4 } as const;

export interface InspectTarget {
  namespace: string;
  secretName: string;
  /** Whose identity the Secret should carry; undefined when the Secret's name does not say. */
  serviceAccount?: string;
}

export interface InspectArgs {
  target: InspectTarget;
  output: 'text' | 'json';
  kubeconfig?: string;
  caNamespace: string;
  leaseName: string;
  /** The names the CSR API serves, as the controller's --csr-dns-names: reserved for alcazar. */
  csrDnsNames: string[];
}

export class InspectUsageError extends Error {
  override name = 'InspectUsageError';
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const NAMESPACED_NAME = /^([a-z0-9][-a-z0-9.]*)\/([^/\s]+)$/;

function splitNamespacedName(text: string, what: string): [string, string] {
  const match = NAMESPACED_NAME.exec(text);
  if (!match) throw new InspectUsageError(`expected <namespace>/<${what}>, got "${text}"`);
  return [match[1]!, match[2]!];
}

/** `undefined` when --help was asked for. Throws InspectUsageError on anything it cannot use. */
export function parseInspectArgs(argv: string[]): InspectArgs | undefined {
  let parsed: ReturnType<typeof parseInspectFlags>;
  try {
    parsed = parseInspectFlags(argv);
  } catch (err) {
    throw new InspectUsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return undefined;
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json') {
    throw new InspectUsageError(`-o must be text or json, got "${output}"`);
  }
  const caNamespace = values['ca-namespace'] ?? 'istio-system';
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(caNamespace)) {
    throw new InspectUsageError(`--ca-namespace must be a namespace name, got "${caNamespace}"`);
  }
  const leaseName = values['lease-name'] ?? 'alcazar-leader';
  if (!DNS_SUBDOMAIN.test(leaseName)) {
    throw new InspectUsageError(`--lease-name must be an object name, got "${leaseName}"`);
  }
  const csrDnsNames =
    values['csr-dns-names'] === undefined
      ? [`alcazar.${caNamespace}.svc`, `istiod.${caNamespace}.svc`]
      : values['csr-dns-names'].split(',').map((name) => name.trim());
  for (const name of csrDnsNames) {
    if (!DNS_SUBDOMAIN.test(name)) {
      throw new InspectUsageError(`--csr-dns-names must be DNS names separated by commas, got "${name}"`);
    }
  }
  const common = {
    output,
    caNamespace,
    leaseName,
    csrDnsNames,
    ...(values.kubeconfig && { kubeconfig: values.kubeconfig }),
  } as const;

  if (values.secret !== undefined) {
    if (positionals.length > 0) {
      throw new InspectUsageError('give either <namespace>/<serviceaccount> or --secret, not both');
    }
    const [namespace, secretName] = splitNamespacedName(values.secret, 'secret-name');
    const serviceAccount = serviceAccountOfSecret(secretName);
    return { ...common, target: { namespace, secretName, ...(serviceAccount && { serviceAccount }) } };
  }
  if (positionals.length !== 1) {
    throw new InspectUsageError(
      positionals.length === 0
        ? 'which workload? give <namespace>/<serviceaccount> or --secret <namespace>/<secret-name>'
        : `expected one <namespace>/<serviceaccount>, got ${positionals.length} arguments`,
    );
  }
  const [namespace, serviceAccount] = splitNamespacedName(positionals[0]!, 'serviceaccount');
  return {
    ...common,
    target: { namespace, serviceAccount, secretName: workloadSecretName(serviceAccount) },
  };
}

function parseInspectFlags(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      secret: { type: 'string' },
      output: { type: 'string', short: 'o' },
      kubeconfig: { type: 'string' },
      'ca-namespace': { type: 'string' },
      'lease-name': { type: 'string' },
      'csr-dns-names': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

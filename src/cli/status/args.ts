// The command line of `kubectl alcazar status`: usage, exit statuses, parsing.
import { parseArgs } from 'node:util';

export const STATUS_USAGE = `usage: kubectl alcazar status [flags]

How the CA is doing, from the CertificateAuthority's status and the cluster: whether it is Ready
and why not, its roots and when they expire, a root rotation under way, who leads, how many
ServiceAccounts have a certificate, and which ones do not (read from their Secrets). Read-only;
it reads workload Secrets to check their certificates and never prints key material.

flags:
  -o, --output FORMAT   text (default) or json
  --kubeconfig PATH     kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
  --ca-namespace NAME   namespace of the CA Secrets and the Lease (default: istio-system)
  --lease-name NAME     the leader-election Lease (default: alcazar-leader)
  --no-lease            the controller runs with --leader-elect=false: there is no Lease to check
  --max-failing N       ServiceAccounts listed by name at most (default: 20; all are counted)
  -h, --help            show this help

exit status: 0 healthy, 1 problems found, 2 usage error,
             4 the cluster could not be read (API unreachable, forbidden)`;

export const STATUS_EXIT = { healthy: 0, problems: 1, usage: 2, unreadable: 4 } as const;

export interface StatusArgs {
  output: 'text' | 'json';
  kubeconfig?: string;
  caNamespace: string;
  /** Undefined with --no-lease: no leader is looked for. */
  leaseName?: string;
  maxFailing: number;
}

export class StatusUsageError extends Error {
  override name = 'StatusUsageError';
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** `undefined` when --help was asked for. Throws StatusUsageError on anything it cannot use. */
export function parseStatusArgs(argv: string[]): StatusArgs | undefined {
  let values: ReturnType<typeof parseStatusFlags>['values'];
  let positionals: string[];
  try {
    ({ values, positionals } = parseStatusFlags(argv));
  } catch (err) {
    throw new StatusUsageError((err as Error).message);
  }
  if (values.help) return undefined;
  if (positionals.length > 0) throw new StatusUsageError(`unexpected argument "${positionals[0]}"`);
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json') {
    throw new StatusUsageError(`-o must be text or json, got "${output}"`);
  }
  const caNamespace = values['ca-namespace'] ?? 'istio-system';
  if (!DNS_LABEL.test(caNamespace)) {
    throw new StatusUsageError(`--ca-namespace must be a namespace name, got "${caNamespace}"`);
  }
  if (values['no-lease'] && values['lease-name'] !== undefined) {
    throw new StatusUsageError('--lease-name and --no-lease contradict each other');
  }
  const leaseName = values['lease-name'] ?? 'alcazar-leader';
  if (!DNS_SUBDOMAIN.test(leaseName)) {
    throw new StatusUsageError(`--lease-name must be an object name, got "${leaseName}"`);
  }
  const maxFailingText = values['max-failing'] ?? '20';
  if (!/^\d{1,6}$/.test(maxFailingText)) {
    throw new StatusUsageError(`--max-failing must be a whole number, got "${maxFailingText}"`);
  }
  return {
    output,
    caNamespace,
    ...(values['no-lease'] ? {} : { leaseName }),
    maxFailing: Number(maxFailingText),
    ...(values.kubeconfig && { kubeconfig: values.kubeconfig }),
  };
}

function parseStatusFlags(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      output: { type: 'string', short: 'o' },
      kubeconfig: { type: 'string' },
      'ca-namespace': { type: 'string' },
      'lease-name': { type: 'string' },
      'no-lease': { type: 'boolean' },
      'max-failing': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

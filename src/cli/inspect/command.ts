// The `alcazar inspect` command: parse, read, judge, print, and return the exit status.
import type { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../kube/client.js';
import { defaultReservedDnsNames } from '../../policy/dns-names.js';
import { EXIT, INSPECT_USAGE, type InspectArgs, InspectUsageError, parseInspectArgs } from './args.js';
import { exitStatusOf, formatInspectText } from './format.js';
import { gatherObservation } from './gather.js';
import { buildInspectReport } from './report.js';

export interface InspectIo {
  out: (text: string) => void;
  err: (text: string) => void;
  now: () => Date;
}

const processIo: InspectIo = {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
  now: () => new Date(),
};

export async function runInspectCommand(argv: string[], io: InspectIo = processIo): Promise<number> {
  let args: InspectArgs | undefined;
  try {
    args = parseInspectArgs(argv);
  } catch (err) {
    if (!(err instanceof InspectUsageError)) throw err;
    io.err(`alcazar inspect: ${err.message}\n\n${INSPECT_USAGE}`);
    return EXIT.usage;
  }
  if (!args) {
    io.out(INSPECT_USAGE);
    return EXIT.healthy;
  }
  let kubeConfig: KubeConfig;
  try {
    kubeConfig = loadKubeConfig(args.kubeconfig);
  } catch (err) {
    io.err(`alcazar inspect: cannot load the kubeconfig: ${(err as Error).message}`);
    return EXIT.usage;
  }
  const reservedDnsNames = [...new Set([...defaultReservedDnsNames(args.caNamespace), ...args.csrDnsNames])];
  const gathered = await gatherObservation(
    kubeConfig,
    args.target,
    { caNamespace: args.caNamespace, leaseName: args.leaseName, reservedDnsNames },
    io.now(),
  );
  if (gathered.status !== 'found') {
    io.err(gathered.message);
    return gathered.status === 'notFound' ? EXIT.notFound : EXIT.unreadable;
  }
  const now = io.now();
  const report = await buildInspectReport(args.target, gathered.observation, now);
  io.out(args.output === 'json' ? JSON.stringify(report, null, 2) : formatInspectText(report, now));
  return exitStatusOf(report);
}

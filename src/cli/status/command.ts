// `kubectl alcazar status`: parse, read, judge, print, and return the exit status.
import type { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../kube/client.js';
import { parseStatusArgs, STATUS_EXIT, STATUS_USAGE, StatusUsageError } from './args.js';
import { formatStatusText } from './format.js';
import { gatherStatus } from './gather.js';
import { buildStatusReport, statusExitCode } from './report.js';

export interface StatusIo {
  out: (text: string) => void;
  err: (text: string) => void;
  now: () => number;
}

const processIo: StatusIo = {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
  now: () => Date.now(),
};

export async function runStatusCommand(argv: string[], io: StatusIo = processIo): Promise<number> {
  let args: ReturnType<typeof parseStatusArgs>;
  try {
    args = parseStatusArgs(argv);
  } catch (err) {
    if (!(err instanceof StatusUsageError)) throw err;
    io.err(`kubectl alcazar status: ${err.message}\n\n${STATUS_USAGE}`);
    return STATUS_EXIT.usage;
  }
  if (!args) {
    io.out(STATUS_USAGE);
    return STATUS_EXIT.healthy;
  }
  let kubeConfig: KubeConfig;
  try {
    kubeConfig = loadKubeConfig(args.kubeconfig);
  } catch (err) {
    io.err(`kubectl alcazar status: cannot load the kubeconfig: ${(err as Error).message}`);
    return STATUS_EXIT.usage;
  }
  const observation = await gatherStatus(kubeConfig, args.caNamespace, args.leaseName);
  if (!observation.certificateAuthority.ok) {
    io.err(`kubectl alcazar status: cannot read the cluster: ${observation.certificateAuthority.error}`);
    return STATUS_EXIT.unreadable;
  }
  const report = buildStatusReport(observation, io.now(), args.maxFailing);
  io.out(args.output === 'json' ? JSON.stringify(report, null, 2) : formatStatusText(report));
  return statusExitCode(report);
}

#!/usr/bin/env node
// alcazar: `alcazar controller [flags]` runs the CA controller; `alcazar inspect` reports on a workload Secret.
import { hostname } from 'node:os';
import { ProcessSettingsError, parseProcessSettings, processSettingsHelp } from '../config/process.js';
import { startController } from '../controllers/manager.js';
import { loadKubeConfig } from '../kube/client.js';
import { createProcessLogger } from '../telemetry/logger.js';
import { runInspectCommand } from './inspect/index.js';
import { runRevokeCommand } from './revoke/command.js';
import { Shutdown } from './shutdown.js';

const USAGE = `usage: alcazar <command> [flags]

commands:
  controller   run the certificate authority controller
  inspect      report on a workload Secret: identity, validity, chain, key match, renewal
  revoke       revoke a ServiceAccount's certificates or serials: reissue, and list them in the CRL

alcazar <command> --help lists its flags.`;

async function runControllerCommand(argv: string[]): Promise<number> {
  let settings: ReturnType<typeof parseProcessSettings>;
  try {
    settings = parseProcessSettings(argv, process.env, { hostname: hostname(), pid: process.pid });
  } catch (err) {
    if (err instanceof ProcessSettingsError) {
      console.error(
        `${err.message.trimEnd()}\n\nalcazar controller --help lists every flag and its environment variable.`,
      );
      return 2;
    }
    throw err;
  }
  if (settings.help) {
    console.log(processSettingsHelp());
    return 0;
  }
  const log = createProcessLogger(settings.logLevel, settings.logFormat, process.stdout.isTTY === true);
  // Listen before starting: a signal during start-up waits for the start, then stops cleanly.
  const shutdown = new Shutdown({
    signals: process,
    say: (message, signal) => log.info({ signal }, message),
    forceExit: (code) => {
      log.flush();
      process.exit(code);
    },
  });
  const kubeConfig = loadKubeConfig(settings.kubeconfig);
  log.info({ server: kubeConfig.getCurrentCluster()?.server, caNamespace: settings.caNamespace }, 'starting');
  let controller: Awaited<ReturnType<typeof startController>>;
  try {
    controller = await startController(kubeConfig, settings, log);
  } catch (err) {
    // What started before the failure (the CSR API's listener, the Lease) would keep the process
    // alive doing nothing, deaf to SIGTERM: exit, so the user or the kubelet sees it and retries.
    log.fatal({ err }, `cannot start the controller: ${err instanceof Error ? err.message : String(err)}`);
    log.flush();
    process.exit(1);
  }
  await shutdown.requested;
  try {
    await controller.stop();
    log.info('stopped');
  } catch (err) {
    log.error({ err }, 'error while stopping');
  }
  shutdown.dispose();
  log.flush();
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'controller':
      return runControllerCommand(rest);
    case 'inspect':
      return runInspectCommand(rest);
    case 'revoke':
      return runRevokeCommand(rest);
    case undefined:
    case '--help':
    case '-h':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  },
);

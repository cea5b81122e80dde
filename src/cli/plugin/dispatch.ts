// `kubectl alcazar <subcommand>`: kubectl runs the `kubectl-alcazar` binary on PATH with the rest of
// the command line. Each subcommand is one row of SUBCOMMANDS; adding one (e.g. revoke) is one line.
import { runInspectCommand } from '../inspect/index.js';
import { runStatusCommand } from '../status/command.js';

export interface Subcommand {
  name: string;
  summary: string;
  run: (argv: string[]) => Promise<number>;
}

export const SUBCOMMANDS: readonly Subcommand[] = [
  {
    name: 'status',
    summary: 'CA health, roots and expiry, rotation, leader, failing ServiceAccounts',
    run: runStatusCommand,
  },
  {
    name: 'inspect',
    summary: 'one workload Secret: identity, validity, chain, key match, renewal',
    run: runInspectCommand,
  },
];

export function pluginUsage(subcommands: readonly Subcommand[] = SUBCOMMANDS): string {
  const width = Math.max(...subcommands.map((s) => s.name.length));
  return `usage: kubectl alcazar <command> [flags]

The alcazar certificate authority, from kubectl.

commands:
${subcommands.map((s) => `  ${s.name.padEnd(width)}   ${s.summary}`).join('\n')}

kubectl alcazar <command> --help lists its flags.`;
}

export interface PluginIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

const processIo: PluginIo = { out: (t) => console.log(t), err: (t) => console.error(t) };

/** Runs the subcommand argv names; returns the exit status. */
export async function runPlugin(
  argv: string[],
  subcommands: readonly Subcommand[] = SUBCOMMANDS,
  io: PluginIo = processIo,
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.err : io.out)(pluginUsage(subcommands));
    return name === undefined ? 2 : 0;
  }
  const subcommand = subcommands.find((s) => s.name === name);
  if (!subcommand) {
    io.err(`kubectl alcazar: unknown command "${name}"\n\n${pluginUsage(subcommands)}`);
    return 2;
  }
  return subcommand.run(rest);
}

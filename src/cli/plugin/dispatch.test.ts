import { describe, expect, it } from 'vitest';
import { pluginUsage, runPlugin, SUBCOMMANDS, type Subcommand } from './dispatch.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

describe('kubectl alcazar dispatch', () => {
  it('offers status and inspect, each in the usage text', () => {
    expect(SUBCOMMANDS.map((s) => s.name)).toEqual(['status', 'inspect']);
    for (const s of SUBCOMMANDS) expect(pluginUsage()).toContain(`  ${s.name}`);
  });

  it('hands the rest of the command line to the named subcommand and returns its status', async () => {
    const seen: string[][] = [];
    const table: Subcommand[] = [
      { name: 'status', summary: 's', run: async () => 0 },
      {
        name: 'revoke',
        summary: 'r',
        run: async (argv) => {
          seen.push(argv);
          return 7;
        },
      },
    ];
    const { io } = capture();
    expect(await runPlugin(['revoke', 'ns/sa', '--yes'], table, io)).toBe(7);
    expect(seen).toEqual([['ns/sa', '--yes']]);
  });

  it('--help prints the usage and exits 0; no command or an unknown one exits 2 with the usage on stderr', async () => {
    const help = capture();
    expect(await runPlugin(['--help'], SUBCOMMANDS, help.io)).toBe(0);
    expect(help.out.join()).toContain('usage: kubectl alcazar <command>');
    const none = capture();
    expect(await runPlugin([], SUBCOMMANDS, none.io)).toBe(2);
    expect(none.err.join()).toContain('usage: kubectl alcazar');
    const unknown = capture();
    expect(await runPlugin(['frobnicate'], SUBCOMMANDS, unknown.io)).toBe(2);
    expect(unknown.err.join()).toContain('unknown command "frobnicate"');
  });
});

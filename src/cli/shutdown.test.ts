import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { FORCED_EXIT_CODE, Shutdown } from './shutdown.js';

function harness() {
  const signals = new EventEmitter();
  const said: string[] = [];
  const exits: number[] = [];
  const shutdown = new Shutdown({
    signals,
    say: (message, signal) => said.push(`${signal}: ${message}`),
    forceExit: (code) => exits.push(code),
  });
  return { signals, said, exits, shutdown };
}

describe('Shutdown', () => {
  it('the first signal requests a graceful stop', async () => {
    const { signals, shutdown, exits } = harness();
    signals.emit('SIGTERM');
    await expect(shutdown.requested).resolves.toBe('SIGTERM');
    expect(exits).toEqual([]);
  });

  it('a second signal (e.g. Ctrl-C delivered twice) does not abort the stop', async () => {
    const { signals, shutdown, said, exits } = harness();
    signals.emit('SIGINT');
    signals.emit('SIGINT');
    await expect(shutdown.requested).resolves.toBe('SIGINT');
    expect(exits).toEqual([]);
    expect(said[1]).toMatch(/already shutting down/);
  });

  it('a third signal forces the exit and says the Lease is not released', () => {
    const { signals, said, exits } = harness();
    signals.emit('SIGINT');
    signals.emit('SIGTERM');
    signals.emit('SIGINT');
    expect(exits).toEqual([FORCED_EXIT_CODE]);
    expect(said[2]).toMatch(/not released/);
  });

  it('dispose removes its listeners', () => {
    const { signals, shutdown } = harness();
    shutdown.dispose();
    expect(signals.listenerCount('SIGINT') + signals.listenerCount('SIGTERM')).toBe(0);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { Heartbeat, renderChecks } from './health.js';

describe('renderChecks', () => {
  const synced = { name: 'caches-synced', ok: true };
  const leader = { name: 'leader', ok: true, message: 'leading' };
  const ca = { name: 'ca-loaded', ok: false, message: 'cacerts has no ca-key.pem' };

  it('lists the checks with 200 when all pass', () => {
    expect(renderChecks('readyz', [synced, leader], false)).toEqual({
      status: 200,
      body: '[+]caches-synced ok\n[+]leader ok\nreadyz check passed\n',
    });
  });

  it('lists only the failing checks, with why, with 503 when one fails', () => {
    expect(renderChecks('readyz', [synced, ca, leader], false)).toEqual({
      status: 503,
      body: '[-]ca-loaded failed: cacerts has no ca-key.pem\nreadyz check failed\n',
    });
  });

  it('verbose lists every check with its message', () => {
    expect(renderChecks('readyz', [synced, ca, leader], true)).toEqual({
      status: 503,
      body:
        '[+]caches-synced ok\n' +
        '[-]ca-loaded failed: cacerts has no ca-key.pem\n' +
        '[+]leader ok: leading\n' +
        'readyz check failed\n',
    });
  });

  it('keeps a multi-line message on its own line', () => {
    const { body } = renderChecks('readyz', [{ name: 'x', ok: false, message: 'a\n[+]forged ok' }], false);
    expect(body).toBe('[-]x failed: a [+]forged ok\nreadyz check failed\n');
  });
});

describe('Heartbeat', () => {
  let heartbeat: Heartbeat | undefined;
  afterEach(() => heartbeat?.stop());

  it('is live while beats keep coming', () => {
    let now = 1_000_000;
    heartbeat = new Heartbeat({ thresholdMs: 10_000, now: () => now });
    for (let i = 0; i < 30; i++) {
      now += 1_000;
      heartbeat.beat();
      expect(heartbeat.check().ok).toBe(true);
    }
  });

  it('turns unhealthy when the last beat is older than the threshold', () => {
    let now = 1_000_000;
    heartbeat = new Heartbeat({ thresholdMs: 10_000, now: () => now });
    now += 10_000;
    expect(heartbeat.check().ok).toBe(true);
    now += 2_500;
    expect(heartbeat.check()).toEqual({
      name: 'event-loop',
      ok: false,
      message: 'no heartbeat for 12.5 s (threshold 10.0 s)',
    });
    heartbeat.beat(); // the loop recovered
    expect(heartbeat.check().ok).toBe(true);
  });

  it('beats on its own once started', async () => {
    let now = 1_000_000;
    heartbeat = new Heartbeat({ thresholdMs: 50, intervalMs: 5, now: () => now }).start();
    now += 60_000; // the last beat is now long ago: only a beat of its own timer makes it healthy again
    expect(heartbeat.check().ok).toBe(false);
    const deadline = performance.now() + 10_000;
    while (!heartbeat.check().ok && performance.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(heartbeat.check().ok).toBe(true);
  });
});

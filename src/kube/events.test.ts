// The recorder's scheduling (dedupe, token bucket, Warning priority, drops)
// with a stand-in for the one API call it makes; whether Events reach a real
// API server is covered by the integration tests.
import type { CoreV1Event } from '@kubernetes/client-node';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EventRecorder, type EventType } from './events.js';

function recorder(limits: { qps: number; burst: number }) {
  const written: Array<{ type: string; reason: string; name: string; namespace?: string }> = [];
  const pending: Array<() => void> = [];
  let hold = false;
  const write = (namespace: string, event: CoreV1Event) => {
    written.push({ type: event.type!, reason: event.reason!, name: event.involvedObject.name! });
    if (namespace !== event.involvedObject.namespace) written.at(-1)!.namespace = namespace;
    if (!hold) return Promise.resolve(event);
    return new Promise((resolve) => pending.push(() => resolve(event)));
  };
  const dropped: EventType[] = [];
  const events = new EventRecorder(write, pino({ level: 'silent' }), {
    instance: 'test',
    limits,
    onDropped: (type) => dropped.push(type),
  });
  return {
    events,
    written,
    dropped,
    holdWrites: () => {
      hold = true;
    },
    release: () => {
      hold = false;
      for (const resolve of pending.splice(0)) resolve();
    },
  };
}

const sa = (name: string) => ({ apiVersion: 'v1', kind: 'ServiceAccount', namespace: 'app', name });

describe('EventRecorder', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes an Event about a cluster-scoped object to namespace default, as the API server requires', async () => {
    const r = recorder({ qps: 10, burst: 10 });
    const ca = { apiVersion: 'alcazar.dev/v1alpha1', kind: 'CertificateAuthority', name: 'default' };
    r.events.record(ca, 'Warning', 'RootMissing', 'gone');
    await vi.runAllTimersAsync();
    await r.events.whenIdle();
    expect(r.written).toEqual([
      { type: 'Warning', reason: 'RootMissing', name: 'default', namespace: 'default' },
    ]);
  });

  it('writes the same Event about the same object once per window', async () => {
    const r = recorder({ qps: 10, burst: 10 });
    r.events.record(sa('a'), 'Warning', 'Broken', 'same message');
    r.events.record(sa('a'), 'Warning', 'Broken', 'same message');
    r.events.record(sa('a'), 'Warning', 'Broken', 'another message');
    await r.events.whenIdle();
    expect(r.written).toHaveLength(2);
  });

  it('writes the same Event again once its window has passed, however many others came between', async () => {
    let now = 0;
    const written: string[] = [];
    const events = new EventRecorder(
      (_, event) => {
        written.push(`${event.involvedObject.name} ${event.message}`);
        return Promise.resolve(event);
      },
      pino({ level: 'silent' }),
      { instance: 'test', dedupeWindowMs: 1_000, limits: { qps: 1e9, burst: 1e9 }, now: () => now },
    );
    events.record(sa('a'), 'Warning', 'Broken', 'same');
    for (let i = 0; i < 20_000; i++) events.record(sa(`other-${i}`), 'Normal', 'CertificateIssued', `${i}`);
    now = 999;
    events.record(sa('a'), 'Warning', 'Broken', 'same');
    now = 1_000;
    events.record(sa('a'), 'Warning', 'Broken', 'same');
    now = 1_500;
    events.record(sa('a'), 'Warning', 'Broken', 'same');
    await events.whenIdle();
    expect(written.filter((w) => w === 'a same')).toHaveLength(2);
  });

  it('writes a burst at once, then no faster than qps', async () => {
    const r = recorder({ qps: 2, burst: 5 });
    for (let i = 0; i < 15; i++) r.events.record(sa(`sa-${i}`), 'Normal', 'CertificateIssued', `n ${i}`);
    await vi.advanceTimersByTimeAsync(0);
    expect(r.written).toHaveLength(5);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(r.written).toHaveLength(7);
    await vi.advanceTimersByTimeAsync(4_000);
    expect(r.written).toHaveLength(15);
    expect(r.written.map((w) => w.name)).toEqual(Array.from({ length: 15 }, (_, i) => `sa-${i}`));
    expect(r.dropped).toEqual([]);
  });

  it('writes waiting Warnings before waiting Normal Events', async () => {
    const r = recorder({ qps: 1, burst: 1 });
    r.events.record(sa('first'), 'Normal', 'CertificateIssued', 'n');
    r.events.record(sa('n1'), 'Normal', 'CertificateIssued', 'n');
    r.events.record(sa('n2'), 'Normal', 'CertificateIssued', 'n');
    r.events.record(sa('w1'), 'Warning', 'InvalidDnsNames', 'w');
    await vi.advanceTimersByTimeAsync(3_000);
    expect(r.written.map((w) => w.name)).toEqual(['first', 'w1', 'n1', 'n2']);
  });

  it('never has more than four writes in flight', async () => {
    const r = recorder({ qps: 100, burst: 100 });
    r.holdWrites();
    for (let i = 0; i < 10; i++) r.events.record(sa(`sa-${i}`), 'Normal', 'CertificateIssued', 'n');
    await vi.advanceTimersByTimeAsync(0);
    expect(r.written).toHaveLength(4);
    r.release();
    await r.events.whenIdle();
    expect(r.written).toHaveLength(10);
  });

  it('drops Normal Events first when the queue is full, and counts every drop', async () => {
    const r = recorder({ qps: 1, burst: 1 });
    r.holdWrites();
    // One is written (and held), 1,000 wait, the rest are over the limit.
    for (let i = 0; i < 1_005; i++) r.events.record(sa(`sa-${i}`), 'Normal', 'CertificateIssued', 'n');
    r.events.record(sa('w'), 'Warning', 'InvalidDnsNames', 'w');
    expect(r.dropped).toEqual([...Array(4).fill('Normal'), 'Normal']);
    r.release();
    await vi.advanceTimersByTimeAsync(1_000);
    // The Warning took the place of the oldest waiting Normal Event and went next.
    expect(r.written.map((w) => w.name)).toEqual(['sa-0', 'w']);
  });
});

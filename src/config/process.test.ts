import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  type ProcessSettings,
  ProcessSettingsError,
  parseProcessSettings,
  processSettingsHelp,
} from './process.js';

const facts = { hostname: 'alcazar-7d9f-x2', pid: 42 };

function parse(argv: string[], env: Record<string, string | undefined> = {}): ProcessSettings {
  return parseProcessSettings(argv, env, facts);
}

function problemsOf(argv: string[], env: Record<string, string | undefined> = {}): readonly string[] {
  try {
    parse(argv, env);
  } catch (error) {
    if (error instanceof ProcessSettingsError) return error.problems;
    throw error;
  }
  throw new Error('expected the settings to be rejected');
}

describe('parseProcessSettings', () => {
  // Golden: changing a default must show up here as a diff.
  it('has pinned defaults', () => {
    expect(parse([])).toStrictEqual({
      help: false,
      kubeconfig: undefined,
      caNamespace: 'istio-system',
      logLevel: 'info',
      logFormat: 'auto',
      httpPort: 9402,
      workers: 16,
      resyncPeriodMs: 600_000,
      relistPeriodMs: 3_600_000,
      watchStallTimeoutMs: 300_000,
      secretWatch: 'metadata',
      rootRotation: { checkIntervalMs: 60_000, propagationDelayMs: 120_000 },
      events: { qps: 10, burst: 100 },
      csr: {
        enabled: true,
        port: 15012,
        dnsNames: ['alcazar.istio-system.svc', 'istiod.istio-system.svc'],
        tokenAudiences: ['istio-ca'],
      },
      leaderElection: {
        enabled: true,
        leaseName: 'alcazar-leader',
        identity: 'alcazar-7d9f-x2_42',
        leaseDurationMs: 15_000,
        renewDeadlineMs: 10_000,
        retryPeriodMs: 2_000,
      },
    });
  });

  it('types its fields precisely', () => {
    expectTypeOf<ProcessSettings['logLevel']>().toEqualTypeOf<
      'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
    >();
    expectTypeOf<ProcessSettings['kubeconfig']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<ProcessSettings['leaderElection']['enabled']>().toEqualTypeOf<boolean>();
  });

  it('reads every setting from a flag', () => {
    const settings = parse([
      '--kubeconfig=/etc/kube/config',
      '--ca-namespace',
      'security',
      '--log-level=debug',
      '--log-format=json',
      '--http-port=0',
      '--workers=16',
      '--resync-period=1h',
      '--relist-period=2h',
      '--watch-stall-timeout=90s',
      '--secret-watch=full',
      '--no-leader-elect',
      '--lease-name=alcazar.leader',
      '--lease-duration=1m',
      '--renew-deadline=40s',
      '--retry-period=5s',
      '--identity=pod-a',
      '--root-rotation-check-interval=10s',
      '--root-rotation-propagation-delay=0s',
      '--event-qps=50',
      '--event-burst=500',
      '--no-csr-enabled',
      '--csr-port=0',
      '--csr-dns-names=ca.example.com, istiod.security.svc',
      '--csr-token-audiences=istio-ca,mesh',
    ]);
    expect(settings).toStrictEqual({
      help: false,
      kubeconfig: '/etc/kube/config',
      caNamespace: 'security',
      logLevel: 'debug',
      logFormat: 'json',
      httpPort: 0,
      workers: 16,
      resyncPeriodMs: 3_600_000,
      relistPeriodMs: 7_200_000,
      watchStallTimeoutMs: 90_000,
      secretWatch: 'full',
      rootRotation: { checkIntervalMs: 10_000, propagationDelayMs: 0 },
      events: { qps: 50, burst: 500 },
      csr: {
        enabled: false,
        port: 0,
        dnsNames: ['ca.example.com', 'istiod.security.svc'],
        tokenAudiences: ['istio-ca', 'mesh'],
      },
      leaderElection: {
        enabled: false,
        leaseName: 'alcazar.leader',
        identity: 'pod-a',
        leaseDurationMs: 60_000,
        renewDeadlineMs: 40_000,
        retryPeriodMs: 5_000,
      },
    });
  });

  it('reads settings from the environment', () => {
    const settings = parse([], {
      KUBECONFIG: '/home/me/.kube/config',
      ALCAZAR_CA_NAMESPACE: 'mesh',
      ALCAZAR_WORKERS: '8',
      ALCAZAR_LEADER_ELECT: 'false',
      ALCAZAR_RESYNC_PERIOD: '30m',
      ALCAZAR_IDENTITY: 'from-env',
    });
    expect(settings.kubeconfig).toBe('/home/me/.kube/config');
    expect(settings.caNamespace).toBe('mesh');
    expect(settings.workers).toBe(8);
    expect(settings.leaderElection.enabled).toBe(false);
    expect(settings.resyncPeriodMs).toBe(1_800_000);
    expect(settings.leaderElection.identity).toBe('from-env');
  });

  it('lets a flag win over its environment variable', () => {
    const settings = parse(['--workers=2', '--leader-elect'], {
      ALCAZAR_WORKERS: '8',
      ALCAZAR_LEADER_ELECT: 'false',
    });
    expect(settings.workers).toBe(2);
    expect(settings.leaderElection.enabled).toBe(true);
  });

  it('treats an empty environment variable as unset', () => {
    expect(parse([], { KUBECONFIG: '', ALCAZAR_WORKERS: '' })).toStrictEqual(parse([]));
  });

  it('takes the last of a repeated flag', () => {
    expect(parse(['--workers=2', '--workers=3']).workers).toBe(3);
  });

  it.each([
    [['--leader-elect'], true],
    [['--leader-elect=true'], true],
    [['--leader-elect=false'], false],
    [['--no-leader-elect'], false],
    [['--leader-elect=FALSE'], false],
    [['--leader-elect=0'], false],
  ])('reads %j as leader election %s', (argv, enabled) => {
    expect(parse(argv).leaderElection.enabled).toBe(enabled);
  });

  it.each([['-h'], ['--help']])('notes %s, leaving the other settings at their values', (flag) => {
    const settings = parse([flag, '--workers=7']);
    expect(settings.help).toBe(true);
    expect(settings.workers).toBe(7);
  });

  it.each([
    [['--workers=0'], '--workers=0: must be a whole number from 1 to 64'],
    [['--workers=65'], '--workers=65: must be a whole number from 1 to 64'],
    [['--workers=2.5'], '--workers=2.5: must be a whole number from 1 to 64'],
    [['--http-port=70000'], '--http-port=70000: must be a whole number from 0 to 65535'],
    [['--event-qps=0'], '--event-qps=0: must be a whole number from 1 to 1000'],
    [['--event-burst=0'], '--event-burst=0: must be a whole number from 1 to 10000'],
    [['--log-level=verbose'], '--log-level=verbose: Invalid option'],
    [['--log-format=xml'], '--log-format=xml: Invalid option'],
    [['--ca-namespace=Istio_System'], '--ca-namespace=Istio_System: must be a DNS label'],
    [['--lease-name=-leader'], '--lease-name=-leader: must be a DNS subdomain'],
    [['--resync-period=10'], '--resync-period=10: invalid duration "10": the number 10 has no unit'],
    [['--watch-stall-timeout=0s'], '--watch-stall-timeout=0s: must be longer than zero'],
    [['--lease-duration=700h', '--renew-deadline=600h'], '--renew-deadline=600h: must be at most 596h'],
    [['--root-rotation-propagation-delay=1000h'], '--root-rotation-propagation-delay=1000h: must be at most'],
    [['--secret-watch=partial'], "--secret-watch=partial: must be 'metadata' or 'full'"],
    [['--leader-elect=maybe'], "--leader-elect=maybe: must be 'true' or 'false'"],
    [['--identity='], '--identity=: must not be empty'],
    [['--renew-deadline=15s'], '--renew-deadline=15s: must be shorter than --lease-duration (15s)'],
    [['--retry-period=10s'], '--retry-period=10s: must be shorter than --renew-deadline (10s)'],
    [['--bogus'], 'unknown flag --bogus'],
    [['--no-workers'], 'unknown flag --no-workers'],
    [['controller'], "unexpected argument 'controller'"],
    [['--', '--workers=2'], "unexpected argument '--workers=2'"],
    [['--workers'], 'flag --workers needs a value, e.g. --workers=N'],
    [['--kubeconfig', '--workers=2'], 'flag --kubeconfig needs a value'],
  ])('rejects %j', (argv, problem) => {
    expect(problemsOf(argv)).toContainEqual(expect.stringContaining(problem));
  });

  it('names the environment variable when the bad value came from there', () => {
    expect(problemsOf([], { ALCAZAR_WORKERS: 'many' })).toEqual([
      'ALCAZAR_WORKERS=many (environment): must be a whole number from 1 to 64',
    ]);
  });

  it('explains a Kubernetes service-link variable that shadows a setting', () => {
    const [problem] = problemsOf([], { ALCAZAR_HTTP_PORT: 'tcp://10.0.0.12:9402' });
    expect(problem).toContain('ALCAZAR_HTTP_PORT=tcp://10.0.0.12:9402 (environment)');
    expect(problem).toContain('enableServiceLinks: false');
  });

  it('lists every invalid setting at once, in one error', () => {
    let caught: unknown;
    try {
      parse(['--workers=100', '--bogus', '--lease-duration=1s'], { ALCAZAR_LOG_LEVEL: 'loud' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ProcessSettingsError);
    const error = caught as ProcessSettingsError;
    expect(error.problems).toHaveLength(4);
    expect(error.problems).toEqual([
      'unknown flag --bogus',
      expect.stringContaining('ALCAZAR_LOG_LEVEL=loud (environment)'),
      '--workers=100: must be a whole number from 1 to 64',
      '--renew-deadline (default 10s): must be shorter than --lease-duration (1s)',
    ]);
    expect(error.message).toMatch(/^invalid settings:\n {2}unknown flag --bogus\n/);
  });

  it('uses the real hostname and pid when not told otherwise', () => {
    expect(parseProcessSettings([], {}).leaderElection.identity).toMatch(new RegExp(`_${process.pid}$`));
  });
});

describe('processSettingsHelp', () => {
  const help = processSettingsHelp();

  it.each([
    ['--kubeconfig=PATH', 'KUBECONFIG'],
    ['--ca-namespace=NAME', 'ALCAZAR_CA_NAMESPACE (default: istio-system)'],
    ['--log-level=LEVEL', 'ALCAZAR_LOG_LEVEL (default: info)'],
    ['--http-port=PORT', 'ALCAZAR_HTTP_PORT (default: 9402)'],
    ['--workers=N', 'ALCAZAR_WORKERS (default: 16)'],
    ['--resync-period=DURATION', 'ALCAZAR_RESYNC_PERIOD (default: 10m)'],
    ['--watch-stall-timeout=DURATION', 'ALCAZAR_WATCH_STALL_TIMEOUT (default: 5m)'],
    ['--leader-elect', 'ALCAZAR_LEADER_ELECT (default: true)'],
    ['--lease-name=NAME', 'ALCAZAR_LEASE_NAME (default: alcazar-leader)'],
    ['--lease-duration=DURATION', 'ALCAZAR_LEASE_DURATION (default: 15s)'],
    ['--renew-deadline=DURATION', 'ALCAZAR_RENEW_DEADLINE (default: 10s)'],
    ['--retry-period=DURATION', 'ALCAZAR_RETRY_PERIOD (default: 2s)'],
    ['--identity=ID', 'ALCAZAR_IDENTITY'],
  ])('documents %s with %s', (flag, env) => {
    expect(help).toMatch(new RegExp(`^ {2}${flag} +${env.replace(/[()]/g, '\\$&')}$`, 'm'));
  });

  it('documents --help', () => {
    expect(help).toContain('-h, --help');
  });
});

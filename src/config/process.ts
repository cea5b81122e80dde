/**
 * Settings of the `alcazar controller` process, from command-line flags and environment variables
 * (a flag wins over its variable, which wins over the default). Everything about the CA itself lives
 * in the CertificateAuthority resource instead (ca-spec.ts); these are only what the process needs
 * before it can read that: where the cluster is, where to listen, how to elect a leader.
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { formatDuration, tryParseDuration } from './duration.js';

export const logLevelSchema = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
export type LogLevel = z.infer<typeof logLevelSchema>;
export const logFormatSchema = z.enum(['auto', 'json', 'pretty']);
export type LogFormat = z.infer<typeof logFormatSchema>;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const dnsLabel = z.string().max(63, { error: 'must be at most 63 characters' }).regex(DNS_LABEL, {
  error: "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit",
});

const dnsSubdomain = z.string().max(253, { error: 'must be at most 253 characters' }).regex(DNS_SUBDOMAIN, {
  error:
    "must be a DNS subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
});

function wholeNumber(min: number, max: number) {
  const message = `must be a whole number from ${min} to ${max}`;
  return z
    .string()
    .regex(/^\d+$/, { error: message })
    .transform(Number)
    .pipe(z.number().min(min, { error: message }).max(max, { error: message }));
}

/**
 * The longest wait a Node timer (setTimeout, AbortSignal.timeout) can hold, ~24.8 days: a longer one
 * fires at once (--renew-deadline=600h aborted every Lease request after a few ms, and this
 * replica never led).
 */
const MAX_TIMER_MS = 2 ** 31 - 1;
const TOO_LONG = `must be at most ${formatDuration(MAX_TIMER_MS - (MAX_TIMER_MS % 3_600_000))} (a longer wait overflows the timers)`;

const positiveDurationMs = z.string().transform((text, ctx) => {
  const parsed = tryParseDuration(text);
  if (!parsed.ok) {
    ctx.addIssue({ code: 'custom', message: parsed.message });
    return z.NEVER;
  }
  if (parsed.ms <= 0) {
    ctx.addIssue({ code: 'custom', message: 'must be longer than zero' });
    return z.NEVER;
  }
  if (parsed.ms > MAX_TIMER_MS) {
    ctx.addIssue({ code: 'custom', message: TOO_LONG });
    return z.NEVER;
  }
  return parsed.ms;
});

const nonNegativeDurationMs = z.string().transform((text, ctx) => {
  const parsed = tryParseDuration(text);
  if (!parsed.ok || parsed.ms < 0) {
    ctx.addIssue({ code: 'custom', message: parsed.ok ? 'must not be negative' : parsed.message });
    return z.NEVER;
  }
  if (parsed.ms > MAX_TIMER_MS) {
    ctx.addIssue({ code: 'custom', message: TOO_LONG });
    return z.NEVER;
  }
  return parsed.ms;
});

const booleanText = z.string().transform((text, ctx) => {
  if (/^(true|1)$/i.test(text)) return true;
  if (/^(false|0)$/i.test(text)) return false;
  ctx.addIssue({ code: 'custom', message: "must be 'true' or 'false'" });
  return z.NEVER;
});

/** A comma-separated list of at least one item, each checked by `item`; blanks around commas are ignored. */
function commaList(item: z.ZodType<string, string>) {
  return z
    .string()
    .transform((text) =>
      text
        .split(',')
        .map((part) => part.trim())
        .filter((part) => part !== ''),
    )
    .pipe(z.array(item).min(1, { error: 'must name at least one value' }));
}

/** Every setting as text (from a flag, the environment or the default), checked and converted. */
const settingsTextSchema = z
  .object({
    help: z.boolean(),
    kubeconfig: z.string().optional(),
    caNamespace: dnsLabel,
    logLevel: z.string().pipe(logLevelSchema),
    logFormat: z.string().pipe(logFormatSchema),
    httpPort: wholeNumber(0, 65535),
    workers: wholeNumber(1, 64),
    resyncPeriod: positiveDurationMs,
    relistPeriod: positiveDurationMs,
    watchStallTimeout: positiveDurationMs,
    leaderElect: booleanText,
    leaseName: dnsSubdomain,
    leaseDuration: positiveDurationMs,
    renewDeadline: positiveDurationMs,
    retryPeriod: positiveDurationMs,
    identity: z.string().min(1, { error: 'must not be empty' }),
    rootRotationCheckInterval: positiveDurationMs,
    rootRotationPropagationDelay: nonNegativeDurationMs,
    eventQps: wholeNumber(1, 1000),
    eventBurst: wholeNumber(1, 10000),
    csrEnabled: booleanText,
    csrPort: wholeNumber(0, 65535),
    csrDnsNames: commaList(dnsSubdomain).optional(),
    csrTokenAudiences: commaList(z.string().min(1).max(253)),
    secretWatch: z.enum(['metadata', 'full'], { error: "must be 'metadata' or 'full'" }),
  })
  .superRefine(
    (settings, ctx) => {
      // The leader must give up before another candidate may take over, and retry within that time.
      const { leaseDuration, renewDeadline, retryPeriod } = settings;
      if (typeof leaseDuration !== 'number' || typeof renewDeadline !== 'number') return;
      if (renewDeadline >= leaseDuration) {
        ctx.addIssue({
          code: 'custom',
          path: ['renewDeadline'],
          message: `must be shorter than --lease-duration (${formatDuration(leaseDuration)})`,
        });
      }
      if (typeof retryPeriod === 'number' && retryPeriod >= renewDeadline) {
        ctx.addIssue({
          code: 'custom',
          path: ['retryPeriod'],
          message: `must be shorter than --renew-deadline (${formatDuration(renewDeadline)})`,
        });
      }
    },
    // Run even when another setting is invalid, so that one error lists every problem; the typeof
    // checks above skip durations that did not parse.
    { when: () => true },
  );

type SettingName = Exclude<keyof z.input<typeof settingsTextSchema>, 'help'>;

interface SettingDefinition {
  flag: string;
  env: string;
  /** Placeholder for the value in --help; absent for a boolean flag. */
  value?: string;
  /** The default as a user would type it; absent when the setting is optional. */
  default?: string;
  description: string;
}

/**
 * One row per setting: its flag, its environment variable, its default and its help text.
 * Kubernetes gives containers variables named after the Services in their namespace (a Service
 * "alcazar" yields ALCAZAR_PORT=tcp://...), so no setting is called ALCAZAR_PORT or
 * ALCAZAR_SERVICE_*. A Service "alcazar-http" would still shadow ALCAZAR_HTTP_PORT; the error
 * message then says what happened.
 */
const SETTINGS: Readonly<Record<SettingName, SettingDefinition>> = {
  kubeconfig: {
    flag: 'kubeconfig',
    env: 'KUBECONFIG',
    value: 'PATH',
    description: 'kubeconfig to use; when unset, the in-cluster ServiceAccount or the default kubeconfig',
  },
  caNamespace: {
    flag: 'ca-namespace',
    env: 'ALCAZAR_CA_NAMESPACE',
    value: 'NAME',
    default: 'istio-system',
    description: 'namespace of the CA Secrets and of the leader-election Lease',
  },
  logLevel: {
    flag: 'log-level',
    env: 'ALCAZAR_LOG_LEVEL',
    value: 'LEVEL',
    default: 'info',
    description: `one of ${logLevelSchema.options.join(', ')}`,
  },
  logFormat: {
    flag: 'log-format',
    env: 'ALCAZAR_LOG_FORMAT',
    value: 'FORMAT',
    default: 'auto',
    description: 'json, pretty (human-readable), or auto: pretty when stdout is a terminal',
  },
  httpPort: {
    flag: 'http-port',
    env: 'ALCAZAR_HTTP_PORT',
    value: 'PORT',
    default: '9402',
    description: 'port serving /metrics, /healthz and /readyz; 0 picks a free port (logged)',
  },
  workers: {
    flag: 'workers',
    env: 'ALCAZAR_WORKERS',
    value: 'N',
    default: '16',
    description: 'reconciles run in parallel, 1 to 64',
  },
  resyncPeriod: {
    flag: 'resync-period',
    env: 'ALCAZAR_RESYNC_PERIOD',
    value: 'DURATION',
    default: '10m',
    description: 'how often every workload key is reconciled again from the cache',
  },
  relistPeriod: {
    flag: 'relist-period',
    env: 'ALCAZAR_RELIST_PERIOD',
    value: 'DURATION',
    default: '1h',
    description:
      'how often, at a resync, every watched kind is listed again (workload Secrets: metadata only) to repair an event a live watch lost; at most every resync',
  },
  watchStallTimeout: {
    flag: 'watch-stall-timeout',
    env: 'ALCAZAR_WATCH_STALL_TIMEOUT',
    value: 'DURATION',
    default: '5m',
    description: 'a watch with no event for this long is restarted',
  },
  leaderElect: {
    flag: 'leader-elect',
    env: 'ALCAZAR_LEADER_ELECT',
    default: 'true',
    description:
      'run only while holding the leader Lease (--no-leader-elect or --leader-elect=false: always)',
  },
  leaseName: {
    flag: 'lease-name',
    env: 'ALCAZAR_LEASE_NAME',
    value: 'NAME',
    default: 'alcazar-leader',
    description: 'name of the leader-election Lease',
  },
  leaseDuration: {
    flag: 'lease-duration',
    env: 'ALCAZAR_LEASE_DURATION',
    value: 'DURATION',
    default: '15s',
    description: 'how long a Lease not renewed keeps other candidates waiting',
  },
  renewDeadline: {
    flag: 'renew-deadline',
    env: 'ALCAZAR_RENEW_DEADLINE',
    value: 'DURATION',
    default: '10s',
    description: 'the leader steps down when it could not renew for this long; shorter than --lease-duration',
  },
  retryPeriod: {
    flag: 'retry-period',
    env: 'ALCAZAR_RETRY_PERIOD',
    value: 'DURATION',
    default: '2s',
    description: 'time between attempts to acquire or renew the Lease; shorter than --renew-deadline',
  },
  identity: {
    flag: 'identity',
    env: 'ALCAZAR_IDENTITY',
    value: 'ID',
    description: 'holder identity in the Lease (default: <hostname>_<pid>)',
  },
  rootRotationCheckInterval: {
    flag: 'root-rotation-check-interval',
    env: 'ALCAZAR_ROOT_ROTATION_CHECK_INTERVAL',
    value: 'DURATION',
    default: '1m',
    description:
      'how often the self-signed root is checked for rotation, and a rotation under way advanced (±10% jitter)',
  },
  rootRotationPropagationDelay: {
    flag: 'root-rotation-propagation-delay',
    env: 'ALCAZAR_ROOT_ROTATION_PROPAGATION_DELAY',
    value: 'DURATION',
    default: '2m',
    description:
      'how long each root rotation step waits after every Secret is updated, for kubelets to copy Secrets into pods',
  },
  eventQps: {
    flag: 'event-qps',
    env: 'ALCAZAR_EVENT_QPS',
    value: 'N',
    default: '10',
    description:
      'Kubernetes Events written per second after the burst; the rest wait, Warnings first, in a queue of 1000 that drops Normal Events when full (alcazar_events_dropped_total)',
  },
  eventBurst: {
    flag: 'event-burst',
    env: 'ALCAZAR_EVENT_BURST',
    value: 'N',
    default: '100',
    description: 'Events that may be written at once before --event-qps applies',
  },
  csrEnabled: {
    flag: 'csr-enabled',
    env: 'ALCAZAR_CSR_ENABLED',
    default: 'true',
    description:
      "serve Istio's CSR API (istio.v1.auth.IstioCertificateService) on --csr-port (--no-csr-enabled or --csr-enabled=false: off)",
  },
  csrPort: {
    flag: 'csr-port',
    env: 'ALCAZAR_CSR_PORT',
    value: 'PORT',
    default: '15012',
    description: "gRPC port of the CSR API, istiod's port; 0 picks a free port (logged)",
  },
  csrDnsNames: {
    flag: 'csr-dns-names',
    env: 'ALCAZAR_CSR_DNS_NAMES',
    value: 'NAMES',
    description:
      "comma-separated DNS names of the CSR API's serving certificate (default: alcazar.<ca-namespace>.svc,istiod.<ca-namespace>.svc)",
  },
  csrTokenAudiences: {
    flag: 'csr-token-audiences',
    env: 'ALCAZAR_CSR_TOKEN_AUDIENCES',
    value: 'AUDIENCES',
    default: 'istio-ca',
    description:
      "comma-separated audiences a caller's ServiceAccount token must carry (checked by TokenReview)",
  },
  secretWatch: {
    flag: 'secret-watch',
    env: 'ALCAZAR_SECRET_WATCH',
    value: 'metadata|full',
    default: 'metadata',
    description:
      'how workload Secrets are watched: metadata only, reading a Secret when someone else changed it, or whole Secrets',
  },
};

const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

const settingByFlag = new Map(SETTING_NAMES.map((name) => [SETTINGS[name].flag, name]));

/** Facts about the running process that defaults depend on; injected so tests stay deterministic. */
export interface ProcessFacts {
  hostname: string;
  pid: number;
}

function defaultText(name: SettingName, facts: ProcessFacts): string | undefined {
  if (name === 'identity') return `${facts.hostname}_${facts.pid}`;
  return SETTINGS[name].default;
}

const processSettingsSchema = settingsTextSchema.transform((text) => ({
  help: text.help,
  kubeconfig: text.kubeconfig === '' ? undefined : text.kubeconfig,
  caNamespace: text.caNamespace,
  logLevel: text.logLevel,
  logFormat: text.logFormat,
  httpPort: text.httpPort,
  workers: text.workers,
  resyncPeriodMs: text.resyncPeriod,
  relistPeriodMs: text.relistPeriod,
  watchStallTimeoutMs: text.watchStallTimeout,
  secretWatch: text.secretWatch,
  rootRotation: {
    checkIntervalMs: text.rootRotationCheckInterval,
    propagationDelayMs: text.rootRotationPropagationDelay,
  },
  events: { qps: text.eventQps, burst: text.eventBurst },
  csr: {
    enabled: text.csrEnabled,
    port: text.csrPort,
    dnsNames: text.csrDnsNames ?? [`alcazar.${text.caNamespace}.svc`, `istiod.${text.caNamespace}.svc`],
    tokenAudiences: text.csrTokenAudiences,
  },
  leaderElection: {
    enabled: text.leaderElect,
    leaseName: text.leaseName,
    identity: text.identity,
    leaseDurationMs: text.leaseDuration,
    renewDeadlineMs: text.renewDeadline,
    retryPeriodMs: text.retryPeriod,
  },
}));

export type ProcessSettings = z.output<typeof processSettingsSchema>;

/** Thrown by parseProcessSettings; `problems` has one line per invalid flag or variable. */
export class ProcessSettingsError extends Error {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid settings:\n${problems.map((problem) => `  ${problem}`).join('\n')}`);
    this.name = 'ProcessSettingsError';
    this.problems = problems;
  }
}

type Origin = { kind: 'flag'; rawName: string } | { kind: 'env'; variable: string } | { kind: 'default' };

interface FlagScan {
  /** Each setting given as a flag: its value as text and the flag as written. */
  given: Map<SettingName, { text: string; rawName: string }>;
  help: boolean;
  problems: string[];
}

/**
 * Reads the flags. parseArgs runs non-strict, so it never stops at the first mistake; its tokens
 * are checked here one by one so that every mistake is reported at once.
 */
function scanFlags(argv: readonly string[]): FlagScan {
  const options = Object.fromEntries([
    ...SETTING_NAMES.map((name) => {
      const type = SETTINGS[name].value === undefined ? 'boolean' : 'string';
      return [SETTINGS[name].flag, { type }] as const;
    }),
    ['help', { type: 'boolean', short: 'h' }] as const,
  ]);
  const { tokens } = parseArgs({
    args: [...argv],
    options,
    strict: false,
    allowPositionals: true,
    allowNegative: true,
    tokens: true,
  });

  const scan: FlagScan = { given: new Map(), help: false, problems: [] };
  for (const token of tokens) {
    if (token.kind === 'option-terminator') continue;
    if (token.kind === 'positional') {
      scan.problems.push(`unexpected argument '${token.value}'`);
      continue;
    }
    if (token.name === 'help') {
      scan.help = true;
      continue;
    }
    const name = settingByFlag.get(token.name);
    if (name === undefined) {
      scan.problems.push(`unknown flag ${token.rawName}`);
      continue;
    }
    const { rawName, value, inlineValue } = token;
    const takesValue = SETTINGS[name].value !== undefined;
    if (rawName.startsWith('--no-')) {
      if (takesValue) scan.problems.push(`unknown flag ${rawName}`);
      else scan.given.set(name, { text: 'false', rawName });
    } else if (!takesValue) {
      scan.given.set(name, { text: value ?? 'true', rawName });
    } else if (value === undefined || (!inlineValue && value.startsWith('-'))) {
      // parseArgs would take the next flag as this one's value; a forgotten value is likelier.
      scan.problems.push(`flag ${rawName} needs a value, e.g. ${rawName}=${SETTINGS[name].value}`);
    } else {
      scan.given.set(name, { text: value, rawName });
    }
  }
  return scan;
}

function describeSource(name: SettingName, origin: Origin, text: string | undefined): string {
  const shown = text === undefined ? '' : `=${text}`;
  if (origin.kind === 'flag') return `${origin.rawName}${shown}`;
  if (origin.kind === 'env') return `${origin.variable}${shown} (environment)`;
  return `--${SETTINGS[name].flag} (default${text === undefined ? '' : ` ${text}`})`;
}

/** Kubernetes service links look like "tcp://10.0.0.1:9402"; say so, it is a puzzling value otherwise. */
function serviceLinkHint(origin: Origin, text: string | undefined): string {
  if (origin.kind !== 'env' || text === undefined || !/^(tcp|udp|sctp):\/\//.test(text)) return '';
  return ' (this looks like a variable Kubernetes set for a Service; rename the Service or set enableServiceLinks: false)';
}

/**
 * Settings for `alcazar controller` from its arguments (after the subcommand) and environment.
 * Throws ProcessSettingsError naming every invalid flag or variable. `help` is true when -h or
 * --help was given; print processSettingsHelp() then.
 */
export function parseProcessSettings(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  facts: ProcessFacts = { hostname: hostname(), pid: process.pid },
): ProcessSettings {
  const flags = scanFlags(argv);
  const text: Partial<Record<SettingName, string>> = {};
  const origins = new Map<SettingName, Origin>();
  for (const name of SETTING_NAMES) {
    const flag = flags.given.get(name);
    const envValue = env[SETTINGS[name].env];
    if (flag !== undefined) {
      text[name] = flag.text;
      origins.set(name, { kind: 'flag', rawName: flag.rawName });
    } else if (envValue !== undefined && envValue !== '') {
      text[name] = envValue;
      origins.set(name, { kind: 'env', variable: SETTINGS[name].env });
    } else {
      text[name] = defaultText(name, facts);
      origins.set(name, { kind: 'default' });
    }
  }

  const result = processSettingsSchema.safeParse({ ...text, help: flags.help });
  const problems = [...flags.problems];
  if (!result.success) {
    for (const issue of result.error.issues) {
      const name = issue.path[0] as SettingName;
      const origin = origins.get(name) ?? { kind: 'default' };
      problems.push(
        `${describeSource(name, origin, text[name])}: ${issue.message}${serviceLinkHint(origin, text[name])}`,
      );
    }
  }
  if (!result.success || problems.length > 0) throw new ProcessSettingsError(problems);
  return result.data;
}

/** The text for `alcazar controller --help`, generated from the same table the parser uses. */
export function processSettingsHelp(): string {
  const rows = SETTING_NAMES.map((name) => {
    const setting = SETTINGS[name];
    const usage = setting.value === undefined ? `--${setting.flag}` : `--${setting.flag}=${setting.value}`;
    const fallback = setting.default === undefined ? '' : ` (default: ${setting.default})`;
    return { usage, text: `${setting.env}${fallback}\n      ${setting.description}` };
  });
  const width = Math.max(...rows.map((r) => r.usage.length)) + 2;
  return [
    'Usage: alcazar controller [flags]',
    '',
    'Runs the certificate authority: watches ServiceAccounts and keeps their istio.<name> Secrets',
    'up to date. Each flag can also be set by the environment variable next to it; a flag wins.',
    '',
    'Flags:',
    ...rows.map((r) => `  ${r.usage.padEnd(width)}${r.text}`),
    '  -h, --help',
    '      print this help',
    '',
  ].join('\n');
}

// Formatting the inspect report: durations, the human text, and the exit status it earns.
import { workloadSecretName } from '../../model/names.js';
import type { Problem } from '../../pki/index.js';
import { EXIT } from './args.js';
import type { ChainCheck, InspectReport } from './report.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const UNITS: ReadonlyArray<readonly [string, number]> = [
  ['d', DAY],
  ['h', HOUR],
  ['m', MINUTE],
  ['s', SECOND],
];

/**
 * The two largest units of a duration, truncated: "89d 23h", "3h 0m", "45s". Sub-second
 * durations read "0s". Negative durations are formatted by magnitude with a leading "-".
 */
export function formatDurationShort(ms: number): string {
  const sign = ms < 0 ? '-' : '';
  const magnitude = Math.abs(ms);
  const first = UNITS.findIndex(([, size]) => magnitude >= size);
  if (first === -1) return '0s';
  const [unit, size] = UNITS[first]!;
  const next = UNITS[first + 1];
  const head = `${sign}${Math.floor(magnitude / size)}${unit}`;
  return next ? `${head} ${Math.floor((magnitude % size) / next[1])}${next[0]}` : head;
}

/** "89d 23h" while valid, "expired 2d 4h ago" after. */
export function describeTimeLeft(leftMs: number): string {
  return leftMs > 0 ? formatDurationShort(leftMs) : `expired ${formatDurationShort(-leftMs)} ago`;
}

const yesNo = (value: boolean | null, unknown = 'unknown') =>
  value === null ? unknown : value ? 'yes' : 'no';

function describeChain(check: ChainCheck): string {
  if (check.verified === null) return `not checked (${check.message})`;
  return check.verified
    ? `verified against ${check.source}`
    : `FAILED against ${check.source}: ${check.message}`;
}

const CONTENT_DIGEST_TEXT: Record<NonNullable<InspectReport['contentDigest']> | 'null', string> = {
  verified: 'verified against the current CA (no signature or key check needed)',
  mismatch: 'does not verify against the current CA (checked in full)',
  absent: 'none (checked in full)',
  null: 'not checked (the CA could not be loaded)',
};

/** One "- Reason: message" line per problem, indented. */
export function formatProblemList(problems: readonly Problem[], indent = '  '): string {
  return problems.map((p) => `${indent}- ${p.reason}: ${p.message}`).join('\n');
}

/** The human report: an aligned "key: value" block, then problems and warnings as lists. */
export function formatInspectText(report: InspectReport, now: Date): string {
  const { secret } = report;
  const owners = secret.owners.map((o) => `${o.kind}/${o.name}${o.controller ? '' : ' (not controller)'}`);
  const identity =
    report.spiffeId === null
      ? 'none'
      : report.spiffeIdMatches === null
        ? report.spiffeId
        : report.spiffeIdMatches
          ? `${report.spiffeId} (as expected)`
          : `${report.spiffeId} (expected ${report.expectedSpiffeId})`;
  const renewal =
    report.renewAt === null
      ? 'unknown'
      : report.renewalDue
        ? `${report.renewAt} (due now)`
        : `${report.renewAt} (in ${formatDurationShort(Date.parse(report.renewAt) - now.getTime())})`;
  const validity =
    report.timeLeft === null
      ? 'unknown'
      : report.notYetValid
        ? `${report.timeLeft} (not yet valid)`
        : report.timeLeft;
  const rows: [string, string][] = [
    ['Secret', `${secret.namespace}/${secret.name}`],
    ['Type', secret.type || '(none)'],
    ['Managed by alcazar', yesNo(secret.managedByAlcazar)],
    ['Owner', owners.join(', ') || 'none'],
    ['Trust domain', `${report.trustDomain} (from ${report.configSource})`],
    ['SPIFFE ID', identity],
    ['DNS SANs', report.dnsNames.join(', ') || 'none'],
    ['DNS names refused', report.dnsNamesRefused.map((r) => `${r.name} (${r.reason})`).join(', ') || 'none'],
    ['Serial', report.serial ?? 'unknown'],
    ['Key type', report.keyType ?? 'unknown'],
    ['Issuer', report.issuer === null ? 'unknown' : report.issuer || '(empty)'],
    ['Subject', report.subject === null ? 'unknown' : report.subject || '(empty)'],
    ['Not before', report.notBefore ?? 'unknown'],
    ['Not after', report.notAfter ?? 'unknown'],
    ['Time left', validity],
    ['Chain (Secret root)', describeChain(report.chain.secretRoot)],
    ['Chain (CA bundle)', describeChain(report.chain.caBundle)],
    ['Key matches cert', yesNo(report.keyMatches)],
    ['Content digest', CONTENT_DIGEST_TEXT[report.contentDigest ?? 'null']],
    ['Renews at', renewal],
    ['Controller would', report.controller?.message ?? controllerUnknown(report)],
    ['Problems', report.problems.length === 0 ? 'none' : `${report.problems.length} (below)`],
  ];
  if (report.warnings.length > 0) rows.push(['Warnings', `${report.warnings.length} (below)`]);
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  const lines = rows.map(([label, value]) => `${`${label}:`.padEnd(width)}${value}`);
  const sections = [lines.join('\n')];
  if (report.problems.length > 0) sections.push(`Problems:\n${formatProblemList(report.problems)}`);
  if (report.warnings.length > 0) sections.push(`Warnings:\n${formatProblemList(report.warnings)}`);
  return sections.join('\n\n');
}

function controllerUnknown(report: InspectReport): string {
  const isWorkloadSecret =
    report.serviceAccount !== null && report.secret.name === workloadSecretName(report.serviceAccount);
  return isWorkloadSecret ? 'unknown (see warnings)' : 'not applicable: not an istio.<serviceaccount> Secret';
}

export function exitStatusOf(report: InspectReport): number {
  return report.healthy ? EXIT.healthy : EXIT.problems;
}
